"""PyTorch: ``torch.export`` programs (``model.pt2``) or TorchScript (``model.torchscript.pt``).

A module is never pickled: ``torch.export`` needs an ``input_example`` and records the graph and
the weights; the batch dimension is made dynamic with ``torch.export.Dim``. An example of one row
would make export specialise the batch size to 1, so such an example is repeated to two rows.
Loading uses ``torch.export.load`` or ``torch.jit.load`` only, never ``torch.load`` of a module.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import InvalidInput
from modelplane.runtimes.base import import_engine, is_frame, no_proba, to_matrix

__all__ = ["TorchRuntime", "load", "save"]

FLAVOR = "torch"
EXPORT_FILE = "model.pt2"
SCRIPT_FILE = "model.torchscript.pt"


class TorchRuntime:
    """A callable module (exported or scripted) run under ``torch.inference_mode``."""

    flavor = FLAVOR
    has_proba = False

    def __init__(self, module: Any, input_names: list[str], input_dtypes: list[Any]) -> None:
        self._torch = import_engine("torch", "torch")
        self.module = module
        self._names = input_names
        self._dtypes = input_dtypes

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in self._arrays(batch)]
        tensors = [t if d is None else t.to(d) for t, d in zip(tensors, self._dtypes, strict=True)]
        with torch.inference_mode():
            out = self.module(*tensors)
        if isinstance(out, tuple | list):
            out = out[0]
        return np.asarray(out.detach().cpu().numpy())

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        raise no_proba(FLAVOR, "a torch module returns what its forward returns")

    def _arrays(self, batch: Any) -> list[np.ndarray[Any, Any]]:
        if len(self._names) > 1 and (isinstance(batch, Mapping) or is_frame(batch)):
            return [np.asarray(batch[name]) for name in self._names]
        if isinstance(batch, Mapping) and len(batch) == 1:
            batch = next(iter(batch.values()))
        return [to_matrix(batch)]


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    torch = import_engine("torch", "torch")
    if isinstance(model, torch.jit.ScriptModule):
        path = dest_dir / SCRIPT_FILE
        model.save(str(path))
        return path
    if not isinstance(model, torch.nn.Module):
        raise InvalidInput(
            f"cannot save a {type(model).__name__} as torch: expected an nn.Module", field="flavor"
        )
    if input_example is None:
        raise InvalidInput(
            "saving a torch module needs input_example= (a batch of inputs) for torch.export",
            field="input_example",
        )
    args = _example_args(torch, model, input_example)
    batch = torch.export.Dim("batch")
    was_training = model.training
    model.eval()
    try:
        program = torch.export.export(model, args, dynamic_shapes=tuple({0: batch} for _ in args))
    except Exception as exc:  # torch.export raises many kinds of errors
        raise InvalidInput(f"torch.export could not export the model: {exc}") from exc
    finally:
        model.train(was_training)
    path = dest_dir / EXPORT_FILE
    torch.export.save(program, str(path))
    return path


def load(path: Path, *, trust: bool = False) -> TorchRuntime:
    torch = import_engine("torch", "torch")
    if _is_exported_program(path):
        program = torch.export.load(str(path))
        names, dtypes = _program_inputs(program)
        return TorchRuntime(program.module(), names, dtypes)
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; we still load it
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise InvalidInput(f"{path.name} is not a TorchScript file: {exc}") from exc
    module.eval()
    params = list(module.parameters())
    dtype = params[0].dtype if params and params[0].is_floating_point() else None
    return TorchRuntime(module, ["input-0"], [dtype])


def _example_args(torch: Any, model: Any, example: Any) -> tuple[Any, ...]:
    """Tensors from the example, in the model's float dtype, with at least two rows."""
    items = example if isinstance(example, tuple) else (example,)
    params = list(model.parameters())
    float_dtype = params[0].dtype if params else torch.float32
    args = []
    for item in items:
        tensor = item if isinstance(item, torch.Tensor) else torch.as_tensor(to_matrix(item))
        if tensor.is_floating_point():
            tensor = tensor.to(float_dtype)
        if tensor.ndim and tensor.shape[0] < 2:  # avoid export's 0/1 specialisation
            tensor = tensor.expand(2, *tensor.shape[1:]).contiguous()
        args.append(tensor)
    return tuple(args)


def _program_inputs(program: Any) -> tuple[list[str], list[Any]]:
    """Names and dtypes of an exported program's user inputs, from its graph placeholders."""
    names = list(program.graph_signature.user_inputs)
    values = {
        node.name: node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"
    }
    dtypes = [getattr(values.get(name), "dtype", None) for name in names]
    return names, dtypes


def _is_exported_program(path: Path) -> bool:
    """``torch.export`` archives hold an ``archive_format`` entry; TorchScript ones do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("archive_format") for n in archive.namelist())
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{path.name} is not a torch.export or TorchScript archive") from exc
