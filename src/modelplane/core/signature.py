"""Model signatures: the names, dtypes and shapes a model version takes and returns.

Two kinds, told apart by their inputs:

* a **tensor** signature (inferred from an array) has one input ``input-0`` of shape
  ``[-1, n_features]`` (more dimensions for images and the like); ``validate`` returns a numpy
  array of the declared dtype;
* a **columnar** signature (inferred from a DataFrame or a dict of columns) has one 1-D input of
  shape ``[-1]`` per column; ``validate`` returns a pandas DataFrame with the columns in order.

A pandas ``category`` column is recorded with its ``categories`` (and ``ordered``) beside the
dtype of those categories, so the column can be rebuilt with exactly those categories, in that
order. Signatures stored before categories were recorded read as before (a plain ``string``
column).

How a batch is checked and cast (``validate``, :func:`validate_columns`) is
:mod:`modelplane.core.coercion`'s; the dtype names are :mod:`modelplane.core.dtypes`'. pandas is
imported only when a columnar batch is validated, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelplane.core.coercion import (
    categorical,
    check_names,
    single_tensor,
    validate_frame,
    validate_tensor,
)
from modelplane.core.coercion import validate_columns as validate_columns
from modelplane.core.dtypes import DTYPES as DTYPES
from modelplane.core.dtypes import dtype_name, is_frame, is_series
from modelplane.errors import InvalidInput, SignatureMismatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DTYPES", "Signature", "TensorSpec", "infer_signature", "validate_columns"]

TENSOR_INPUT = "input-0"
TENSOR_OUTPUT = "output-0"


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: a numpy-style dtype name and a shape (-1: any size).

    ``categories`` (a 1-D column only) makes it a pandas categorical column whose categories,
    of ``dtype``, are these, in this order; ``ordered`` as pandas' own flag.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    categories: tuple[Any, ...] | None = None
    ordered: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("a tensor spec needs a name", field="name")
        if self.dtype not in DTYPES:
            raise InvalidInput(
                f"{self.name}: unknown dtype {self.dtype!r}; expected one of {sorted(DTYPES)}",
                field=self.name,
            )
        if any(d < -1 or d == 0 for d in self.shape):
            raise InvalidInput(
                f"{self.name}: dimensions must be positive or -1, got {list(self.shape)}",
                field=self.name,
            )
        if self.categories is not None:
            _check_categories(self)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.categories is not None:
            out["categories"] = list(self.categories)
            if self.ordered:
                out["ordered"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        try:
            name, dtype, shape = data["name"], data["dtype"], data["shape"]
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"a tensor spec needs name, dtype and shape; got {data!r}") from exc
        if not isinstance(name, str) or not isinstance(dtype, str):
            raise InvalidInput(f"tensor spec name and dtype must be strings; got {data!r}")
        if not isinstance(shape, Sequence) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise InvalidInput(
                f"{name}: shape must be a list of integers, got {shape!r}", field=name
            )
        categories = data.get("categories")
        if categories is not None and not isinstance(categories, list | tuple):
            raise InvalidInput(f"{name}: categories must be a list", field=name)
        ordered = data.get("ordered", False)
        if not isinstance(ordered, bool):
            raise InvalidInput(f"{name}: ordered must be true or false", field=name)
        return cls(
            name=name,
            dtype=dtype,
            shape=tuple(shape),
            categories=None if categories is None else tuple(categories),
            ordered=ordered,
        )

    @functools.cached_property  # built once per loaded version, used on every batch
    def category_dtype(self) -> pd.CategoricalDtype:
        """The pandas dtype of a categorical column (only for a spec with categories)."""
        import pandas as pd

        if self.categories is None:
            raise InvalidInput(f"{self.name} is not a categorical column", field=self.name)
        if self.dtype == "string":
            index = pd.Index(list(self.categories))  # pandas' own string dtype, as in training
        else:
            index = pd.Index(np.asarray(self.categories, dtype=self.dtype))
        return pd.CategoricalDtype(index, ordered=self.ordered)


@dataclass(frozen=True)
class Signature:
    """What a model takes (``inputs``) and returns (``outputs``)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()

    @functools.cached_property  # asked on every request (the fields are frozen)
    def is_columnar(self) -> bool:
        """True for a signature of named 1-D columns (inferred from a DataFrame or dict)."""
        return bool(self.inputs) and all(len(s.shape) == 1 for s in self.inputs)

    @functools.cached_property
    def categorical_inputs(self) -> tuple[TensorSpec, ...]:
        """The inputs recorded with categories (most signatures have none)."""
        return tuple(s for s in self.inputs if s.categories is not None)

    def frame(self, columns: Mapping[str, np.ndarray[Any, Any]]) -> pd.DataFrame:
        """One DataFrame of columns checked by `validate_columns` (a whole batch of them),
        with each categorical column rebuilt with the signature's categories."""
        import pandas as pd

        if not self.categorical_inputs:
            return pd.DataFrame(columns, copy=False)
        data: dict[str, Any] = dict(columns)
        for spec in self.categorical_inputs:
            data[spec.name] = categorical(columns[spec.name], spec)
        return pd.DataFrame(data, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        try:
            inputs, outputs = data["inputs"], data.get("outputs", [])
        except (KeyError, AttributeError, TypeError) as exc:
            raise InvalidInput(f"a signature needs a list of inputs; got {data!r}") from exc
        if not isinstance(inputs, list | tuple) or not isinstance(outputs, list | tuple):
            raise InvalidInput("a signature's inputs and outputs must be lists", field="signature")
        return cls(
            inputs=tuple(TensorSpec.from_dict(s) for s in inputs),
            outputs=tuple(TensorSpec.from_dict(s) for s in outputs),
        )

    def validate(self, batch: Any) -> Any:
        """Check ``batch`` against the inputs and return what the model should be given.

        Tensor signatures return a numpy array (a dict of arrays for several inputs); columnar
        ones a pandas DataFrame. Raises `SignatureMismatch` naming the column or tensor.
        """
        if not self.inputs:
            return batch
        if self.is_columnar:
            return validate_frame(self.inputs, batch)
        if len(self.inputs) == 1:
            spec = self.inputs[0]
            return validate_tensor(spec, single_tensor(spec, batch))
        if not isinstance(batch, Mapping):
            names = ", ".join(s.name for s in self.inputs)
            raise SignatureMismatch(
                f"this model takes several tensors ({names}): send a dict of them, "
                f"got {type(batch).__name__}",
                field=self.inputs[0].name,
            )
        check_names([s.name for s in self.inputs], list(batch), kind="tensor")
        return {s.name: validate_tensor(s, batch[s.name]) for s in self.inputs}


def infer_signature(X: Any, y: Any = None) -> Signature:
    """Build a signature from example input ``X`` and, optionally, example output ``y``."""
    return Signature(inputs=_infer_inputs(X), outputs=() if y is None else _infer_outputs(y))


# -- inference ------------------------------------------------------------------------------


def _infer_inputs(x: Any) -> tuple[TensorSpec, ...]:
    if is_frame(x):
        return tuple(_column_spec(str(col), x[col].dtype) for col in x.columns)
    if isinstance(x, Mapping):
        if not x:
            raise InvalidInput("cannot infer a signature from an empty dict of columns")
        specs = []
        for name, values in x.items():
            column = np.asarray(values)
            if column.ndim != 1:
                raise InvalidInput(
                    f"column {name!r} must be 1-D to infer a columnar signature, "
                    f"got shape {column.shape}",
                    field=str(name),
                )
            specs.append(_column_spec(str(name), getattr(values, "dtype", column.dtype)))
        return tuple(specs)
    array = np.asarray(x)
    if array.ndim < 2:
        raise InvalidInput(
            f"X must be 2-D (rows by features) to infer a signature, got shape {array.shape}; "
            "use X.reshape(-1, 1) for a single feature",
            field=TENSOR_INPUT,
        )
    dtype = dtype_name(array.dtype, TENSOR_INPUT)
    return (TensorSpec(TENSOR_INPUT, dtype, (-1, *array.shape[1:])),)


def _column_spec(name: str, dtype: Any) -> TensorSpec:
    """A 1-D column's spec; a pandas categorical keeps its categories (and their order)."""
    categories = getattr(dtype, "categories", None)
    if categories is None:
        return TensorSpec(name, dtype_name(dtype, name), (-1,))
    return TensorSpec(
        name,
        dtype_name(categories.dtype, name),
        (-1,),
        categories=tuple(categories.tolist()),
        ordered=bool(dtype.ordered),
    )


_CATEGORY_TYPES: dict[str, type | tuple[type, ...]] = {"U": str, "b": bool, "f": (int, float)}


def _check_categories(spec: TensorSpec) -> None:
    """Categories are JSON scalars of the spec's dtype, unique, of a 1-D column."""
    categories = spec.categories or ()
    if len(spec.shape) != 1:
        raise InvalidInput(f"{spec.name}: only a 1-D column can have categories", field=spec.name)
    kind = "U" if spec.dtype == "string" else np.dtype(spec.dtype).kind
    wanted: type | tuple[type, ...] = _CATEGORY_TYPES.get(kind, int)
    for value in categories:
        if not isinstance(value, wanted) or (kind in "iuf" and isinstance(value, bool)):
            raise InvalidInput(
                f"{spec.name}: category {value!r} is not a {spec.dtype} value", field=spec.name
            )
    if len(set(categories)) != len(categories):
        raise InvalidInput(f"{spec.name}: categories must be unique", field=spec.name)


def _infer_outputs(y: Any) -> tuple[TensorSpec, ...]:
    if is_frame(y):
        return tuple(
            TensorSpec(str(col), dtype_name(y[col].dtype, str(col)), (-1,)) for col in y.columns
        )
    name = TENSOR_OUTPUT
    if is_series(y) and y.name is not None:
        name = str(y.name)
    array = np.asarray(y)
    if array.ndim == 0:
        raise InvalidInput("y must be 1-D or 2-D, got a scalar", field=name)
    return (TensorSpec(name, dtype_name(array.dtype, name), (-1, *array.shape[1:])),)
