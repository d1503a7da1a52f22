"""The registry as another capability uses it: its reads, loading, and the writes it records.

Delivery's release gates declare what they need (``traffic.gating.GatePorts``) and import no
registry; this class fits that port structurally, so the registry imports no delivery either.
The composition (``modelplane.bootstrap.gate_ports``) hands one to the gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from modelplane.registry import commands as rc
from modelplane.registry.model import ModelVersion, RegisteredModel
from modelplane.registry.usecases.loading import LoadedModel, VersionResolver, load_model
from modelplane.registry.usecases.logging import Handle

if TYPE_CHECKING:
    from modelplane.artifacts import ArtifactStore

__all__ = ["RegistryAccess", "RegistryReader"]


class RegistryReader(VersionResolver, Protocol):
    """The registry's views as read here (``RegistryViews`` fits)."""

    def get_model(self, name: str) -> RegisteredModel: ...
    def get_version(self, name: str, number: int) -> ModelVersion: ...


@dataclass(frozen=True)
class RegistryAccess:
    """Reads through the views, loads through :func:`load_model` (the version's own trust),
    writes as commands through ``handle``."""

    handle: Handle
    views: RegistryReader
    artifacts: ArtifactStore

    def get_model(self, name: str) -> RegisteredModel:
        return self.views.get_model(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.views.get_version(name, version)

    def load_model(self, ref: str) -> LoadedModel:
        return load_model(self.views, self.artifacts, ref)

    def set_tag(self, name: str, key: str, value: str) -> None:
        self.handle(rc.SetTag(model=name, key=key, value=value))

    def record_gate_result(
        self, name: str, version: int, *, passed: bool, checks: Mapping[str, bool], forced: bool
    ) -> ModelVersion:
        command = rc.RecordGateResult(
            model=name, version=version, passed=passed, checks=dict(checks), forced=forced
        )
        return cast(ModelVersion, self.handle(command))
