"""OIP v2 datatypes: numpy dtypes and OIP's names for them, both ways (REST and gRPC share them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.errors import InvalidInput, ModelplaneError

__all__ = ["DATATYPES", "HEADER_LENGTH", "Array", "oip_datatype", "signature_dtype_to_oip"]

HEADER_LENGTH = "Inference-Header-Content-Length"

Array = np.ndarray[Any, Any]

#: OIP datatype → numpy dtype. BYTES is an object array whose elements are ``bytes``.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items() if name != "BYTES"}
_SIGNATURE_DTYPES = {"string": "BYTES", "str": "BYTES", "bytes": "BYTES", "object": "BYTES"}


def oip_datatype(dtype: np.dtype[Any]) -> str:
    """The OIP datatype of a numpy dtype (strings and objects are BYTES)."""
    if dtype.kind in "OUS":
        return "BYTES"
    name = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise ModelplaneError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
    return name


def signature_dtype_to_oip(name: str) -> str:
    """A modelplane signature dtype (a numpy name: ``float64``, ``string``…) as an OIP datatype."""
    if name in _SIGNATURE_DTYPES:
        return _SIGNATURE_DTYPES[name]
    try:
        return oip_datatype(np.dtype(name))
    except (TypeError, ValueError, ModelplaneError):
        raise InvalidInput(f"dtype {name!r} has no OIP datatype", field=name) from None
