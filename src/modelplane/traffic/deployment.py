"""A blue-green deploy: the ``champion`` alias switched at once, the previous version kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelplane.core.aggregate import SequencedAggregate
from modelplane.errors import Conflict
from modelplane.traffic.events import DeploymentRolledBack, DeploymentSwitched
from modelplane.traffic.model import DeploymentStatus, iso

__all__ = ["Deployment"]


@dataclass
class Deployment(SequencedAggregate):
    """A blue-green switch: the ``champion`` alias moved from ``blue`` to ``green``.

    Servers keep ``blue`` loaded until ``keep_until`` so :meth:`roll_back` is instant.
    """

    model: str
    blue: int | None
    green: int
    keep_until: datetime
    created_at: datetime
    updated_at: datetime
    id: int | None = None
    status: DeploymentStatus = "switched"
    forced: bool = False

    @property
    def key(self) -> str:
        return f"{self.model}#{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI (``--json``) and the REST API show."""
        return {
            "deployment": self.key,
            "id": self.id,
            "model": self.model,
            "blue": self.blue,
            "green": self.green,
            "status": self.status,
            "forced": self.forced,
            "keep_until": iso(self.keep_until),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def switched(self) -> None:
        self._record(
            DeploymentSwitched(
                key=self.key,
                model=self.model,
                blue=self.blue,
                green=self.green,
                keep_until=self.keep_until.isoformat(),
                forced=self.forced,
            )
        )

    def roll_back(self, *, now: datetime) -> int:
        if self.status != "switched":
            raise Conflict(f"deployment {self.key} is already {self.status}", field="status")
        if self.blue is None:
            raise Conflict(
                f"deployment {self.key} had no previous version to go back to", field="blue"
            )
        self.status = "rolled_back"
        self.updated_at = now
        self._record(
            DeploymentRolledBack(key=self.key, model=self.model, blue=self.blue, green=self.green)
        )
        return self.blue
