"""The gRPC floor of ``benchmarks/grpc.py``: a pickled model behind a bare ``grpc.aio`` servicer.

    python benchmarks/_grpc_floor.py MODEL.pkl --port PORT [--model-name NAME]

Standalone on purpose: it imports only the standard library, grpc, numpy, whatever unpickling
the model needs (scikit-learn) and the OIP v2 messages generated from modelplane's
``grpc_predict_v2.proto`` — loaded **by path** (:func:`load_pb2`) under a package name of its
own, not through ``import modelplane``, so none of modelplane's modules are in this process and
its resident memory is the floor's own.

``ModelInfer``: the FP64 tensor from ``raw_input_contents`` (``np.frombuffer``) or from
``contents.fp64_contents`` — whichever the request carries — → ``model.predict`` inline on the
event loop → an OIP response with one INT64 output ``predict``, raw when the request was raw,
typed otherwise (as modelplane answers). ``ServerLive``, ``ServerReady`` and ``ModelReady``
answer true. Nothing else: no validation beyond what numpy does, no metrics, no log.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # run from benchmarks/, benchmarks/grpc.py would shadow grpc
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import pickle  # noqa: E402
import types  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

PROTO_DIR = HERE.parent / "src" / "modelplane" / "serving" / "grpc"
PACKAGE = "_bench_oip_v2"  # the generated modules' package here: not modelplane's
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def load_pb2(proto_dir: Path = PROTO_DIR) -> tuple[Any, Any]:
    """``grpc_predict_v2_pb2`` and ``grpc_predict_v2_pb2_grpc`` loaded from ``proto_dir`` as
    modules of a package of their own (the ``_grpc`` module imports its sibling relatively)."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(proto_dir)]
        sys.modules[PACKAGE] = package
    pb2 = importlib.import_module(f"{PACKAGE}.grpc_predict_v2_pb2")
    pb2_grpc = importlib.import_module(f"{PACKAGE}.grpc_predict_v2_pb2_grpc")
    return pb2, pb2_grpc


def make_servicer(model: Any, name: str, pb2: Any, pb2_grpc: Any) -> Any:
    """A ``GRPCInferenceService`` servicer calling ``model.predict`` inline."""

    class FloorServicer(pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        async def ServerLive(self, request: Any, context: Any) -> Any:
            return pb2.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:
            return pb2.ServerReadyResponse(ready=True)

        async def ModelReady(self, request: Any, context: Any) -> Any:
            return pb2.ModelReadyResponse(ready=request.name == name)

        async def ModelInfer(self, request: Any, context: Any) -> Any:
            return infer(model, name, pb2, request)

    return FloorServicer()


def infer(model: Any, name: str, pb2: Any, request: Any) -> Any:
    """The floor's whole ModelInfer: decode, predict, encode."""
    tensor = request.inputs[0]
    shape = tuple(tensor.shape)
    raw = bool(request.raw_input_contents)
    if raw:
        X = np.frombuffer(request.raw_input_contents[0], dtype="<f8").reshape(shape)
    else:
        X = np.asarray(tensor.contents.fp64_contents, dtype=np.float64).reshape(shape)
    y = np.asarray(model.predict(X))
    response = pb2.ModelInferResponse(model_name=name, model_version="1", id=request.id)
    out = response.outputs.add(name="predict", datatype="INT64", shape=[len(y)])
    if raw:
        response.raw_output_contents.append(y.astype("<i8").tobytes())
    else:
        out.contents.int64_contents.extend(y.tolist())
    return response


async def serve(model_path: Path, port: int, name: str) -> None:
    import grpc

    pb2, pb2_grpc = load_pb2()
    with model_path.open("rb") as fh:
        model: Any = pickle.load(fh)  # written by the benchmark a moment ago
    model.predict(np.zeros((1, int(getattr(model, "n_features_in_", 1)))))
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
    )
    pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        make_servicer(model, name, pb2, pb2_grpc), server
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise OSError(f"could not bind 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The gRPC benchmark's floor server.")
    parser.add_argument("model", type=Path, help="a pickled model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default="bench")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.model, args.port, args.model_name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
