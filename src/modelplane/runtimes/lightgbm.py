"""LightGBM: the Booster's text format (safe: data only, no code).

A fitted ``LGBMClassifier`` is saved as its booster plus one extra line,
``modelplane: {"estimator": "LGBMClassifier", "classes": [...]}``, put after the booster's
``end of parameters`` (LightGBM ignores what follows it, except the ``pandas_categorical`` line
that stays last). On load the booster is wrapped so ``predict`` returns class labels and
``predict_proba`` probabilities: a binary booster predicts P(class 1), a multiclass one a matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import InvalidInput
from modelplane.runtimes.base import import_engine, no_proba, to_frame

__all__ = ["LightGBMClassifierRuntime", "LightGBMRuntime", "load", "save"]

FLAVOR = "lightgbm"
FILE_NAME = "model.lgb.txt"
MARKER = "modelplane:"
_END = "end of parameters"


class LightGBMRuntime:
    """A booster: ``predict`` is the booster's own (values, or probabilities for classifiers)."""

    flavor = FLAVOR
    has_proba = False

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.predict(to_frame(batch)))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        raise no_proba(FLAVOR, "a bare booster; log the LGBMClassifier to get probabilities")


class LightGBMClassifierRuntime:
    """A booster saved from an ``LGBMClassifier``, with its class labels."""

    flavor = FLAVOR
    has_proba = True

    def __init__(self, booster: Any, classes: np.ndarray[Any, Any]) -> None:
        self.booster = booster
        self.classes = classes

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.classes[np.argmax(self.predict_proba(batch), axis=1)])

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        proba = np.asarray(self.booster.predict(to_frame(batch)))
        if proba.ndim == 1:  # binary: P(class 1)
            return np.column_stack([1.0 - proba, proba])
        return proba


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    booster = getattr(model, "booster_", model)
    if not hasattr(booster, "model_to_string"):
        raise InvalidInput(
            f"cannot save a {type(model).__name__} as lightgbm: expected a fitted LGBM model "
            "or a Booster",
            field="flavor",
        )
    text: str = booster.model_to_string()
    classes = getattr(model, "classes_", None) if booster is not model else None
    if classes is not None:
        meta = {"estimator": "LGBMClassifier", "classes": np.asarray(classes).tolist()}
        head, sep, tail = text.partition(_END)
        if not sep:
            raise InvalidInput("unexpected LightGBM model text: no 'end of parameters' line")
        text = f"{head}{sep}\n{MARKER} {json.dumps(meta)}{tail}"
    path = dest_dir / FILE_NAME
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, *, trust: bool = False) -> LightGBMRuntime | LightGBMClassifierRuntime:
    lgb = import_engine("lightgbm", "lightgbm")
    text = path.read_text(encoding="utf-8")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise InvalidInput(f"{path.name} is not a readable LightGBM model: {exc}") from exc
    meta = _read_meta(text, path)
    if meta is None:
        return LightGBMRuntime(booster)
    return LightGBMClassifierRuntime(booster, np.asarray(meta["classes"]))


def _read_meta(text: str, path: Path) -> dict[str, Any] | None:
    at = text.rfind("\n" + MARKER)
    if at < 0:
        return None
    line = text[at + 1 + len(MARKER) :].split("\n", 1)[0]
    try:
        meta = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: unreadable {MARKER} line: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list):
        raise InvalidInput(f"{path.name}: the {MARKER} line has no list of classes")
    return meta
