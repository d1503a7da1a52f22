"""A compact, pickle-free encoding of named output tensors for the prediction cache.

Layout (little-endian)::

    b"MPO1"  count:u32
    per tensor:
        name_len:u16  name (UTF-8)
        kind:u8       0 = raw buffer, 1 = object elements
        dtype_len:u8  dtype (numpy ``dtype.str``: "<f8", "|b1", "<U7"; "|O" for kind 1)
        ndim:u8       ndim × dim:u64
        payload_len:u64  payload

A raw payload is the array's bytes in C order. An object (OIP ``BYTES``) payload is, per
element in C order, ``tag:u8`` ``len:u32`` and the data: 0 bytes, 1 str (UTF-8), 2 int
(decimal), 3 float (f64), 4 bool, 5 None — numpy scalars travel as the Python value. Decoding checks
every length against the buffer and refuses any dtype that could hold Python objects, so bytes
read back from a shared Redis can never run code; malformed input raises :class:`ValueError`.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["decode_outputs", "encode_outputs"]

_MAGIC = b"MPO1"
_HEADER = struct.Struct("<4sI")
_NAME_LEN = struct.Struct("<H")
_KIND_DTYPE_LEN = struct.Struct("<BB")
_NDIM = struct.Struct("<B")
_U64 = struct.Struct("<Q")
_ELEMENT = struct.Struct("<BI")
_RAW = 0
_OBJECT = 1
_F64 = struct.Struct("<d")
_TAG_BYTES = 0
_TAG_STR = 1
_TAG_INT = 2
_TAG_FLOAT = 3
_TAG_BOOL = 4
_TAG_NONE = 5
_INT_TEXT = re.compile(rb"-?[0-9]{1,4000}")
# bool, signed/unsigned ints, floats, complex, fixed bytes/str, datetime, timedelta.
_RAW_KINDS = frozenset("biufcSUMm")
# The shape of every ``dtype.str`` of those kinds; checked before numpy parses the string.
_DTYPE_STR = re.compile(r"[<>|][biufcSUMm][0-9]{1,9}(\[[0-9]{0,9}[a-zA-Z]{1,3}\])?")


def encode_outputs(outputs: Mapping[str, np.ndarray[Any, Any]]) -> bytes:
    """Encode named arrays; :class:`TypeError` for a dtype the codec does not carry."""
    parts: list[bytes] = [_HEADER.pack(_MAGIC, len(outputs))]
    for name, value in outputs.items():
        arr = np.asarray(value)
        encoded_name = name.encode("utf-8", "surrogatepass")
        if arr.dtype == np.dtype(object):
            kind, dtype_str, payload = _OBJECT, b"|O", _encode_objects(arr)
        else:
            _check_raw_dtype(arr.dtype)
            kind, dtype_str = _RAW, arr.dtype.str.encode()
            payload = np.ascontiguousarray(arr).tobytes()
        parts += [
            _NAME_LEN.pack(len(encoded_name)),
            encoded_name,
            _KIND_DTYPE_LEN.pack(kind, len(dtype_str)),
            dtype_str,
            _NDIM.pack(arr.ndim),
            struct.pack(f"<{arr.ndim}Q", *arr.shape),
            _U64.pack(len(payload)),
            payload,
        ]
    return b"".join(parts)


def decode_outputs(data: bytes) -> dict[str, np.ndarray[Any, Any]]:
    """Decode what :func:`encode_outputs` wrote; :class:`ValueError` for anything else.

    The arrays returned are fresh and writable: they share no memory with ``data``.
    """
    try:
        return _Reader(memoryview(data)).outputs()
    except (struct.error, UnicodeDecodeError, TypeError, OverflowError) as exc:
        raise ValueError(f"not an encoded prediction: {exc}") from exc


def _check_raw_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.kind not in _RAW_KINDS or dtype.fields is not None or dtype.itemsize == 0:
        raise TypeError(f"the prediction cache cannot encode dtype {dtype}")


def tag_element(element: object) -> tuple[int, bytes]:
    """An object-array element as ``(tag, data)``; :class:`TypeError` for an unsupported type.

    Shared with :mod:`modelplane.cache.keys`, so that what can be cached can also be keyed.
    """
    if isinstance(element, np.generic) and not isinstance(element, bytes | str):
        element = element.item()
    if isinstance(element, bytes | bytearray | memoryview):
        return _TAG_BYTES, bytes(element)
    if isinstance(element, str):
        return _TAG_STR, element.encode("utf-8", "surrogatepass")
    if isinstance(element, bool):  # before int: bool is an int
        return _TAG_BOOL, b"\x01" if element else b"\x00"
    if isinstance(element, int):
        return _TAG_INT, str(element).encode()
    if isinstance(element, float):
        return _TAG_FLOAT, _F64.pack(element)
    if element is None:
        return _TAG_NONE, b""
    raise TypeError(f"the prediction cache cannot carry an object of type {type(element).__name__}")


def _untag_element(tag: int, data: bytes) -> object:
    if tag == _TAG_BYTES:
        return data
    if tag == _TAG_STR:
        return data.decode("utf-8", "surrogatepass")
    if tag == _TAG_BOOL and data in (b"\x00", b"\x01"):
        return data == b"\x01"
    if tag == _TAG_INT and _INT_TEXT.fullmatch(data):
        return int(data)
    if tag == _TAG_FLOAT and len(data) == _F64.size:
        return _F64.unpack(data)[0]
    if tag == _TAG_NONE and not data:
        return None
    raise ValueError(f"not an encoded prediction: bad element (tag {tag})")


def _encode_objects(arr: np.ndarray[Any, Any]) -> bytes:
    parts: list[bytes] = []
    for element in arr.ravel(order="C"):
        tag, data = tag_element(element)
        parts += [_ELEMENT.pack(tag, len(data)), data]
    return b"".join(parts)


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def outputs(self) -> dict[str, np.ndarray[Any, Any]]:
        magic, count = self.unpack(_HEADER)
        if magic != _MAGIC:
            raise ValueError("not an encoded prediction: bad magic")
        result: dict[str, np.ndarray[Any, Any]] = {}
        for _ in range(count):
            name = self.take(self.unpack(_NAME_LEN)[0]).tobytes().decode("utf-8", "surrogatepass")
            if name in result:
                raise ValueError(f"not an encoded prediction: tensor {name!r} twice")
            kind, dtype_len = self.unpack(_KIND_DTYPE_LEN)
            dtype_str = self.take(dtype_len).tobytes().decode("ascii")
            (ndim,) = self.unpack(_NDIM)
            shape = struct.unpack_from(f"<{ndim}Q", self.buf, self.pos)
            self.pos += 8 * ndim
            payload = self.take(self.unpack(_U64)[0])
            result[name] = _decode_array(kind, dtype_str, shape, payload)
        if self.pos != len(self.buf):
            raise ValueError("not an encoded prediction: trailing bytes")
        return result

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        values = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return values

    def take(self, size: int) -> memoryview:
        end = self.pos + size
        if end > len(self.buf):
            raise ValueError("not an encoded prediction: truncated")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk


def _decode_array(
    kind: int, dtype_str: str, shape: tuple[int, ...], payload: memoryview
) -> np.ndarray[Any, Any]:
    count = math.prod(shape)
    if kind == _OBJECT and dtype_str == "|O":
        return _decode_objects(shape, count, payload)
    if kind != _RAW:
        raise ValueError(f"not an encoded prediction: unknown kind {kind}")
    if _DTYPE_STR.fullmatch(dtype_str) is None:
        raise ValueError(f"not an encoded prediction: bad dtype {dtype_str!r}")
    dtype = np.dtype(dtype_str)
    if dtype.str != dtype_str:
        raise ValueError(f"not an encoded prediction: non-canonical dtype {dtype_str!r}")
    try:
        _check_raw_dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"not an encoded prediction: {exc}") from None
    if count * dtype.itemsize != len(payload):
        raise ValueError("not an encoded prediction: payload size does not match the shape")
    return np.frombuffer(payload, dtype=dtype, count=count).reshape(shape).copy()


def _decode_objects(
    shape: tuple[int, ...], count: int, payload: memoryview
) -> np.ndarray[Any, Any]:
    reader = _Reader(payload)
    if count > len(payload) // _ELEMENT.size:
        raise ValueError("not an encoded prediction: too many elements for the payload")
    flat = np.empty(count, dtype=object)
    for i in range(count):
        tag, size = reader.unpack(_ELEMENT)
        flat[i] = _untag_element(tag, reader.take(size).tobytes())
    if reader.pos != len(payload):
        raise ValueError("not an encoded prediction: trailing bytes in an object tensor")
    return flat.reshape(shape)
