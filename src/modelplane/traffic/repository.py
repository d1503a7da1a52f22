"""Delivery's persistence port: what its handlers need from storage, nothing more.

``models`` is the narrow window onto the registry a delivery decision needs (is this version
ready, did it pass its gates, move the ``champion`` alias) so that, for example, a promotion and
the alias move it causes are one transaction. The database layer implements it over the
registry's own aggregate; delivery never imports the registry. ``ledger`` takes what serving
replicas send in (counter deltas, outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modelplane.core.uow import UnitOfWork
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters
from modelplane.traffic.rollout import Rollout

__all__ = [
    "DeploymentRepository",
    "ExperimentRepository",
    "ModelPort",
    "RolloutRepository",
    "TrafficLedger",
    "TrafficUnitOfWork",
    "VersionState",
]


@dataclass(frozen=True)
class VersionState:
    model: str
    version: int
    status: str
    gate: str | None  # "passed", "failed", "forced" or None (never gated)


class ModelPort(Protocol):
    def lock(self, model: str) -> dict[str, int]:
        """Lock the model against concurrent writers; return its aliases. ModelNotFound."""
        ...

    def version(self, model: str, version: int) -> VersionState:
        """A version's status and gate result. VersionNotFound."""
        ...

    def move_alias(self, model: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (its ``AliasSet`` event goes in this transaction)."""
        ...


class ExperimentRepository(Protocol):
    def add(self, experiment: Experiment) -> bool:
        """Insert; False when one of that name exists."""
        ...

    def get(self, name: str) -> Experiment | None: ...

    def active_for(self, model: str, kind: str) -> list[Experiment]:
        """Running or paused experiments of ``kind`` on ``model``."""
        ...

    def save(self, experiment: Experiment) -> None: ...


class RolloutRepository(Protocol):
    def add(self, rollout: Rollout) -> None:
        """Insert and set ``rollout.id``."""
        ...

    def running(self, model: str) -> Rollout | None: ...

    def save(self, rollout: Rollout) -> None: ...


class DeploymentRepository(Protocol):
    def add(self, deployment: Deployment) -> None: ...

    def last(self, model: str) -> Deployment | None: ...

    def save(self, deployment: Deployment) -> None: ...


class TrafficLedger(Protocol):
    """What serving replicas send in: counter deltas and prediction outcomes."""

    def add_counters(self, deltas: Mapping[tuple[str, str], Counters]) -> None:
        """Add each (subject, variant)'s deltas to the shared totals."""
        ...

    def add_feedback(
        self,
        request_id: str,
        *,
        label: float | None,
        reward: float | None,
        subject: str | None,
        variant: str | None,
        overwrite: bool = False,
    ) -> int:
        """Store one outcome; its revision (1 for the first). A second one is a Conflict unless
        ``overwrite`` (which keeps the replaced value and counts the revision up)."""
        ...


class TrafficUnitOfWork(UnitOfWork, Protocol):
    experiments: ExperimentRepository
    rollouts: RolloutRepository
    deployments: DeploymentRepository
    ledger: TrafficLedger
    model_port: ModelPort
    clock: Callable[[], datetime]
