"""An experiment: an A/B/n test (optionally a bandit) or a shadow of a model's traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelplane.core.aggregate import SequencedAggregate
from modelplane.core.names import validate_name
from modelplane.errors import Conflict, InvalidInput
from modelplane.traffic.assignment import Variant, validate_split
from modelplane.traffic.events import (
    ExperimentCreated,
    ExperimentPaused,
    ExperimentStarted,
    ExperimentStopped,
)
from modelplane.traffic.model import (
    METRICS,
    Arm,
    ExperimentKind,
    ExperimentStatus,
    Metric,
    iso,
    probability,
)

__all__ = ["Experiment"]


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
        probability(alpha, "alpha", high=0.5)
        probability(power, "power")
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
            probability(shadow_percent, "shadow_percent", high=100.000001)
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
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "stopped_at": iso(self.stopped_at),
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
