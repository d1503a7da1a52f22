"""Events of delivery: experiments, canary rollouts and blue-green deploys.

Each is written in the same transaction as the state it describes. Experiments are keyed by
their name; rollouts and deployments by ``model#id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from modelplane.core.messages import Event

__all__ = [
    "CanaryAborted",
    "CanaryPromoted",
    "CanaryRolledBack",
    "CanaryStepAdvanced",
    "DeploymentRolledBack",
    "DeploymentSwitched",
    "ExperimentCreated",
    "ExperimentPaused",
    "ExperimentStarted",
    "ExperimentStopped",
    "RolloutStarted",
]


@dataclass(frozen=True)
class _ExperimentEvent(Event):
    aggregate_type: ClassVar[str] = "experiment"

    experiment: str
    model: str

    @property
    def aggregate_id(self) -> str:
        return self.experiment


@dataclass(frozen=True)
class ExperimentCreated(_ExperimentEvent):
    kind: str = "split"
    variants: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "accuracy"
    bandit: bool = False
    shadow_percent: float = 0.0


@dataclass(frozen=True)
class ExperimentStarted(_ExperimentEvent):
    pass


@dataclass(frozen=True)
class ExperimentPaused(_ExperimentEvent):
    pass


@dataclass(frozen=True)
class ExperimentStopped(_ExperimentEvent):
    pass


@dataclass(frozen=True)
class _RolloutEvent(Event):
    aggregate_type: ClassVar[str] = "rollout"

    key: str
    model: str

    @property
    def aggregate_id(self) -> str:
        return self.key


@dataclass(frozen=True)
class RolloutStarted(_RolloutEvent):
    baseline: int = 0
    candidate: int = 0
    steps: list[int] = field(default_factory=list)
    weight: int = 0
    forced: bool = False


@dataclass(frozen=True)
class CanaryStepAdvanced(_RolloutEvent):
    candidate: int = 0
    step: int = 0
    weight: int = 0
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryPromoted(_RolloutEvent):
    candidate: int = 0
    baseline: int = 0
    step: int = 0
    reason: str = ""
    manual: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryRolledBack(_RolloutEvent):
    candidate: int = 0
    baseline: int = 0
    step: int = 0
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryAborted(_RolloutEvent):
    candidate: int = 0
    reason: str = ""


@dataclass(frozen=True)
class _DeploymentEvent(Event):
    aggregate_type: ClassVar[str] = "deployment"

    key: str
    model: str

    @property
    def aggregate_id(self) -> str:
        return self.key


@dataclass(frozen=True)
class DeploymentSwitched(_DeploymentEvent):
    blue: int | None = None
    green: int = 0
    keep_until: str = ""
    forced: bool = False


@dataclass(frozen=True)
class DeploymentRolledBack(_DeploymentEvent):
    blue: int = 0
    green: int = 0
