"""XGBoost: the native UBJSON format (safe: data only, no code).

A scikit-learn wrapper (``XGBClassifier``…) is saved through its own ``save_model``, which keeps
its extra attributes (classes, objective) in the file, and its class is recorded in the file name
(``model.xgbclassifier.ubj``) so the artifact stays one file and reloads as the same wrapper,
``predict_proba`` included. A renamed file (an artifact store may keep only the content) still
reloads as a wrapper from the ``scikit_learn`` attribute the wrapper writes into the booster.
A bare ``Booster`` is ``model.ubj``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import InvalidInput
from modelplane.runtimes.base import import_engine, no_proba, to_frame

__all__ = ["XGBoostRuntime", "load", "save"]

FLAVOR = "xgboost"
WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
_BY_SUFFIX = {name.lower(): name for name in WRAPPERS}
# what the wrappers' save_model writes in the booster's "scikit_learn" attribute
_BY_ESTIMATOR_TYPE = {
    "classifier": "XGBClassifier",
    "regressor": "XGBRegressor",
    "ranker": "XGBRanker",
}


class XGBoostRuntime:
    """A scikit-learn wrapper or a bare Booster."""

    flavor = FLAVOR

    def __init__(self, model: Any, *, wrapper: bool) -> None:
        self.model = model
        # Booster.inplace_predict skips building a DMatrix (the wrappers use it too).
        self._predict = model.predict if wrapper else model.inplace_predict
        self._predict_proba = getattr(model, "predict_proba", None) if wrapper else None

    @property
    def has_proba(self) -> bool:
        return self._predict_proba is not None

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self._predict(to_frame(batch)))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        if self._predict_proba is None:
            raise no_proba(FLAVOR, type(self.model).__name__)
        # The wrappers return a transposed (Fortran-ordered) view for binary classifiers.
        return np.ascontiguousarray(self._predict_proba(to_frame(batch)))


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    wrapper = _wrapper_name(model)
    path = dest_dir / (f"model.{wrapper.lower()}.ubj" if wrapper else "model.ubj")
    if not wrapper and not hasattr(model, "save_raw"):
        raise InvalidInput(
            f"cannot save a {type(model).__name__} as xgboost: expected a Booster or one of "
            f"{', '.join(WRAPPERS)}",
            field="flavor",
        )
    model.save_model(str(path))
    return path


def load(path: Path, *, trust: bool = False) -> XGBoostRuntime:
    xgb = import_engine("xgboost", "xgboost")
    parts = path.name.lower().split(".")
    wrapper = _BY_SUFFIX.get(parts[-2]) if len(parts) >= 3 else None
    # From a buffer: XGBoost tells JSON from UBJSON by content, whatever the file is named.
    raw = bytearray(path.read_bytes())
    try:
        booster = None if wrapper else xgb.Booster(model_file=raw)
        if booster is not None:  # a renamed file: the wrapper's own attribute still says
            kind = _estimator_type(booster)
            wrapper = _BY_ESTIMATOR_TYPE.get(kind) if kind else None
        if wrapper is None:
            return XGBoostRuntime(booster, wrapper=False)
        model = getattr(xgb, wrapper)()
        model.load_model(raw)
    except xgb.core.XGBoostError as exc:
        raise InvalidInput(f"{path.name} is not a readable XGBoost model: {exc}") from exc
    return XGBoostRuntime(model, wrapper=True)


def _estimator_type(booster: Any) -> str | None:
    try:
        meta = json.loads(booster.attr("scikit_learn") or "{}")
    except json.JSONDecodeError:
        return None
    kind = meta.get("_estimator_type") if isinstance(meta, dict) else None
    return kind if isinstance(kind, str) else None


def _wrapper_name(model: Any) -> str | None:
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in WRAPPERS:
            return cls.__name__
    return None
