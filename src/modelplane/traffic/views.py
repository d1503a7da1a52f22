"""Read side of delivery: experiments, rollouts, deployments, live counters, the routing table."""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import Engine, desc, select

from modelplane.core.clock import utcnow
from modelplane.errors import ExperimentNotFound, RolloutNotFound
from modelplane.traffic.adapters import tables as t
from modelplane.traffic.adapters.sql import (
    SqlTrafficStore,
    row_to_deployment,
    row_to_experiment,
    row_to_rollout,
)
from modelplane.traffic.assignment import thompson_weights
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters
from modelplane.traffic.model import Arm, rollout_subject
from modelplane.traffic.rollout import Rollout
from modelplane.traffic.routing import Keep, Route, RoutingTable, ShadowRoute

__all__ = ["BASELINE", "CANDIDATE", "TrafficViews"]

CANDIDATE = "candidate"
BASELINE = "baseline"


class TrafficViews:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.store = SqlTrafficStore(engine)

    # -- experiments -------------------------------------------------------------------------
    def get_experiment(self, name: str) -> Experiment:
        with self._engine.connect() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(f"experiment {name!r} does not exist", field="name")
        return row_to_experiment(row)

    def list_experiments(
        self, *, model: str | None = None, status: str | None = None
    ) -> list[Experiment]:
        query = select(t.experiments).order_by(desc(t.experiments.c.id))
        if model is not None:
            query = query.where(t.experiments.c.model == model)
        if status is not None:
            query = query.where(t.experiments.c.status == status)
        with self._engine.connect() as conn:
            return [row_to_experiment(r) for r in conn.execute(query)]

    def experiment_counters(self, experiment: Experiment) -> dict[str, Counters]:
        """Totals per arm name (every arm present, zero when it has had no traffic)."""
        stored = self.store.counters([experiment.subject])
        return {
            arm.name: stored.get((experiment.subject, arm.name), Counters())
            for arm in experiment.arms
        }

    # -- rollouts ----------------------------------------------------------------------------
    def list_rollouts(
        self, *, model: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Rollout]:
        query = select(t.rollouts).order_by(desc(t.rollouts.c.id)).limit(limit)
        if model is not None:
            query = query.where(t.rollouts.c.model == model)
        if status is not None:
            query = query.where(t.rollouts.c.status == status)
        with self._engine.connect() as conn:
            return [row_to_rollout(r) for r in conn.execute(query)]

    def latest_rollout(self, model: str) -> Rollout:
        found = self.list_rollouts(model=model, limit=1)
        if not found:
            raise RolloutNotFound(f"model {model!r} has had no rollout", field="model")
        return found[0]

    def running_rollouts(self) -> list[Rollout]:
        return self.list_rollouts(status="running", limit=10_000)

    def rollout_counters(self, rollout: Rollout, step: int | None = None) -> dict[str, Counters]:
        """Candidate and baseline totals of one step (default: the current one)."""
        assert rollout.id is not None
        subject = rollout_subject(rollout.id, rollout.step_index if step is None else step)
        stored = self.store.counters([subject])
        return {v: stored.get((subject, v), Counters()) for v in (CANDIDATE, BASELINE)}

    def rollout_totals(self, rollout: Rollout) -> dict[str, Counters]:
        """Candidate and baseline totals over every step so far."""
        assert rollout.id is not None
        subjects = [rollout_subject(rollout.id, i) for i in range(rollout.step_index + 1)]
        out = {CANDIDATE: Counters(), BASELINE: Counters()}
        for (_, variant), counters in self.store.counters(subjects).items():
            if variant in out:
                out[variant].add(counters)
        return out

    # -- deployments -------------------------------------------------------------------------
    def list_deployments(self, *, model: str | None = None, limit: int = 50) -> list[Deployment]:
        query = select(t.deployments).order_by(desc(t.deployments.c.id)).limit(limit)
        if model is not None:
            query = query.where(t.deployments.c.model == model)
        with self._engine.connect() as conn:
            return [row_to_deployment(r) for r in conn.execute(query)]

    # -- what serving follows ----------------------------------------------------------------
    def routing_table(self, now: datetime | None = None) -> RoutingTable:
        """Running splits and rollouts, running shadows, and blue versions still to keep."""
        now = now or utcnow()
        with self._engine.connect() as conn:
            experiments = [
                row_to_experiment(r)
                for r in conn.execute(
                    select(t.experiments).where(t.experiments.c.status == "running")
                )
            ]
            rollouts = [
                row_to_rollout(r)
                for r in conn.execute(select(t.rollouts).where(t.rollouts.c.status == "running"))
            ]
            kept = [
                row_to_deployment(r)
                for r in conn.execute(
                    select(t.deployments).where(
                        t.deployments.c.status == "switched", t.deployments.c.keep_until > now
                    )
                )
            ]
        routes: dict[str, Route] = {}
        shadows: dict[str, ShadowRoute] = {}
        bandits = [e for e in experiments if e.kind == "split" and e.bandit]
        rewards = self.store.counters([e.subject for e in bandits]) if bandits else {}
        for e in experiments:
            if e.kind == "shadow":
                arm = e.arms[0]
                shadows[e.model] = ShadowRoute(
                    model=e.model,
                    name=e.name,
                    subject=e.subject,
                    variant=arm.name,
                    candidate=arm.version,
                    percent=e.shadow_percent,
                )
                continue
            arms = e.arms
            if e.bandit:
                arms = _bandit_arms(e, rewards)
            routes[e.model] = Route(
                model=e.model,
                source="experiment",
                name=e.name,
                salt=f"experiment:{e.name}",
                subject=e.subject,
                arms=arms,
            )
        for r in rollouts:
            assert r.id is not None
            routes[r.model] = Route(
                model=r.model,
                source="rollout",
                name=r.key,
                salt=f"rollout:{r.id}",
                subject=r.subject,
                arms=(
                    Arm(CANDIDATE, r.candidate, float(r.weight)),
                    Arm(BASELINE, r.baseline, float(100 - r.weight)),
                ),
            )
        keep = tuple(
            Keep(d.model, d.blue, d.keep_until.timestamp()) for d in kept if d.blue is not None
        )
        return RoutingTable(routes=routes, shadows=shadows, keep=keep)


def _bandit_arms(
    experiment: Experiment, stored: dict[tuple[str, str], Counters]
) -> tuple[Arm, ...]:
    """Thompson sampling over each arm's rewards (successes = reward sum, 0/1 rewards).

    The draw is seeded by the counts, so every replica computes the same split from the same
    totals.
    """
    successes: list[int] = []
    failures: list[int] = []
    for arm in experiment.arms:
        c = stored.get((experiment.subject, arm.name), Counters())
        wins = max(0, min(c.outcome_n, round(c.outcome_sum)))
        successes.append(wins)
        failures.append(c.outcome_n - wins)
    seed = random.Random(f"{experiment.name}:{successes}:{failures}").getrandbits(64)
    import numpy as np

    weights = thompson_weights(successes, failures, rng=np.random.default_rng(seed))
    return tuple(
        Arm(arm.name, arm.version, w) for arm, w in zip(experiment.arms, weights, strict=True)
    )
