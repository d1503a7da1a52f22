"""A plain Python function, saved by reference: ``{"entrypoint": "package.module:function"}``.

The artifact holds no code, only a name that must be importable where the model is loaded, so
only module-level functions of an importable module can be saved (no lambdas, closures or
functions of ``__main__``). Calling it runs code by definition — whatever module it names — so
a pyfunc model always needs ``trust=True``, which only an admin grants and the version records
(docs/security.md). No list of "dangerous" modules decides anything: such lists are never
complete.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import DependencyMissing, InvalidInput, UntrustedArtifact
from modelplane.runtimes.base import no_proba

__all__ = ["PyfuncRuntime", "entrypoint_of", "load", "save"]

FLAVOR = "pyfunc"
FILE_NAME = "model.pyfunc.json"
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class PyfuncRuntime:
    """Calls ``function(batch)`` and returns the result as an array."""

    flavor = FLAVOR
    has_proba = False

    def __init__(self, function: Callable[[Any], Any], entrypoint: str) -> None:
        self.function = function
        self.entrypoint = entrypoint

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.function(batch))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        raise no_proba(FLAVOR, self.entrypoint)


def entrypoint_of(function: Any) -> str:
    """``module:function`` for a module-level function, or `InvalidInput` saying why not."""
    if not isinstance(function, types.FunctionType):
        raise InvalidInput(
            f"a pyfunc model must be a Python function, got {type(function).__name__}",
            field="model",
        )
    name, module = function.__qualname__, function.__module__
    if function.__name__ == "<lambda>":
        raise InvalidInput(
            "a lambda cannot be saved: it has no importable name; define it with def at the top "
            "level of a module",
            field="model",
        )
    if "<locals>" in name:
        raise InvalidInput(
            f"{name} is a nested function or closure: it cannot be imported by name; move it to "
            "the top level of a module",
            field="model",
        )
    if not module or module == "__main__":
        raise InvalidInput(
            f"{name} is defined in __main__ (a script or notebook), which another process "
            "cannot import; move it into a module",
            field="model",
        )
    if "." in name:
        raise InvalidInput(f"{name} is a method, not a module-level function", field="model")
    imported = getattr(sys.modules.get(module), name, None)
    if imported is not function:
        raise InvalidInput(
            f"{module}:{name} does not name this function (is it decorated or redefined?)",
            field="model",
        )
    return f"{module}:{name}"


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    path = dest_dir / FILE_NAME
    path.write_text(json.dumps({"entrypoint": entrypoint_of(model)}) + "\n", encoding="utf-8")
    return path


def load(path: Path, *, trust: bool = False) -> PyfuncRuntime:
    try:
        entrypoint = json.loads(path.read_text(encoding="utf-8"))["entrypoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f'{path.name} is not a pyfunc file ({{"entrypoint": …}})') from exc
    if not isinstance(entrypoint, str) or not _ENTRYPOINT.match(entrypoint):
        raise InvalidInput(f"{path.name}: entrypoint must be 'package.module:function'")
    module_name, function_name = entrypoint.split(":")
    if not trust:  # checked before anything is imported: an import runs the module's code
        raise UntrustedArtifact(
            f"{path.name} names {entrypoint}, Python code to run with request data; only an "
            "admin can trust it (trust=True / --trust), for code they wrote"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyMissing(
            f"{entrypoint}: module {module_name!r} is not importable here; install the package "
            "that provides it"
        ) from exc
    function = getattr(module, function_name, None)
    if not isinstance(function, types.FunctionType):
        raise InvalidInput(f"{entrypoint} is not a function in {module_name}")
    return PyfuncRuntime(function, entrypoint)
