"""Commands of the registry: the only ways to change it. Each has exactly one handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelplane.core.messages import Command
from modelplane.registry.model import Lineage

__all__ = [
    "ArchiveVersion",
    "DeleteTag",
    "RecordGateResult",
    "RegisterModel",
    "RegisterVersion",
    "RemoveAlias",
    "RestoreVersion",
    "SetAlias",
    "SetTag",
]


@dataclass(frozen=True)
class RegisterModel(Command):
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisterVersion(Command):
    """Register a new, immutable version whose artifact is already in the artifact store.

    ``create_model`` registers the model first when it does not exist (as ``log_model`` does).
    ``aliases`` are pointed at the new version in the same transaction.
    """

    model: str
    flavor: str
    digest: str
    size: int
    artifact_name: str
    signature: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    description: str = ""
    aliases: tuple[str, ...] = ()
    create_model: bool = True
    trusted_by: str | None = None  # who trusted its content (docs/security.md); None: nobody


@dataclass(frozen=True)
class SetAlias(Command):
    model: str
    alias: str
    version: int


@dataclass(frozen=True)
class RemoveAlias(Command):
    model: str
    alias: str


@dataclass(frozen=True)
class ArchiveVersion(Command):
    model: str
    version: int


@dataclass(frozen=True)
class RestoreVersion(Command):
    model: str
    version: int


@dataclass(frozen=True)
class SetTag(Command):
    """Set a tag on a model, or on one of its versions when ``version`` is given."""

    model: str
    key: str
    value: str
    version: int | None = None


@dataclass(frozen=True)
class DeleteTag(Command):
    model: str
    key: str
    version: int | None = None


@dataclass(frozen=True)
class RecordGateResult(Command):
    """Record a gate run on a version (``forced`` lets a failed version through, recorded)."""

    model: str
    version: int
    passed: bool
    checks: dict[str, bool] = field(default_factory=dict)
    forced: bool = False
