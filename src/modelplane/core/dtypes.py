"""The dtype names of a signature, and which numpy or pandas dtype is which.

Shared by inferring a signature (:mod:`.signature`) and casting a batch to one
(:mod:`.coercion`); pandas objects are recognised by their module, never imported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.errors import InvalidInput

__all__ = ["DTYPES", "dtype_name", "is_frame", "is_series"]

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


def is_frame(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "columns")


def is_series(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == "Series"


def dtype_name(dtype: Any, field: str) -> str:
    """The signature dtype name of a numpy or pandas dtype."""
    categories = getattr(dtype, "categories", None)
    if categories is not None:  # pandas categorical: the dtype of its categories
        return dtype_name(categories.dtype, field)
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
