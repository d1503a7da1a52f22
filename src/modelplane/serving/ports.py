"""What serving needs from the rest of modelplane, declared here and provided by bootstrap.

Serving imports no capability (registry, traffic, auth) and no composition root: it names the
ports below and ``bootstrap/serving.py`` hands it objects that satisfy them. The routing types
are read-only Protocols that traffic's own ``Route``/``RoutingTable`` satisfy as they are (so an
arm is still picked by traffic's code, with no copy per refresh); the rest are plain dataclasses
serving owns.

- :class:`ModelLoader`: ``name/version`` → a :class:`LoadedVersion` (verified, trust honoured);
- :class:`ViewSource`: what the registry and traffic say now, read in one call (a
  :class:`Snapshot`: each model's aliases and tags, and the routing table);
- :class:`Authenticator`: the rule of each operation and the bearer check;
- :class:`TrafficRecorder`: per-arm counters, outcomes and shadow comparisons (writes: the
  implementation lives in traffic and sends them on);
- :class:`BackgroundJob`: what runs beside serving (the canary controller), started and stopped
  with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelplane.core.signature import Signature
from modelplane.runtimes.base import Runtime

__all__ = [
    "EMPTY_ROUTING",
    "Arm",
    "Authenticator",
    "BackgroundJob",
    "Keep",
    "LoadedVersion",
    "LoaderFactory",
    "ModelFacts",
    "ModelLoader",
    "Route",
    "Routing",
    "Shadow",
    "Snapshot",
    "StaticRouting",
    "TrafficRecorder",
    "ViewSource",
]


# -- models ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoadedVersion:
    """One model version ready to predict: its runtime, signature and what serving reads of it."""

    name: str
    version: int
    flavor: str
    runtime: Runtime
    signature: Signature | None
    tags: Mapping[str, str] = field(default_factory=dict)
    nbytes: int = 0


class ModelLoader(Protocol):
    """Loads ``name/version`` (blocking: serving calls it in a thread)."""

    def __call__(self, name: str, version: int) -> LoadedVersion: ...


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the registry says of a model now: aliases, latest ready version, ``serving.*`` tags."""

    name: str
    aliases: Mapping[str, int]
    latest_ready: int | None
    tags: Mapping[str, str]


# -- routing (traffic's types satisfy these as they are) ----------------------------------------
class Arm(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...


class Route(Protocol):
    """How one model's bare-name traffic is split now."""

    @property
    def model(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def arms(self) -> Sequence[Arm]: ...

    def pick(self, unit_id: str | None) -> Arm: ...


class Shadow(Protocol):
    """Mirror a share of a model's requests to version ``candidate``."""

    @property
    def model(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def variant(self) -> str: ...
    @property
    def candidate(self) -> int: ...

    def sample(self) -> bool: ...


class Keep(Protocol):
    """A version kept loaded until ``until`` (epoch seconds)."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def until(self) -> float: ...


class Routing(Protocol):
    @property
    def routes(self) -> Mapping[str, Route]: ...
    @property
    def shadows(self) -> Mapping[str, Shadow]: ...
    @property
    def keep(self) -> Sequence[Keep]: ...


@dataclass(frozen=True)
class StaticRouting:
    """A routing table serving holds (the parts of one it could load)."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    shadows: Mapping[str, Shadow] = field(default_factory=dict)
    keep: Sequence[Keep] = ()


#: No routes, no shadows, nothing kept (before the first read).
EMPTY_ROUTING = StaticRouting()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One read of what serving follows: the facts of the models asked for (a model that no
    longer exists is absent) and the routing table."""

    models: Mapping[str, ModelFacts]
    routing: Routing


class ViewSource(Protocol):
    """Reads what the registry and traffic say (blocking: serving calls it in a thread)."""

    def model(self, name: str) -> ModelFacts:
        """One model's facts; raises ModelNotFound."""
        ...

    def snapshot(self, names: Collection[str]) -> Snapshot: ...

    def model_names(self) -> Sequence[str]:
        """Every registered model's name (the OIP repository index)."""
        ...


# -- authentication ------------------------------------------------------------------------------
class Authenticator(Protocol):
    """The rule of every serving operation and the bearer check (``auth/access.py``)."""

    def scope_for(self, operation: str) -> str | None: ...

    def check(self, operation: str, authorization: str | None) -> None: ...


# -- traffic ---------------------------------------------------------------------------------------
class TrafficRecorder(Protocol):
    """Per-arm counters of this replica (called on the event loop, never blocking) and the
    writes that send them on."""

    def request(self, subject: str, variant: str, latency_ms: float, *, ok: bool) -> None: ...

    def outcome(self, subject: str, variant: str, value: float) -> None: ...

    def shadow(
        self,
        subject: str,
        variant: str,
        latency_ms: float,
        *,
        ok: bool,
        agree: bool | None = None,
        absdiff: float | None = None,
    ) -> None: ...

    def shadow_dropped(self, subject: str, variant: str) -> None: ...

    def store_feedback(
        self,
        request_id: str,
        *,
        label: float | None,
        reward: float | None,
        subject: str | None,
        variant: str | None,
        overwrite: bool,
    ) -> int:
        """Store one outcome (blocking); the stored revision. Conflict (409) on a second."""
        ...

    async def flush(self) -> None:
        """Send what was counted since the last flush (kept for the next one on failure)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BackgroundJob(Protocol):
    """Something that runs beside serving (the canary controller), started and stopped with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


#: Builds a loader in a process pool's worker from a configuration string: a picklable top-level
#: function (``bootstrap.serving.worker_loader``), so workers import no settings of their own.
LoaderFactory = Callable[[str], ModelLoader]
