"""A canary rollout: a candidate version takes a model's traffic in growing steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelplane.core.aggregate import SequencedAggregate
from modelplane.core.names import validate_name
from modelplane.errors import Conflict, InvalidInput
from modelplane.traffic.events import (
    CanaryAborted,
    CanaryPromoted,
    CanaryRolledBack,
    CanaryStepAdvanced,
    RolloutStarted,
)
from modelplane.traffic.model import MAX_SECONDS, RolloutStatus, iso, probability, rollout_subject

__all__ = ["Rollout", "validate_steps"]


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
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "step_started_at": iso(self.step_started_at),
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
        probability(max_error_rate, "max_error_rate")
        if not isinstance(max_latency_ratio, int | float) or not max_latency_ratio >= 1:
            raise InvalidInput("max latency ratio must be >= 1", field="max_latency_ratio")
        probability(alpha, "alpha", high=0.5)
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
