"""The model every serving benchmark measures, made once here.

A scikit-learn ``GradientBoostingClassifier`` (100 trees, depth 3) on ``n_features`` normal
features, registered as ``<name>@champion`` in ``tmp/home`` (a fresh ``MODELPLANE_HOME``) and
pickled to ``tmp/model.pkl`` for the floors. ``rng`` is the caller's: it goes on to draw the
request bodies, so the same seed gives the same model and the same bodies in every benchmark.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np


def fit_and_register(
    tmp: Path, rng: np.random.Generator, *, name: str, n_features: int
) -> tuple[Path, Path]:
    """Fit, register and pickle the model; return ``(home, model_path)``."""
    from sklearn.ensemble import GradientBoostingClassifier

    from modelplane.client import Client
    from modelplane.config import Settings

    X = rng.normal(size=(2000, n_features))
    y = (X[:, :3].sum(axis=1) + 0.5 * rng.normal(size=2000) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    home = tmp / "home"
    client = Client(Settings(home=home))
    try:
        client.log_model(model, name=name, input_example=X[:5], alias="champion")
    finally:
        client.close()
    model_path = tmp / "model.pkl"
    model_path.write_bytes(pickle.dumps(model))
    return home, model_path


def oip_body(rng: np.random.Generator, rows: int, n_features: int) -> str:
    """An OIP v2 JSON request of ``rows`` FP64 rows, asking for ``predict`` only (the floors
    answer only that; with no output named, OIP asks for every output: ``predict_proba`` too,
    about twice the work)."""
    data = rng.normal(size=(rows, n_features))
    tensor = {"name": "input-0", "shape": [rows, n_features], "datatype": "FP64",
              "data": data.ravel().tolist()}  # fmt: skip
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]})
