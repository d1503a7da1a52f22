"""ONNX Runtime: the session is built once at load; each call only feeds arrays.

Inputs are cast to the dtype the model declares. A model with one input takes the batch as one
matrix; one with several inputs (one per column, as converters from scikit-learn make them)
takes a DataFrame or dict and gets each column by name. ``predict`` returns the first output,
``predict_proba`` the first tensor output whose name says ``prob``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import InvalidInput, SignatureMismatch
from modelplane.runtimes.base import import_engine, is_frame, no_proba, to_matrix

__all__ = ["OnnxRuntime", "load", "save", "signature_of"]

FLAVOR = "onnx"
FILE_NAME = "model.onnx"
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider")
_NUMPY_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxRuntime:
    """An ONNX model in an ``onnxruntime.InferenceSession``."""

    flavor = FLAVOR

    def __init__(self, session: Any) -> None:
        self.session = session
        self._inputs = [
            (i.name, _NUMPY_TYPES.get(i.type), len(i.shape)) for i in session.get_inputs()
        ]
        outputs = session.get_outputs()
        self._output = [outputs[0].name]
        self._proba = [
            o.name for o in outputs if "prob" in o.name.lower() and o.type.startswith("tensor(")
        ][:1]

    @property
    def has_proba(self) -> bool:
        return bool(self._proba)

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.session.run(self._output, self._feed(batch))[0])

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        if not self._proba:
            raise no_proba(FLAVOR, "no output named like 'probabilities'")
        return np.asarray(self.session.run(self._proba, self._feed(batch))[0])

    def _feed(self, batch: Any) -> dict[str, np.ndarray[Any, Any]]:
        if len(self._inputs) == 1:
            name, dtype, _ = self._inputs[0]
            if isinstance(batch, Mapping) and list(batch) == [name]:
                batch = batch[name]
            return {name: to_matrix(batch, dtype)}
        if not (isinstance(batch, Mapping) or is_frame(batch)):
            names = ", ".join(n for n, _, _ in self._inputs)
            raise SignatureMismatch(
                f"this ONNX model takes several inputs ({names}): send a DataFrame or a dict",
                field=self._inputs[0][0],
            )
        feed = {}
        for name, dtype, rank in self._inputs:
            try:
                column = np.asarray(batch[name], dtype=dtype)
            except KeyError:
                raise SignatureMismatch(f"missing input {name!r}", field=name) from None
            feed[name] = column.reshape(-1, 1) if rank == 2 and column.ndim == 1 else column
        return feed


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    if isinstance(model, bytes | bytearray):
        data = bytes(model)
    elif hasattr(model, "SerializeToString"):
        data = model.SerializeToString()
    else:
        raise InvalidInput(
            f"cannot save a {type(model).__name__} as onnx: expected an onnx.ModelProto or bytes",
            field="flavor",
        )
    path = dest_dir / FILE_NAME
    path.write_bytes(data)
    return path


def load(path: Path, *, trust: bool = False) -> OnnxRuntime:
    ort = import_engine("onnxruntime", "onnx")
    available = set(ort.get_available_providers())
    providers = [p for p in _PREFERRED_PROVIDERS if p in available] + ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise InvalidInput(f"{path.name} is not a loadable ONNX model: {exc}") from exc
    return OnnxRuntime(session)


def signature_of(path: Path) -> dict[str, Any]:
    """The signature an ONNX graph declares (names, dtypes, shapes; symbolic dims are -1)."""
    ort = import_engine("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def spec(arg: Any) -> dict[str, Any]:
        numpy_type = _NUMPY_TYPES.get(arg.type)
        dtype = (
            "string"
            if numpy_type is np.object_ or numpy_type is None
            else (np.dtype(numpy_type).name)
        )
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
        return {"name": arg.name, "dtype": dtype, "shape": shape or [-1]}

    return {
        "inputs": [spec(i) for i in session.get_inputs()],
        "outputs": [spec(o) for o in session.get_outputs() if o.type.startswith("tensor(")],
    }
