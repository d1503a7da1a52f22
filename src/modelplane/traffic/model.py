"""The delivery domain's shared values: arms, statuses, the limits and keys its aggregates use.

The aggregates themselves live one per module: :class:`~modelplane.traffic.experiment.
Experiment` (A/B/n, bandit, shadow), :class:`~modelplane.traffic.rollout.Rollout` (canary) and
:class:`~modelplane.traffic.deployment.Deployment` (blue-green). They are plain dataclasses and
rules, no I/O: a change goes through one of an aggregate's methods, which checks the rules and
appends the event describing the change to ``events``; the unit of work writes the state and its
events in one transaction.

Versions are stored as numbers of one model (``fraud/3`` → 3): an experiment's arms, a
rollout's baseline and candidate and a deploy's blue and green always belong to the model they
route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelplane.errors import InvalidInput

__all__ = [
    "CHAMPION",
    "MAX_SECONDS",
    "METRICS",
    "Arm",
    "DeploymentStatus",
    "ExperimentKind",
    "ExperimentStatus",
    "Metric",
    "RolloutStatus",
    "iso",
    "probability",
    "rollout_subject",
]

#: The alias delivery moves: a promotion, a deploy and a rollback point it at a version.
CHAMPION = "champion"

ExperimentKind = Literal["split", "shadow"]
ExperimentStatus = Literal["draft", "running", "paused", "stopped"]
Metric = Literal["accuracy", "reward"]
RolloutStatus = Literal["running", "promoted", "rolled_back", "aborted"]
DeploymentStatus = Literal["switched", "rolled_back"]

METRICS: tuple[str, ...] = ("accuracy", "reward")
MAX_SECONDS = 30 * 24 * 3600.0
"""The longest canary step or blue-green keep: beyond, a typo rather than a plan."""


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: a name, a version of the experiment's model, a percentage."""

    name: str
    version: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arm:
        return cls(str(data["name"]), int(data["version"]), float(data["weight"]))


def iso(value: datetime | None) -> str | None:
    """A timestamp as the JSON shapes show it (None stays None)."""
    return value.isoformat() if value is not None else None


def probability(value: float, field: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float strictly between ``low`` and ``high``, else `InvalidInput`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    if not low < value < high:
        raise InvalidInput(
            f"{field} must be between {low:g} and {high:g}, got {value!r}", field=field
        )
    return float(value)


def rollout_subject(rollout_id: int, step_index: int) -> str:
    """Live counters of a rollout are kept per step: each step is judged on its own traffic."""
    return f"rollout:{rollout_id}:{step_index}"
