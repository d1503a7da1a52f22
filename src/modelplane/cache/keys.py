"""Canonical cache keys for predictions.

A key is the hex ``xxh3_128`` digest of a framed, unambiguous byte stream::

    b"modelplane.prediction.v1\\0"
    model (length-prefixed UTF-8), version (int64)
    requested outputs: count, then each name (length-prefixed, in the order given)
    inputs: count, then per input sorted by name:
        name, dtype string, ndim + each dimension (int64), payload

The payload of a numeric (or fixed-width string) array is its bytes in C order and native byte
order, so the key does not depend on memory layout (Fortran order, strides, views, byte order)
or on the dict's order. Object (OIP ``BYTES``) arrays hash each element as the codec encodes
it: a type tag, a length and the data. Every variable-length field is length-prefixed, so no
two different requests frame to the same stream.

The hash is fast, not cryptographic: a client able to craft an ``xxh3`` collision could plant
its answer under another request's key, so a cache shared between mutually untrusted tenants
needs a keyed hash instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xxhash

from modelplane.cache.codec import tag_element

__all__ = ["prediction_key"]

_DOMAIN = b"modelplane.prediction.v1\0"
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_TAG = struct.Struct("<B")


def prediction_key(
    model: str,
    version: int,
    inputs: Mapping[str, np.ndarray[Any, Any]],
    outputs: Sequence[str] = (),
) -> str:
    """The cache key of one prediction request: 32 hex characters.

    Equal requests give equal keys whatever the dict order or array layout; a change to any
    input's name, dtype, shape or value, to the model, version or requested outputs, gives a
    different key. Object arrays may hold ``bytes``, ``str``, ``bool``, ``int``, ``float``,
    ``None`` and numpy scalars; anything else raises :class:`TypeError` (such an input cannot
    be cached: compute it directly).
    """
    h = xxhash.xxh3_128()
    h.update(_DOMAIN)
    _frame(h, _utf8(model))
    h.update(_I64.pack(version))
    h.update(_U64.pack(len(outputs)))
    for name in outputs:
        _frame(h, _utf8(name))
    h.update(_U64.pack(len(inputs)))
    for name in sorted(inputs):
        _frame(h, _utf8(name))
        _update_array(h, np.asarray(inputs[name]))
    return h.hexdigest()


def _update_array(h: xxhash.xxh3_128, arr: np.ndarray[Any, Any]) -> None:
    dtype = arr.dtype
    if dtype.hasobject:
        if dtype != np.dtype(object):
            raise TypeError(f"cannot hash a structured dtype with object fields: {dtype}")
        _update_shape(h, b"|O", arr.shape)
        for element in arr.ravel(order="C"):
            _update_element(h, element)
        return
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
        dtype = arr.dtype
    # ``dtype.str`` is "|V16" for every 16-byte record: the field list tells records apart.
    spec = dtype.str if dtype.fields is None else repr(dtype.descr)
    _update_shape(h, spec.encode(), arr.shape)
    # One contiguous copy at most, hashed as raw bytes: no Python loop over the elements.
    flat = np.ascontiguousarray(arr).reshape(-1)
    h.update(flat.view(np.uint8).data)


def _update_shape(h: xxhash.xxh3_128, dtype_spec: bytes, shape: tuple[int, ...]) -> None:
    _frame(h, dtype_spec)
    h.update(_U64.pack(len(shape)))
    h.update(struct.pack(f"<{len(shape)}q", *shape))


def _update_element(h: xxhash.xxh3_128, element: object) -> None:
    tag, data = tag_element(element)
    h.update(_TAG.pack(tag))
    _frame(h, data)


def _frame(h: xxhash.xxh3_128, data: bytes) -> None:
    h.update(_U64.pack(len(data)))
    h.update(data)


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate from a JSON escape must not turn a cache lookup into a 500.
    return text.encode("utf-8", "surrogatepass")
