"""Checking a batch against a :class:`~modelplane.core.signature.Signature` and casting it.

A column of strings takes text: ``bytes`` (what OIP's BYTES tensors carry) are decoded as UTF-8
wherever the signature says ``string``, so a model sees the ``str`` values it was trained on
(invalid UTF-8 is a `SignatureMismatch` naming the column). A categorical column is rebuilt
with exactly the signature's categories, in that order, so the codes a model sees match
training; a value outside them is missing (NaN), as pandas and the tree engines treat it.

This sits on the prediction hot path: numpy input is checked with whole-array operations, never
a Python loop over rows, and input that already matches is returned without a copy. pandas is
imported only when a columnar batch is validated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from modelplane.core.dtypes import dtype_name, is_frame
from modelplane.errors import InvalidInput, SignatureMismatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "categorical",
    "check_names",
    "single_tensor",
    "validate_columns",
    "validate_frame",
    "validate_tensor",
]


class TensorSpec(Protocol):
    """What casting needs of a :class:`~modelplane.core.signature.TensorSpec` (which fits this
    as it is; a Protocol, so this module and the signature's do not import each other)."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def categories(self) -> tuple[Any, ...] | None: ...
    @property
    def category_dtype(self) -> pd.CategoricalDtype: ...


class Signature(Protocol):
    """What :func:`validate_columns` needs of a :class:`~modelplane.core.signature.Signature`."""

    @property
    def inputs(self) -> Sequence[TensorSpec]: ...


def validate_columns(
    signature: Signature, columns: Mapping[str, np.ndarray[Any, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    """The columnar check on a dict of 1-D numpy columns, returning numpy columns.

    The serving hot path: no DataFrame per request (building one costs ~50-100 µs and
    concatenating 32 of them ~250 µs, more than a model's predict); the batch becomes one
    DataFrame after it is assembled.
    """
    specs = signature.inputs
    check_names([s.name for s in specs], list(columns), kind="column")
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


def single_tensor(spec: TensorSpec, batch: Any) -> Any:
    """Unwrap a ``{"input-0": …}`` dict; other inputs are taken as the tensor itself."""
    if isinstance(batch, Mapping):
        check_names([spec.name], list(batch), kind="tensor")
        return batch[spec.name]
    if is_frame(batch):
        width = spec.shape[1] if len(spec.shape) == 2 else -1
        if width != -1 and len(batch.columns) != width:
            raise SignatureMismatch(
                f"{spec.name}: expected {width} columns (shape {list(spec.shape)}), "
                f"got a DataFrame with {len(batch.columns)}",
                field=spec.name,
            )
        return batch.to_numpy()
    return batch


def validate_tensor(spec: TensorSpec, value: Any) -> np.ndarray[Any, Any]:
    """One tensor input as a numpy array of ``spec``'s shape and dtype (a lone example gets
    its batch axis)."""
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


def validate_frame(specs: tuple[TensorSpec, ...], batch: Any) -> pd.DataFrame:
    """A columnar batch (a DataFrame, a dict of columns, records) as the DataFrame of ``specs``'
    columns in order; the batch itself when it already matches."""
    import pandas as pd

    frame = _as_frame(batch, specs)
    check_names([s.name for s in specs], [str(c) for c in frame.columns], kind="column")
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

    if is_frame(batch):
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


def check_names(expected: list[str], got: list[str], *, kind: str) -> None:
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


def categorical(values: np.ndarray[Any, Any], spec: TensorSpec) -> pd.Categorical:
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
        return dtype_name(dtype, "") == "string"
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
