"""What serving a scikit-learn model imports, pinned (issue 13, memory).

pytest itself is loaded in this process, so the check runs in a fresh interpreter: a driver
builds the app as ``modelplane serve`` does (``api.server.factory`` over the options in
``MODELPLANE_SERVE_OPTIONS``, gRPC on, the prediction log and the controller on), runs its
lifespan, asks one prediction of the scikit-learn model and writes ``sorted(sys.modules)``;
then asks one of an XGBoost model (loaded on that request) and writes them again; then shuts
down (the prediction log's last write included) and writes them a third time.

What must hold: no torch, no pytest, no library of a flavor that is not served, and not the
``skops.io`` start-up scan of every scikit-learn estimator (``runtimes/sklearn.py``'s
``_skops_io`` skips it: the scan imports every scikit-learn module, torch through
``array_api_compat`` and pytest through ``sklearn.utils._testing`` — ``import skops.io`` alone
holds ~380 MiB, see ``benchmarks/memory.py``). A heavy library appears once a model that needs it
loads, and not before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.serving.options import ServeOptions

#: Never in a serving process that serves scikit-learn models (and XGBoost, once loaded).
NEVER = ("torch", "pytest", "_pytest", "tensorflow", "jax")
#: Flavors' libraries: absent until a model of that flavor loads.
OTHER_FLAVORS = ("xgboost", "lightgbm", "onnxruntime", "onnx")
#: What skops' scan of every estimator (``sklearn.utils.all_estimators``) would have imported.
SCAN_ONLY = ("sklearn.utils._testing", "sklearn.neural_network", "sklearn.semi_supervised")

DRIVER = """
import asyncio, json, os, sys

async def main():
    import httpx
    from modelplane.api.server import factory

    out, phases = os.environ["DRIVER_OUT"], {}
    bodies = json.loads(os.environ["DRIVER_BODIES"])
    app = factory()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mp") as http:
            phases["ready"] = (await http.get("/v2/health/ready")).status_code
            for name in ("plain", "boost"):
                resp = await http.post(f"/v2/models/{name}/infer", json=bodies[name])
                phases[name] = {"status": resp.status_code, "modules": sorted(sys.modules)}
    phases["stopped"] = sorted(sys.modules)
    with open(out, "w") as fh:
        json.dump(phases, fh)

asyncio.run(main())
"""


def body(rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    tensor = {"name": "input-0", "datatype": "FP64", "shape": list(rows.shape),
              "data": rows.ravel().tolist()}  # fmt: skip
    return {"inputs": [tensor]}


@pytest.fixture
def phases(home: Path, tmp_path: Path) -> dict[str, Any]:
    """The driver's readings: one scikit-learn model served, then an XGBoost one, then stop."""
    from sklearn.ensemble import GradientBoostingClassifier

    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    client = Client(Settings(home=home))
    try:
        plain = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0)
        client.log_model(plain.fit(X, y), name="plain", input_example=X[:5], alias="champion")
        boost = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
        client.log_model(boost, name="boost", input_example=X[:5], alias="champion")
    finally:
        client.close()
    options = ServeOptions(grpc_port=0, models=("plain@champion",), access_log=False)
    out = tmp_path / "phases.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env.update(
        MODELPLANE_HOME=str(home),
        MODELPLANE_SERVE_OPTIONS=options.to_json(),
        OMP_NUM_THREADS="1",
        DRIVER_OUT=str(out),
        DRIVER_BODIES=json.dumps({"plain": body(X[:1]), "boost": body(X[:3])}),
    )
    done = subprocess.run([sys.executable, "-c", DRIVER], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    readings: dict[str, Any] = json.loads(out.read_text())
    return readings


def loaded(modules: list[str], package: str) -> list[str]:
    return [m for m in modules if m == package or m.startswith(package + ".")]


def test_serving_sklearn_imports_no_other_flavor_and_a_flavor_comes_with_its_model(
    phases: dict[str, Any],
) -> None:
    assert phases["ready"] == 200
    assert phases["plain"]["status"] == 200
    modules = phases["plain"]["modules"]
    assert loaded(modules, "sklearn")  # it did load the model
    assert loaded(modules, "skops.io")
    for package in (*NEVER, *OTHER_FLAVORS):
        assert not loaded(modules, package), (
            f"{package} is imported: {loaded(modules, package)[:5]}"
        )
    for module in SCAN_ONLY:  # skops' scan of every estimator did not run
        assert module not in modules

    # The XGBoost model loads on its first request: xgboost comes with it, nothing else does
    # (and shutting down, the prediction log's last write included, brings none either).
    assert phases["boost"]["status"] == 200
    for modules in (phases["boost"]["modules"], phases["stopped"]):
        assert loaded(modules, "xgboost")
        for package in (*NEVER, "lightgbm", "onnxruntime", "onnx", *SCAN_ONLY):
            assert not loaded(modules, package), f"{package}: {loaded(modules, package)[:5]}"
