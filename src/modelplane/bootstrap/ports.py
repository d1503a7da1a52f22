"""Ports between capabilities, implemented where both may be imported: the composition root.

:class:`RegistryModelPort` is delivery's window onto the registry inside the same transaction
(see traffic.repository), over the registry's own repository port and aggregate, so delivery and
the registry stay independent of each other while a promotion and the alias move it causes still
commit together (the model's ``AliasSet`` event goes in the same outbox write). It runs no SQL
itself: any ``ModelRepository`` serves (the tests' in-memory one too).

:data:`CAPABILITY` declares it as the unit of work's ``model_port``, built after ``models``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from modelplane.core.capability import Capability
from modelplane.errors import ModelNotFound, VersionNotFound
from modelplane.registry.model import GATE_TAG, ModelVersion, RegisteredModel, validate_name
from modelplane.registry.repository import ModelRepository
from modelplane.traffic.repository import VersionState

__all__ = ["CAPABILITY", "RegistryModelPort"]


class RegistryModelPort:
    def __init__(self, models: ModelRepository, clock: Callable[[], datetime]) -> None:
        self._models = models
        self._clock = clock
        self._locked: dict[str, RegisteredModel] = {}

    def _model(self, name: str) -> RegisteredModel:
        model = self._locked.get(name)
        if model is None:
            validate_name(name, field="model")
            model = self._models.get(name)
            if model is None:
                raise ModelNotFound(f"model {name!r} does not exist", field="model")
            self._locked[name] = model
        return model

    def lock(self, model: str) -> dict[str, int]:
        return dict(self._model(model).aliases)

    def _version(self, model: str, version: int) -> tuple[RegisteredModel, ModelVersion]:
        registered = self._model(model)
        found = self._models.get_version(registered, version)
        if found is None:
            raise VersionNotFound(f"model {model!r} has no version {version}", field="version")
        return registered, found

    def version(self, model: str, version: int) -> VersionState:
        _, found = self._version(model, version)
        return VersionState(
            model=model, version=version, status=found.status, gate=found.tags.get(GATE_TAG)
        )

    def move_alias(self, model: str, alias: str, version: int) -> None:
        registered, found = self._version(model, version)
        registered.set_alias(alias, found, now=self._clock())
        self._models.save(registered)


class _WithModels(Protocol):
    """What the port needs of the unit of work being entered: the registry's repository."""

    models: ModelRepository
    clock: Callable[[], datetime]


def model_port(uow: _WithModels) -> RegistryModelPort:
    return RegistryModelPort(uow.models, uow.clock)


CAPABILITY = Capability(name="ports", repositories={"model_port": model_port})
"""Not a capability of its own: the ports the composition root adds (listed after the
capabilities whose repositories they use)."""
