"""Model signatures: the names, dtypes and shapes a model version takes and returns.

Two kinds, told apart by their inputs:

* a **tensor** signature (inferred from an array) has one input ``input-0`` of shape
  ``[-1, n_features]`` (more dimensions for images and the like); ``validate`` returns a numpy
  array of the declared dtype;
* a **columnar** signature (inferred from a DataFrame or a dict of columns) has one 1-D input of
  shape ``[-1]`` per column; ``validate`` returns a pandas DataFrame with the columns in order.

A column of strings takes text: ``bytes`` (what OIP's BYTES tensors carry) are decoded as UTF-8
wherever the signature says ``string``, so a model sees the ``str`` values it was trained on
(invalid UTF-8 is a `SignatureMismatch` naming the column). A pandas ``category`` column is
recorded with its ``categories`` (and ``ordered``) beside the dtype of those categories, and is
rebuilt with exactly those categories, in that order, so the codes a model sees match training;
a value outside them is missing (NaN), as pandas and the tree engines treat it. Signatures
stored before categories were recorded read as before (a plain ``string`` column).

``validate`` sits on the prediction hot path: numpy input is checked with whole-array operations,
never a Python loop over rows, and input that already matches is returned without a copy.
pandas is imported only when a columnar batch is validated, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from modelplane.errors import InvalidInput, SignatureMismatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DTYPES", "Signature", "TensorSpec", "infer_signature", "validate_columns"]

TENSOR_INPUT = "input-0"
TENSOR_OUTPUT = "output-0"
DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "string",
    }
)


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
            data[spec.name] = _categorical(columns[spec.name], spec)
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
            return _validate_columns(self.inputs, batch)
        if len(self.inputs) == 1:
            spec = self.inputs[0]
            return _validate_tensor(spec, _single_tensor(spec, batch))
        if not isinstance(batch, Mapping):
            names = ", ".join(s.name for s in self.inputs)
            raise SignatureMismatch(
                f"this model takes several tensors ({names}): send a dict of them, "
                f"got {type(batch).__name__}",
                field=self.inputs[0].name,
            )
        _check_names([s.name for s in self.inputs], list(batch), kind="tensor")
        return {s.name: _validate_tensor(s, batch[s.name]) for s in self.inputs}


def validate_columns(
    signature: Signature, columns: Mapping[str, np.ndarray[Any, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    """The columnar check on a dict of 1-D numpy columns, returning numpy columns.

    The serving hot path: no DataFrame per request (building one costs ~50-100 µs and
    concatenating 32 of them ~250 µs, more than a model's predict); the batch becomes one
    DataFrame after it is assembled.
    """
    specs = signature.inputs
    _check_names([s.name for s in specs], list(columns), kind="column")
    out: dict[str, np.ndarray[Any, Any]] = {}
    length: int | None = None
    for spec in specs:
        value = np.asarray(columns[spec.name])
        if value.ndim != 1:
            raise SignatureMismatch(
                f"column {spec.name!r}: expected a 1-D column, got shape {list(value.shape)}",
                field=spec.name,
            )
        if length is None:
            length = len(value)
        elif len(value) != length:
            raise SignatureMismatch(
                f"column {spec.name!r} has {len(value)} values, the others {length}",
                field=spec.name,
            )
        out[spec.name] = _cast(value, spec.dtype, spec.name, what=f"column {spec.name!r}")
    return out


def infer_signature(X: Any, y: Any = None) -> Signature:
    """Build a signature from example input ``X`` and, optionally, example output ``y``."""
    return Signature(inputs=_infer_inputs(X), outputs=() if y is None else _infer_outputs(y))


# -- inference ------------------------------------------------------------------------------


def _is_frame(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "columns")


def _is_series(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == "Series"


def _infer_inputs(x: Any) -> tuple[TensorSpec, ...]:
    if _is_frame(x):
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
    dtype = _dtype_name(array.dtype, TENSOR_INPUT)
    return (TensorSpec(TENSOR_INPUT, dtype, (-1, *array.shape[1:])),)


def _column_spec(name: str, dtype: Any) -> TensorSpec:
    """A 1-D column's spec; a pandas categorical keeps its categories (and their order)."""
    categories = getattr(dtype, "categories", None)
    if categories is None:
        return TensorSpec(name, _dtype_name(dtype, name), (-1,))
    return TensorSpec(
        name,
        _dtype_name(categories.dtype, name),
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
    if _is_frame(y):
        return tuple(
            TensorSpec(str(col), _dtype_name(y[col].dtype, str(col)), (-1,)) for col in y.columns
        )
    name = TENSOR_OUTPUT
    if _is_series(y) and y.name is not None:
        name = str(y.name)
    array = np.asarray(y)
    if array.ndim == 0:
        raise InvalidInput("y must be 1-D or 2-D, got a scalar", field=name)
    return (TensorSpec(name, _dtype_name(array.dtype, name), (-1, *array.shape[1:])),)


def _dtype_name(dtype: Any, field: str) -> str:
    """The signature dtype name of a numpy or pandas dtype."""
    categories = getattr(dtype, "categories", None)
    if categories is not None:  # pandas categorical: the dtype of its categories
        return _dtype_name(categories.dtype, field)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)  # pandas nullable Int64, boolean, …
    kind = getattr(dtype, "kind", "O")
    if str(dtype) in ("string", "str") or kind in ("O", "U", "S", "T"):
        return "string"
    name = str(np.dtype(numpy_dtype if numpy_dtype is not None else dtype).name)
    if name not in DTYPES:
        raise InvalidInput(
            f"{field}: dtype {dtype} is not supported in a signature; "
            f"convert it to one of {sorted(DTYPES)}",
            field=field,
        )
    return name


# -- validation -----------------------------------------------------------------------------


def _single_tensor(spec: TensorSpec, batch: Any) -> Any:
    """Unwrap a ``{"input-0": …}`` dict; other inputs are taken as the tensor itself."""
    if isinstance(batch, Mapping):
        _check_names([spec.name], list(batch), kind="tensor")
        return batch[spec.name]
    if _is_frame(batch):
        width = spec.shape[1] if len(spec.shape) == 2 else -1
        if width != -1 and len(batch.columns) != width:
            raise SignatureMismatch(
                f"{spec.name}: expected {width} columns (shape {list(spec.shape)}), "
                f"got a DataFrame with {len(batch.columns)}",
                field=spec.name,
            )
        return batch.to_numpy()
    return batch


def _validate_tensor(spec: TensorSpec, value: Any) -> np.ndarray[Any, Any]:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise SignatureMismatch(
            f"{spec.name}: expected a rectangular array of shape {list(spec.shape)}, "
            f"got rows of different lengths",
            field=spec.name,
        ) from exc
    rank = len(spec.shape)
    if array.ndim == rank - 1 and _dims_match(array.shape, spec.shape[1:]):
        array = array[np.newaxis]  # one example without its batch axis
    if array.ndim != rank:
        raise SignatureMismatch(
            f"{spec.name}: expected {rank}-D input of shape {list(spec.shape)}, "
            f"got shape {list(array.shape)}",
            field=spec.name,
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if want != -1 and want != got:
            what = "features" if axis == 1 and rank == 2 else f"entries on axis {axis}"
            raise SignatureMismatch(
                f"{spec.name}: expected {want} {what} (shape {list(spec.shape)}), got {got}",
                field=spec.name,
            )
    return _cast(array, spec.dtype, spec.name)


def _dims_match(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(got) == len(want) and all(w in (-1, g) for g, w in zip(got, want, strict=True))


def _validate_columns(specs: tuple[TensorSpec, ...], batch: Any) -> pd.DataFrame:
    import pandas as pd

    frame = _as_frame(batch, specs)
    _check_names([s.name for s in specs], [str(c) for c in frame.columns], kind="column")
    columns: dict[str, Any] = {}
    unchanged = [str(c) for c in frame.columns] == [s.name for s in specs]
    for spec in specs:
        column = frame[spec.name]
        if column.ndim != 1:
            raise SignatureMismatch(f"column {spec.name!r} appears more than once", field=spec.name)
        values = _cast_column(column, spec)
        unchanged = unchanged and values is column
        columns[spec.name] = values
    if unchanged:
        return frame
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _as_frame(batch: Any, specs: tuple[TensorSpec, ...]) -> pd.DataFrame:
    import pandas as pd

    if _is_frame(batch):
        return cast("pd.DataFrame", batch)
    names = ", ".join(s.name for s in specs)
    try:
        if isinstance(batch, Mapping):
            if all(np.ndim(v) == 0 for v in batch.values()):  # one record
                return pd.DataFrame({k: [v] for k, v in batch.items()})
            for key, values in batch.items():
                if np.ndim(values) != 1:
                    raise SignatureMismatch(
                        f"column {key!r}: expected a 1-D column, got shape {np.shape(values)}",
                        field=str(key),
                    )
            return pd.DataFrame(dict(batch))
        if isinstance(batch, Sequence) and batch and all(isinstance(r, Mapping) for r in batch):
            return pd.DataFrame.from_records(list(batch))
    except ValueError as exc:  # columns of different lengths
        raise SignatureMismatch(
            f"columns must all have the same length: {exc}", field=specs[0].name
        ) from exc
    raise SignatureMismatch(
        f"this model takes named columns ({names}): send a DataFrame, a dict of columns or a "
        f"list of records, got {type(batch).__name__}",
        field=specs[0].name,
    )


def _check_names(expected: list[str], got: list[str], *, kind: str) -> None:
    given = set(got)
    for name in expected:
        if name not in given:
            raise SignatureMismatch(
                f"missing {kind} {name!r}: expected {expected}, got {got}", field=name
            )
    wanted = set(expected)
    for name in got:
        if name not in wanted:
            raise SignatureMismatch(
                f"unexpected {kind} {name!r}: expected {expected}, got {got}", field=name
            )


def _cast_column(column: pd.Series, spec: TensorSpec) -> Any:
    if spec.categories is not None:
        return _categorical_series(column, spec)
    if spec.dtype == "string":
        if _is_string_dtype(column.dtype):
            if column.dtype != np.dtype(object):
                return column  # pandas' own string dtype holds no bytes
            values = column.to_numpy()
            text = _text(values, spec.name, f"column {spec.name!r}")
            return column if text is values else type(column)(text, index=column.index)
        raise SignatureMismatch(
            f"column {spec.name!r}: expected strings, got {column.dtype}", field=spec.name
        )
    if column.dtype == np.dtype(spec.dtype):
        return column  # already right: no copy
    return _cast(column.to_numpy(), spec.dtype, spec.name, what=f"column {spec.name!r}")


def _categorical_series(column: pd.Series, spec: TensorSpec) -> pd.Series:
    """``column`` as a categorical of the spec's categories (unchanged if it already is)."""
    import pandas as pd

    dtype = spec.category_dtype
    if isinstance(column.dtype, pd.CategoricalDtype):
        same = column.dtype.ordered == dtype.ordered and column.cat.categories.equals(
            dtype.categories
        )
        if same:
            return column
    values = column.to_numpy()
    missing = pd.isna(values)
    if missing.any():
        codes = np.full(len(values), -1, dtype=np.intp)
        codes[~missing] = _codes(values[~missing], spec)
    else:
        codes = _codes(values, spec)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=column.index)


def _categorical(values: np.ndarray[Any, Any], spec: TensorSpec) -> pd.Categorical:
    """Checked values of a categorical column (`validate_columns`) as a pandas Categorical."""
    import pandas as pd

    if values.dtype.kind == "f":
        codes = np.full(len(values), -1, dtype=np.intp)
        present = ~np.isnan(values)
        codes[present] = _indexer(spec, values[present])
    else:
        codes = _indexer(spec, values)
    return pd.Categorical.from_codes(codes, dtype=spec.category_dtype)


def _codes(values: np.ndarray[Any, Any], spec: TensorSpec) -> np.ndarray[Any, Any]:
    """Each value's position among the categories; -1 (missing) for a value outside them."""
    return _indexer(spec, _cast(values, spec.dtype, spec.name, what=f"column {spec.name!r}"))


def _indexer(spec: TensorSpec, values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    index = spec.category_dtype.categories
    codes: np.ndarray[Any, Any] = index.get_indexer(values)  # type: ignore[arg-type]  # any array
    return codes


def _is_string_dtype(dtype: Any) -> bool:
    try:
        return _dtype_name(dtype, "") == "string"
    except InvalidInput:
        return False


def _cast(
    array: np.ndarray[Any, Any], dtype: str, field: str, *, what: str | None = None
) -> np.ndarray[Any, Any]:
    """Cast without losing information, or raise `SignatureMismatch`."""
    what = what or field
    if dtype == "string":
        if array.dtype.kind in "UT":
            return array
        if array.dtype.kind in "OS":
            return _text(array, field, what)
        raise SignatureMismatch(f"{what}: expected strings, got {array.dtype}", field=field)
    target = np.dtype(dtype)
    if array.dtype == target:
        return array
    source = array.dtype
    if source.kind == "O":
        array = _numbers_from_objects(array, target, what, field)
        source = array.dtype
        if source == target:
            return array
    if source.kind not in "biuf":
        raise SignatureMismatch(f"{what}: expected {dtype}, got {_describe(source)}", field=field)
    if target.kind == "f" or np.can_cast(source, target, "safe"):
        return array.astype(target)  # int→float and float narrowing are accepted
    if target.kind == "b":
        if source.kind == "b" or bool(np.isin(array, (0, 1)).all()):
            return array.astype(target)
        raise SignatureMismatch(f"{what}: expected bool, got {source}", field=field)
    if source.kind == "f" and not np.all(np.isfinite(array) & (array == np.trunc(array))):
        raise SignatureMismatch(
            f"{what}: expected {dtype}, got {source} values with a fractional part or NaN",
            field=field,
        )
    if array.size:
        info = np.iinfo(target)
        low, high = array.min(), array.max()
        # In floats, int64/uint64's max rounds up to 2**63/2**64, which does not fit: compare
        # with max + 1 (exact in floats, or absorbed into the rounding) and refuse it.
        too_high = high >= float(info.max) + 1 if source.kind == "f" else high > info.max
        if low < info.min or too_high:
            raise SignatureMismatch(
                f"{what}: expected {dtype}, got values from {low} to {high} that do not fit",
                field=field,
            )
    return array.astype(target)


def _text(array: np.ndarray[Any, Any], field: str, what: str) -> np.ndarray[Any, Any]:
    """Strings as ``str``: ``bytes`` elements (OIP BYTES) decoded as UTF-8, in an object array.

    ``array`` itself when no element is ``bytes``. Other elements (``None``…) are left as they
    are, for the model to judge, as ``load_model`` would.
    """
    items = array.ravel().tolist()
    if not any(type(item) is bytes for item in items):
        return array if array.dtype.kind == "O" else array.astype(object)
    decoded: list[Any] = []
    for i, item in enumerate(items):
        if type(item) is bytes:
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise SignatureMismatch(
                    f"{what}: element {i} is not valid UTF-8 text ({item[:20]!r})", field=field
                ) from None
        decoded.append(item)
    out = np.empty(len(decoded), dtype=object)
    out[:] = decoded
    return out.reshape(array.shape)


def _numbers_from_objects(
    array: np.ndarray[Any, Any], target: np.dtype[Any], what: str, field: str
) -> np.ndarray[Any, Any]:
    """Numbers out of an object array (JSON lists, pandas nullable columns); None → NaN."""
    if target.kind == "f":
        array = np.where(_elementwise(array, lambda v: v is None), np.nan, array)
    if _elementwise(array, lambda v: isinstance(v, str | bytes)).any():
        raise SignatureMismatch(f"{what}: expected {target}, got strings", field=field)
    try:
        return array.astype(np.float64)  # an int target then gets the fractional-part check
    except (TypeError, ValueError) as exc:
        raise SignatureMismatch(
            f"{what}: expected {target}, got values that are not numbers", field=field
        ) from exc


def _elementwise(array: np.ndarray[Any, Any], test: Callable[[Any], bool]) -> np.ndarray[Any, Any]:
    """``test`` on each element of an object array (object arrays are the slow path anyway)."""
    mask: np.ndarray[Any, Any] = np.vectorize(test, otypes=[bool])(array)
    return mask


def _describe(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "OUST":
        return "strings"
    return str(dtype)
