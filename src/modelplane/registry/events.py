"""Events of the registry: one per state change, past tense, stored with the change."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplane.core.messages import Event

__all__ = [
    "AliasRemoved",
    "AliasSet",
    "GateEvaluated",
    "ModelRegistered",
    "ModelVersionRegistered",
    "TagDeleted",
    "TagSet",
    "VersionArchived",
    "VersionRestored",
]


@dataclass(frozen=True)
class ModelRegistered(Event):
    model: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionRegistered(Event):
    model: str
    version: int
    flavor: str
    digest: str
    size: int
    run_id: str | None = None
    parent_version: int | None = None
    trusted_by: str | None = None  # set when an admin trusted code outside the allowlist


@dataclass(frozen=True)
class AliasSet(Event):
    model: str
    alias: str
    version: int
    previous_version: int | None = None


@dataclass(frozen=True)
class AliasRemoved(Event):
    model: str
    alias: str
    version: int


@dataclass(frozen=True)
class VersionArchived(Event):
    model: str
    version: int


@dataclass(frozen=True)
class VersionRestored(Event):
    model: str
    version: int


@dataclass(frozen=True)
class TagSet(Event):
    model: str
    key: str
    value: str
    version: int | None = None


@dataclass(frozen=True)
class TagDeleted(Event):
    model: str
    key: str
    version: int | None = None


@dataclass(frozen=True)
class GateEvaluated(Event):
    """A version's release gates ran: which checks passed, and whether a failure was forced."""

    model: str
    version: int
    passed: bool
    forced: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
