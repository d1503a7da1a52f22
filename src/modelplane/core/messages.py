"""Commands ask for a change (imperative: ``SetAlias``); events record one (``AliasSet``).

Both are small frozen dataclasses. An event belongs to an aggregate (``aggregate_type`` and
``aggregate_id``); the unit of work numbers events per aggregate and writes them in the same
transaction as the state change they describe (the transactional outbox).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Command", "Event"]


@dataclass(frozen=True)
class Command:
    """A request to change state. Exactly one handler takes each command type."""


@dataclass(frozen=True)
class Event:
    """A fact that happened. Immutable; stored in the append-only ``events`` table."""

    aggregate_type: ClassVar[str] = "model"
    schema_version: ClassVar[int] = 1

    @property
    def aggregate_id(self) -> str:
        """The id of the aggregate this event belongs to (a model's name by default)."""
        return str(self.model)  # type: ignore[attr-defined]

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def payload(self) -> dict[str, Any]:
        """The JSON-safe body stored with the event."""
        return dataclasses.asdict(self)
