"""The `Runtime` protocol, the flavor table and the small helpers every flavor shares.

Nothing here imports a machine-learning engine: a flavor module is named by its dotted path in
`FLAVORS` and imported only when a model of that flavor is saved or loaded, so a process that
serves an ONNX model never pays for importing torch (STYLE.md, habit 7).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np

from modelplane.errors import DependencyMissing, InvalidInput

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FLAVORS",
    "Flavor",
    "Runtime",
    "SavedModel",
    "flavor_module",
    "import_engine",
    "no_proba",
    "to_frame",
    "to_matrix",
]

# flavor name → the module that saves and loads it (imported on first use).
FLAVORS: dict[str, str] = {
    "sklearn": "modelplane.runtimes.sklearn",
    "onnx": "modelplane.runtimes.onnx",
    "xgboost": "modelplane.runtimes.xgboost",
    "lightgbm": "modelplane.runtimes.lightgbm",
    "torch": "modelplane.runtimes.torch",
    "pyfunc": "modelplane.runtimes.pyfunc",
}


@runtime_checkable
class Runtime(Protocol):
    """A loaded model, ready to predict.

    Takes numpy arrays, pandas DataFrames or dicts of columns; returns numpy arrays.
    """

    flavor: str

    def predict(self, batch: Any) -> np.ndarray[Any, Any]: ...

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]: ...

    @property
    def has_proba(self) -> bool: ...


@dataclass
class SavedModel:
    """What `save_model` wrote: the flavor and the one file inside the destination folder."""

    flavor: str
    path: Path


class Flavor(Protocol):
    """What each flavor module provides."""

    def save(self, model: Any, dest_dir: Path, *, input_example: Any = None) -> Path: ...

    def load(self, path: Path, *, trust: bool = False) -> Runtime: ...


def flavor_module(flavor: str) -> Flavor:
    """Import the module of ``flavor`` (it imports its engine, or raises `DependencyMissing`)."""
    try:
        dotted = FLAVORS[flavor]
    except KeyError:
        raise InvalidInput(
            f"unknown flavor {flavor!r}; expected one of {sorted(FLAVORS)}", field="flavor"
        ) from None
    return cast(Flavor, importlib.import_module(dotted))


def import_engine(module: str, extra: str) -> ModuleType:
    """Import a flavor's engine, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyMissing(
            f"{module} is not installed; install it with: pip install 'modelplane[{extra}]'"
        ) from exc


def no_proba(flavor: str, detail: str = "") -> InvalidInput:
    """The error a runtime raises from ``predict_proba`` when its model has none."""
    suffix = f" ({detail})" if detail else ""
    return InvalidInput(f"this {flavor} model has no predict_proba{suffix}; use predict")


def is_frame(batch: Any) -> bool:
    """A pandas DataFrame, told without importing pandas."""
    return type(batch).__module__.startswith("pandas") and hasattr(batch, "columns")


def to_frame(batch: Any) -> Any:
    """DataFrames and arrays pass through unchanged; a dict of columns becomes a DataFrame.

    For engines (scikit-learn, XGBoost, LightGBM) that take both arrays and DataFrames and use
    the column names.
    """
    if isinstance(batch, Mapping):
        import pandas as pd

        return pd.DataFrame(dict(batch), copy=False)
    if isinstance(batch, list):
        return np.asarray(batch)
    return batch


def to_matrix(batch: Any, dtype: Any = None) -> np.ndarray[Any, Any]:
    """A numpy array from an array, a DataFrame or a dict of columns (stacked in order).

    No copy when the input already is an array of ``dtype``.
    """
    if is_frame(batch):
        frame = cast("pd.DataFrame", batch)
        return frame.to_numpy(dtype=dtype)
    if isinstance(batch, Mapping):
        columns = list(batch.values())
        if len(columns) == 1:
            return np.asarray(columns[0], dtype=dtype)
        return np.column_stack([np.asarray(c, dtype=dtype) for c in columns])
    return np.asarray(batch, dtype=dtype)
