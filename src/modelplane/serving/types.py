"""The contract between the serving edges (REST, gRPC, /predict) and the inference core.

Both edges decode their wire format into :class:`InferRequest` (named numpy tensors), call
:meth:`InferenceCore.infer`, and encode the :class:`InferResult` back. Everything behind it — the
model pool, signature validation, cache, breaker, bulkhead, batcher — is shared, so REST and gRPC
give identical outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from modelplane.serving.ports import Arm, Route

__all__ = ["InferRequest", "InferResult", "InferenceCore", "ModelInfo", "TensorMeta"]


@dataclass(frozen=True)
class TensorMeta:
    """A tensor as OIP metadata describes it: OIP datatype (``FP64``…) and shape (-1 = any)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /v2/models/{name}[/versions/{v}]`` and gRPC ModelMetadata return."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]


@dataclass
class InferRequest:
    """One inference request, whatever protocol it came in by.

    ``model`` is a reference (``fraud``, ``fraud@challenger``); ``version`` is set when the URL
    or gRPC field names one. ``inputs`` maps tensor (or column) names to numpy arrays whose
    first dimension is the batch. ``outputs`` lists requested output names (empty = all).

    ``unit_id`` (a user, a card…) keeps a unit on one arm of an experiment or rollout. ``route``
    and ``arm`` are set by the serving view when it resolves a routed bare-name ``model`` (once
    per request, whatever the edge). ``sole`` says the edge knows this is the only request the
    server holds (REST under ``modelplane serve``; see ``http_server.py``): an idle model on
    the event loop then predicts it at once instead of one loop turn later.
    """

    model: str
    inputs: dict[str, np.ndarray[Any, Any]]
    version: str | None = None
    id: str | None = None
    outputs: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    unit_id: str | None = None
    no_cache: bool = False
    route: Route | None = None
    arm: Arm | None = None
    sole: bool = False


@dataclass
class InferResult:
    """The answer: the version that actually answered and named output tensors.

    ``parameters`` go back to the client (OIP ``parameters``): ``variant`` and ``experiment``
    when an experiment or rollout routed the request.
    """

    model: str
    version: int
    outputs: dict[str, np.ndarray[Any, Any]]
    id: str | None = None
    fallback: bool = False
    cached: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


class InferenceCore(Protocol):
    """What the REST and gRPC edges call. Errors are :mod:`modelplane.errors` exceptions."""

    def live(self) -> bool: ...

    def ready(self) -> bool: ...

    async def model_ready(self, model: str, version: str | None = None) -> bool: ...

    async def model_info(self, model: str, version: str | None = None) -> ModelInfo: ...

    async def infer(self, request: InferRequest) -> InferResult: ...
