"""modelplane: the complete machine-learning platform, from one laptop to real infrastructure.

    import modelplane
    version = modelplane.log_model(model, name="fraud", input_example=X, alias="champion")
    model = modelplane.load_model("models:/fraud@champion")
    model.predict(X)

Importing modelplane is cheap: the public names below are loaded on first use (PEP 562), and no
model engine (torch, xgboost…) is imported until a model of that flavor is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelplane.core.version import VERSION

if TYPE_CHECKING:
    from modelplane.client import Client, LoadedModel, load_model, log_model
    from modelplane.config import Settings
    from modelplane.core.signature import Signature, TensorSpec, infer_signature
    from modelplane.errors import ModelplaneError
    from modelplane.registry.model import Lineage

__version__ = VERSION

__all__ = [
    "Client",
    "Lineage",
    "LoadedModel",
    "ModelplaneError",
    "Settings",
    "Signature",
    "TensorSpec",
    "__version__",
    "infer_signature",
    "load_model",
    "log_model",
]

_LAZY = {
    "Client": "modelplane.client",
    "LoadedModel": "modelplane.client",
    "load_model": "modelplane.client",
    "log_model": "modelplane.client",
    "Settings": "modelplane.config",
    "ModelplaneError": "modelplane.errors",
    "Lineage": "modelplane.registry.model",
    "Signature": "modelplane.core.signature",
    "TensorSpec": "modelplane.core.signature",
    "infer_signature": "modelplane.core.signature",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelplane' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
