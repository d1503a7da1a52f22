"""OIP v2 over REST, the answer side: infer responses (JSON, or the binary tensor data
extension), error bodies, model and server metadata. Written from the numpy buffers with
``orjson.OPT_SERIALIZE_NUMPY`` (see ``oip.py`` for the request side and the measurements)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np
import orjson

from modelplane.errors import ModelplaneError
from modelplane.serving.datatypes import HEADER_LENGTH, Array, oip_datatype
from modelplane.serving.types import InferResult, ModelInfo

__all__ = [
    "encode_error",
    "encode_infer_response",
    "encode_raw_tensor",
    "json_default",
    "model_metadata_json",
    "server_metadata_json",
]


# -- responses -----------------------------------------------------------------------------------
def encode_infer_response(
    result: InferResult, *, model_name: str, binary_outputs: AbstractSet[str] | bool = False
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (``Inference-Header-Content-Length`` if binary)."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, value in result.outputs.items():
        array = np.asarray(value)
        datatype = oip_datatype(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary_outputs is True or (
            not isinstance(binary_outputs, bool) and name in binary_outputs
        ):
            raw = encode_raw_tensor(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _json_data(array, datatype)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": str(result.version)}
    if result.id is not None:
        doc["id"] = result.id
    parameters = dict(result.parameters)
    if result.fallback:
        parameters["fallback"] = True
    if parameters:
        doc["parameters"] = parameters
    doc["outputs"] = outputs
    try:
        header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=json_default)
    except orjson.JSONEncodeError as exc:
        raise ModelplaneError(f"the response cannot be encoded as JSON: {exc}") from None
    if not chunks:
        return header, {}
    return b"".join([header, *chunks]), {HEADER_LENGTH: str(len(header))}


def _json_data(array: Array, datatype: str) -> Any:
    if datatype == "BYTES":
        return [_text(item) for item in array.ravel().tolist()]
    if datatype == "FP16" or not array.dtype.isnative:
        return array.ravel().tolist()
    return array.ravel()  # C-contiguous: orjson writes it straight from the buffer


def _text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8", "backslashreplace")
    return str(item)


def json_default(value: Any) -> Any:
    """orjson's ``default=`` for what ``OPT_SERIALIZE_NUMPY`` leaves out: object arrays (string
    labels), non-contiguous or non-native arrays, numpy scalars, ``bytes`` (as UTF-8 text)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def encode_raw_tensor(array: Array) -> bytes:
    """A tensor's raw bytes: little-endian, row-major; BYTES as 4-byte length + bytes each."""
    if oip_datatype(array.dtype) != "BYTES":
        return np.asarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for item in array.ravel().tolist():
        data = item if isinstance(item, bytes) else _text(item).encode("utf-8", "surrogatepass")
        if len(data) >= 1 << 32:
            raise ModelplaneError("a BYTES element is over 4 GiB, which OIP cannot carry")
        parts.append(len(data).to_bytes(4, "little"))
        parts.append(data)
    return b"".join(parts)


def encode_error(message: str) -> bytes:
    """OIP's error body: ``{"error": "…"}``."""
    try:
        return orjson.dumps({"error": message})
    except orjson.JSONEncodeError:
        clean = message.encode("utf-8", "backslashreplace").decode("utf-8")
        return orjson.dumps({"error": clean})


def model_metadata_json(info: ModelInfo) -> bytes:
    """The body of ``GET /v2/models/{name}[/versions/{v}]``."""
    return orjson.dumps(
        {
            "name": info.name,
            "versions": list(info.versions),
            "platform": info.platform,
            "inputs": [_tensor_meta(t.name, t.datatype, t.shape) for t in info.inputs],
            "outputs": [_tensor_meta(t.name, t.datatype, t.shape) for t in info.outputs],
        }
    )


def _tensor_meta(name: str, datatype: str, shape: Sequence[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def server_metadata_json(name: str, version: str, extensions: Iterable[str]) -> bytes:
    """The body of ``GET /v2``."""
    return orjson.dumps({"name": name, "version": version, "extensions": list(extensions)})
