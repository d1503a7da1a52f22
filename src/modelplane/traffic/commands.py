"""Commands of delivery: the only ways to change experiments, rollouts and deployments, and
the live counters and prediction outcomes serving replicas send in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelplane.core.messages import Command
from modelplane.traffic.live import Counters

__all__ = [
    "AbortRollout",
    "CreateExperiment",
    "DecideRollout",
    "Deploy",
    "PauseExperiment",
    "RecordFeedback",
    "RecordTrafficCounters",
    "RollbackDeploy",
    "StartExperiment",
    "StartRollout",
    "StopExperiment",
]


@dataclass(frozen=True)
class CreateExperiment(Command):
    """``variants``: (name, version, weight) per arm; a shadow has one (its candidate)."""

    name: str
    model: str
    variants: tuple[tuple[str, int, float], ...]
    kind: Literal["split", "shadow"] = "split"
    metric: str = "accuracy"
    mde: float = 0.02
    alpha: float = 0.05
    power: float = 0.8
    bandit: bool = False
    shadow_percent: float = 0.0


@dataclass(frozen=True)
class StartExperiment(Command):
    name: str


@dataclass(frozen=True)
class PauseExperiment(Command):
    name: str


@dataclass(frozen=True)
class StopExperiment(Command):
    name: str


@dataclass(frozen=True)
class StartRollout(Command):
    """Start a canary of ``candidate`` against the model's champion (its baseline)."""

    model: str
    candidate: int
    steps: tuple[int, ...] = (5, 25, 50, 100)
    step_duration_s: float = 300.0
    min_requests: int = 500
    max_error_rate: float = 0.01
    max_latency_ratio: float = 1.5
    alpha: float = 0.05
    force: bool = False


@dataclass(frozen=True)
class DecideRollout(Command):
    """Apply a controller's (or a person's) decision to the model's running rollout.

    ``expected_step`` guards against two controllers deciding the same step twice: the decision
    applies only if the rollout is still at that step (None: whatever step it is at).
    """

    model: str
    decision: Literal["advance", "promote", "rollback"]
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    expected_step: int | None = None
    manual: bool = False


@dataclass(frozen=True)
class AbortRollout(Command):
    model: str
    reason: str = "aborted by hand"


@dataclass(frozen=True)
class Deploy(Command):
    """Blue-green: move ``champion`` to ``version`` at once; keep blue loaded ``keep_blue_s``."""

    model: str
    version: int
    keep_blue_s: float = 600.0
    force: bool = False


@dataclass(frozen=True)
class RollbackDeploy(Command):
    model: str


@dataclass(frozen=True)
class RecordTrafficCounters(Command):
    """Add a replica's counter deltas, per (subject, variant), to the totals all replicas share.

    High-volume (one per replica per flush): it records no event.
    """

    deltas: Mapping[tuple[str, str], Counters]


@dataclass(frozen=True)
class RecordFeedback(Command):
    """Store the outcome of one prediction (``POST /feedback``); the handler returns its revision.

    A request has one outcome: a second one is a Conflict unless ``overwrite``. ``subject`` and
    ``variant`` are those of the request when the replica that took the outcome knows them.
    """

    request_id: str
    label: float | None
    reward: float | None
    subject: str | None
    variant: str | None
    overwrite: bool = False
