"""The delivery domain: experiments (A/B/n, bandit, shadow), canary rollouts, blue-green deploys.

Plain dataclasses and rules, no I/O. Each class is an aggregate: a change goes through one of its
methods, which checks the rules and appends the event describing the change to ``events``; the
unit of work writes the state and its events in one transaction.

Versions are stored as numbers of one model (``fraud/3`` → 3): an experiment's arms, a
rollout's baseline and candidate and a deploy's blue and green always belong to the model they
route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelplane.core.aggregate import SequencedAggregate
from modelplane.core.names import validate_name
from modelplane.errors import Conflict, InvalidInput
from modelplane.traffic.assignment import Variant, validate_split
from modelplane.traffic.events import (
    CanaryAborted,
    CanaryPromoted,
    CanaryRolledBack,
    CanaryStepAdvanced,
    DeploymentRolledBack,
    DeploymentSwitched,
    ExperimentCreated,
    ExperimentPaused,
    ExperimentStarted,
    ExperimentStopped,
    RolloutStarted,
)

__all__ = [
    "Arm",
    "Deployment",
    "Experiment",
    "ExperimentKind",
    "ExperimentStatus",
    "Metric",
    "Rollout",
    "RolloutStatus",
    "rollout_subject",
    "validate_steps",
]

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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _probability(value: float, field: str, *, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    if not low < value < high:
        raise InvalidInput(
            f"{field} must be between {low:g} and {high:g}, got {value!r}", field=field
        )
    return float(value)


@dataclass
class Experiment(SequencedAggregate):
    """An A/B/n test (``kind="split"``, optionally a Thompson-sampling bandit) or a shadow.

    A split routes a model's bare-name traffic to its arms by weight; a shadow has one arm, the
    candidate, which receives a copy of ``shadow_percent`` % of the requests off the request
    path (the client only ever sees the primary's answer).
    """

    name: str
    model: str
    kind: ExperimentKind
    arms: tuple[Arm, ...]
    created_at: datetime
    updated_at: datetime
    status: ExperimentStatus = "draft"
    metric: Metric = "accuracy"
    mde: float = 0.02
    alpha: float = 0.05
    power: float = 0.8
    bandit: bool = False
    shadow_percent: float = 0.0
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    @classmethod
    def create(
        cls,
        name: str,
        model: str,
        *,
        kind: ExperimentKind,
        arms: tuple[Arm, ...],
        metric: str,
        mde: float,
        alpha: float,
        power: float,
        bandit: bool,
        shadow_percent: float,
        now: datetime,
    ) -> Experiment:
        validate_name(name, field="name")
        validate_name(model, field="model")
        if kind not in ("split", "shadow"):
            raise InvalidInput(f"unknown experiment kind {kind!r}", field="kind")
        if metric not in METRICS:
            raise InvalidInput(
                f"metric must be one of {', '.join(METRICS)}, got {metric!r}", field="metric"
            )
        _probability(alpha, "alpha", high=0.5)
        _probability(power, "power")
        if isinstance(mde, bool) or not isinstance(mde, int | float) or not mde > 0:
            raise InvalidInput(f"mde must be a number > 0, got {mde!r}", field="mde")
        if kind == "split":
            for arm in arms:
                validate_name(arm.name, field="variant")
            validate_split([Variant(a.name, f"{model}/{a.version}", a.weight) for a in arms])
            if len({a.version for a in arms}) != len(arms):
                raise InvalidInput("two variants serve the same version", field="variants")
            shadow_percent = 0.0
        else:
            if len(arms) != 1:
                raise InvalidInput("a shadow has exactly one candidate", field="variants")
            _probability(shadow_percent, "shadow_percent", high=100.000001)
            if bandit:
                raise InvalidInput("a shadow cannot be a bandit", field="bandit")
        experiment = cls(
            name=name,
            model=model,
            kind=kind,
            arms=arms,
            created_at=now,
            updated_at=now,
            metric=metric,  # type: ignore[arg-type]
            mde=float(mde),
            alpha=float(alpha),
            power=float(power),
            bandit=bandit,
            shadow_percent=float(shadow_percent),
        )
        experiment._record(
            ExperimentCreated(
                experiment=name,
                model=model,
                kind=kind,
                variants=[a.to_dict() for a in arms],
                metric=metric,
                bandit=bandit,
                shadow_percent=float(shadow_percent),
            )
        )
        return experiment

    @property
    def subject(self) -> str:
        """The key its live counters are kept under (``traffic_stats.subject``)."""
        return f"experiment:{self.name}"

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI (``--json``) and the REST API show."""
        return {
            "name": self.name,
            "model": self.model,
            "kind": self.kind,
            "status": self.status,
            "variants": [a.to_dict() for a in self.arms],
            "metric": self.metric,
            "mde": self.mde,
            "alpha": self.alpha,
            "power": self.power,
            "bandit": self.bandit,
            "shadow_percent": self.shadow_percent,
            "subject": self.subject,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
        }

    def start(self, *, now: datetime) -> None:
        if self.status == "running":
            return
        if self.status == "stopped":
            raise Conflict(f"experiment {self.name!r} is stopped; create a new one", field="status")
        self.status = "running"
        self.started_at = self.started_at or now
        self.updated_at = now
        self._record(ExperimentStarted(experiment=self.name, model=self.model))

    def pause(self, *, now: datetime) -> None:
        if self.status == "paused":
            return
        if self.status != "running":
            raise Conflict(
                f"experiment {self.name!r} is {self.status}; only a running one can pause",
                field="status",
            )
        self.status = "paused"
        self.updated_at = now
        self._record(ExperimentPaused(experiment=self.name, model=self.model))

    def stop(self, *, now: datetime) -> None:
        if self.status == "stopped":
            return
        self.status = "stopped"
        self.stopped_at = now
        self.updated_at = now
        self._record(ExperimentStopped(experiment=self.name, model=self.model))


def validate_steps(steps: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Canary weights: increasing percentages in (0, 100], ending at 100."""
    if not steps:
        raise InvalidInput("steps must list at least one percentage", field="steps")
    out: list[int] = []
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int) or not 0 < step <= 100:
            raise InvalidInput(
                f"each step must be a whole percentage in 1..100, got {step!r}", field="steps"
            )
        if out and step <= out[-1]:
            raise InvalidInput(f"steps must increase, got {step} after {out[-1]}", field="steps")
        out.append(step)
    if out[-1] != 100:
        raise InvalidInput(f"the last step must be 100, got {out[-1]}", field="steps")
    return tuple(out)


def rollout_subject(rollout_id: int, step_index: int) -> str:
    """Live counters of a rollout are kept per step: each step is judged on its own traffic."""
    return f"rollout:{rollout_id}:{step_index}"


@dataclass
class Rollout(SequencedAggregate):
    """A canary: ``candidate`` takes ``steps[step_index]`` % of the model's bare-name traffic.

    A controller judges each step on live metrics and calls :meth:`advance`, :meth:`promote`
    or :meth:`roll_back`; :meth:`abort` is the manual stop. Only one rollout per model runs.
    """

    model: str
    baseline: int
    candidate: int
    steps: tuple[int, ...]
    step_duration_s: float
    min_requests: int
    max_error_rate: float
    max_latency_ratio: float
    alpha: float
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime
    id: int | None = None
    step_index: int = 0
    status: RolloutStatus = "running"
    reason: str = ""
    forced: bool = False

    @property
    def key(self) -> str:
        """The aggregate id of its events: ``fraud#7``."""
        return f"{self.model}#{self.id}"

    @property
    def weight(self) -> int:
        """The candidate's share of traffic now, in percent (0 once rolled back or aborted)."""
        if self.status in ("rolled_back", "aborted"):
            return 0
        if self.status == "promoted":
            return 100
        return self.steps[self.step_index]

    @property
    def subject(self) -> str:
        assert self.id is not None
        return rollout_subject(self.id, self.step_index)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI (``--json``) and the REST API show."""
        return {
            "rollout": self.key,
            "id": self.id,
            "model": self.model,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "steps": list(self.steps),
            "step": self.step_index,
            "weight": self.weight,
            "status": self.status,
            "reason": self.reason,
            "forced": self.forced,
            "step_duration_s": self.step_duration_s,
            "min_requests": self.min_requests,
            "max_error_rate": self.max_error_rate,
            "max_latency_ratio": self.max_latency_ratio,
            "alpha": self.alpha,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "step_started_at": _iso(self.step_started_at),
        }

    @classmethod
    def create(
        cls,
        model: str,
        *,
        baseline: int,
        candidate: int,
        steps: tuple[int, ...],
        step_duration_s: float,
        min_requests: int,
        max_error_rate: float,
        max_latency_ratio: float,
        alpha: float,
        forced: bool,
        now: datetime,
    ) -> Rollout:
        validate_name(model, field="model")
        steps = validate_steps(steps)
        if baseline == candidate:
            raise InvalidInput(
                f"{model}/{candidate} is already the baseline (the champion); nothing to roll out",
                field="candidate",
            )
        if not isinstance(step_duration_s, int | float) or not 0 <= step_duration_s <= MAX_SECONDS:
            raise InvalidInput(
                f"step duration must be between 0 seconds and 30 days, got {step_duration_s!r}",
                field="step_duration",
            )
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
            raise InvalidInput("min requests must be a whole number >= 1", field="min_requests")
        _probability(max_error_rate, "max_error_rate")
        if not isinstance(max_latency_ratio, int | float) or not max_latency_ratio >= 1:
            raise InvalidInput("max latency ratio must be >= 1", field="max_latency_ratio")
        _probability(alpha, "alpha", high=0.5)
        return cls(
            model=model,
            baseline=baseline,
            candidate=candidate,
            steps=steps,
            step_duration_s=float(step_duration_s),
            min_requests=min_requests,
            max_error_rate=float(max_error_rate),
            max_latency_ratio=float(max_latency_ratio),
            alpha=float(alpha),
            created_at=now,
            updated_at=now,
            step_started_at=now,
            forced=forced,
        )

    def started(self) -> None:
        """Record the start once the rollout has its id (the id is part of the event key)."""
        self._record(
            RolloutStarted(
                key=self.key,
                model=self.model,
                baseline=self.baseline,
                candidate=self.candidate,
                steps=list(self.steps),
                weight=self.weight,
                forced=self.forced,
            )
        )

    def _check_running(self, expected_step: int | None) -> None:
        if self.status != "running":
            raise Conflict(f"rollout {self.key} is already {self.status}", field="status")
        if expected_step is not None and expected_step != self.step_index:
            raise Conflict(
                f"rollout {self.key} moved on (step {self.step_index}, not {expected_step})",
                field="step",
            )

    def _end(
        self, status: RolloutStatus, *, reason: str, now: datetime, expected_step: int | None
    ) -> None:
        """Finish a running rollout (promoted, rolled back or aborted) with its reason."""
        self._check_running(expected_step)
        self.status = status
        self.updated_at = now
        self.reason = reason

    def advance(
        self, *, reason: str, evidence: dict[str, Any], now: datetime, expected_step: int | None
    ) -> None:
        self._check_running(expected_step)
        if self.step_index + 1 >= len(self.steps):
            raise Conflict(f"rollout {self.key} is at its last step; promote it", field="step")
        self.step_index += 1
        self.step_started_at = now
        self.updated_at = now
        self.reason = reason
        self._record(
            CanaryStepAdvanced(
                key=self.key,
                model=self.model,
                candidate=self.candidate,
                step=self.step_index,
                weight=self.weight,
                reason=reason,
                evidence=evidence,
            )
        )

    def promote(
        self,
        *,
        reason: str,
        evidence: dict[str, Any],
        now: datetime,
        expected_step: int | None,
        manual: bool = False,
    ) -> None:
        """The candidate wins; the handler moves the ``champion`` alias in the same transaction."""
        self._end("promoted", reason=reason, now=now, expected_step=expected_step)
        self._record(
            CanaryPromoted(
                key=self.key,
                model=self.model,
                candidate=self.candidate,
                baseline=self.baseline,
                step=self.step_index,
                reason=reason,
                manual=manual,
                evidence=evidence,
            )
        )

    def roll_back(
        self, *, reason: str, evidence: dict[str, Any], now: datetime, expected_step: int | None
    ) -> None:
        self._end("rolled_back", reason=reason, now=now, expected_step=expected_step)
        self._record(
            CanaryRolledBack(
                key=self.key,
                model=self.model,
                candidate=self.candidate,
                baseline=self.baseline,
                step=self.step_index,
                reason=reason,
                evidence=evidence,
            )
        )

    def abort(self, *, reason: str, now: datetime) -> None:
        self._end("aborted", reason=reason, now=now, expected_step=None)
        self._record(
            CanaryAborted(key=self.key, model=self.model, candidate=self.candidate, reason=reason)
        )


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
            "keep_until": _iso(self.keep_until),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
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
