"""The floor of ``benchmarks/serving.py``: a pickled model behind the plainest Starlette endpoint.

    python benchmarks/_floor_server.py MODEL.pkl --port PORT [--model NAME]

Standalone on purpose: it imports only the standard library, numpy, Starlette and uvicorn (with
uvloop and httptools), and whatever unpickling the model needs (scikit-learn), so it runs in the
benchmark's minimal venv (``benchmarks/.floor-venv``, see ``_floor_venv.py``) and its resident
memory is the floor's own, not modelplane's imports.

``POST /v2/models/<NAME>/infer``: ``json.loads`` → ``np.asarray(data).reshape(shape)`` →
``model.predict`` (on the event loop) → ``json.dumps``, answering an OIP v2 body with an OIP v2
response carrying ``predict``; ``GET /v2/health/ready``: 200. No access log.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np


def serve(model_path: Path, port: int, name: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    with model_path.open("rb") as fh:
        model: Any = pickle.load(fh)  # written by benchmarks/serving.py a moment ago
    n_features = int(getattr(model, "n_features_in_", 1))
    model.predict(np.zeros((1, n_features)))

    async def infer(request: Request) -> Response:
        body = json.loads(await request.body())
        tensor = body["inputs"][0]
        X = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        y = model.predict(X)
        out = {
            "model_name": name,
            "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [len(y)], "data": y.tolist()}
            ],
        }
        return Response(json.dumps(out), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"", status_code=200)

    app = Starlette(
        routes=[
            Route(f"/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/v2/health/ready", ready),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The serving benchmark's floor server.")
    parser.add_argument("model", type=Path, help="a pickled model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default="bench")
    args = parser.parse_args(argv)
    serve(args.model, args.port, args.model_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
