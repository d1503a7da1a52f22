"""The registry's persistence port: what handlers need from storage, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from modelplane.core.uow import UnitOfWork
from modelplane.registry.model import ModelVersion, RegisteredModel

__all__ = ["ModelRepository", "RegistryUnitOfWork"]


class ModelRepository(Protocol):
    def add(self, model: RegisteredModel) -> bool:
        """Insert a new model; False when one of that name already exists."""
        ...

    def get(self, name: str) -> RegisteredModel | None:
        """Load a model for change, locking it against concurrent writers."""
        ...

    def save(self, model: RegisteredModel) -> None:
        """Write the model row, its aliases and its tags as they are now."""
        ...

    def add_version(self, model: RegisteredModel, version: ModelVersion) -> None: ...

    def get_version(self, model: RegisteredModel, number: int) -> ModelVersion | None: ...

    def save_version(self, model: RegisteredModel, version: ModelVersion) -> None:
        """Write a version's mutable parts (status, tags)."""
        ...


class RegistryUnitOfWork(UnitOfWork, Protocol):
    models: ModelRepository
    clock: Callable[[], datetime]
