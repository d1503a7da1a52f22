"""SQL storage of delivery: experiments, rollouts, deployments, live counters and feedback.

The repositories are used inside a unit of work (the model being routed is already locked by
the handler). :class:`SqlTrafficLedger` is the write side of what serving replicas send, through
the ``RecordTrafficCounters`` and ``RecordFeedback`` commands: counter deltas with one upsert per
(subject, variant) — ``x = x + delta``, so concurrent replicas never lose each other's counts —
and outcomes, one per request (a second one only as an explicit, recorded overwrite).
:class:`SqlTrafficStore` reads them back, outside any unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, desc, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from modelplane.core.clock import aware, utcnow
from modelplane.core.uow import HasEvents
from modelplane.errors import Conflict
from modelplane.traffic.adapters import tables as t
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import COUNTER_FIELDS, Counters
from modelplane.traffic.model import Arm
from modelplane.traffic.rollout import Rollout

__all__ = [
    "SqlDeploymentRepository",
    "SqlExperimentRepository",
    "SqlRolloutRepository",
    "SqlTrafficLedger",
    "SqlTrafficStore",
    "row_to_deployment",
    "row_to_experiment",
    "row_to_rollout",
]


class _Tx(Protocol):
    conn: Connection
    dialect: str

    def track(self, aggregate: HasEvents) -> None: ...


def _opt(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


def row_to_experiment(row: Row[Any]) -> Experiment:
    m = row._mapping
    return Experiment(
        name=m["name"],
        model=m["model"],
        kind=m["kind"],
        arms=tuple(Arm.from_dict(a) for a in m["arms"]),
        created_at=aware(m["created_at"]),
        updated_at=aware(m["updated_at"]),
        status=m["status"],
        metric=m["metric"],
        mde=m["mde"],
        alpha=m["alpha"],
        power=m["power"],
        bandit=bool(m["bandit"]),
        shadow_percent=m["shadow_percent"],
        started_at=_opt(m["started_at"]),
        stopped_at=_opt(m["stopped_at"]),
        event_seq=m["event_seq"],
    )


def _experiment_values(e: Experiment) -> dict[str, Any]:
    return {
        "name": e.name,
        "model": e.model,
        "kind": e.kind,
        "status": e.status,
        "arms": [a.to_dict() for a in e.arms],
        "metric": e.metric,
        "mde": e.mde,
        "alpha": e.alpha,
        "power": e.power,
        "bandit": e.bandit,
        "shadow_percent": e.shadow_percent,
        "event_seq": e.event_seq,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "started_at": e.started_at,
        "stopped_at": e.stopped_at,
    }


def row_to_rollout(row: Row[Any]) -> Rollout:
    m = row._mapping
    return Rollout(
        id=m["id"],
        model=m["model"],
        baseline=m["baseline"],
        candidate=m["candidate"],
        steps=tuple(int(s) for s in m["steps"]),
        step_index=m["step_index"],
        step_started_at=aware(m["step_started_at"]),
        status=m["status"],
        step_duration_s=m["step_duration_s"],
        min_requests=m["min_requests"],
        max_error_rate=m["max_error_rate"],
        max_latency_ratio=m["max_latency_ratio"],
        alpha=m["alpha"],
        reason=m["reason"],
        forced=bool(m["forced"]),
        event_seq=m["event_seq"],
        created_at=aware(m["created_at"]),
        updated_at=aware(m["updated_at"]),
    )


def _rollout_values(r: Rollout) -> dict[str, Any]:
    return {
        "model": r.model,
        "baseline": r.baseline,
        "candidate": r.candidate,
        "steps": list(r.steps),
        "step_index": r.step_index,
        "step_started_at": r.step_started_at,
        "status": r.status,
        "step_duration_s": r.step_duration_s,
        "min_requests": r.min_requests,
        "max_error_rate": r.max_error_rate,
        "max_latency_ratio": r.max_latency_ratio,
        "alpha": r.alpha,
        "reason": r.reason,
        "forced": r.forced,
        "event_seq": r.event_seq,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


def row_to_deployment(row: Row[Any]) -> Deployment:
    m = row._mapping
    return Deployment(
        id=m["id"],
        model=m["model"],
        blue=m["blue"],
        green=m["green"],
        status=m["status"],
        keep_until=aware(m["keep_until"]),
        forced=bool(m["forced"]),
        event_seq=m["event_seq"],
        created_at=aware(m["created_at"]),
        updated_at=aware(m["updated_at"]),
    )


def _deployment_values(d: Deployment) -> dict[str, Any]:
    return {
        "model": d.model,
        "blue": d.blue,
        "green": d.green,
        "status": d.status,
        "keep_until": d.keep_until,
        "forced": d.forced,
        "event_seq": d.event_seq,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


class SqlExperimentRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx

    def add(self, experiment: Experiment) -> bool:
        ins = pg_insert if self._tx.dialect == "postgresql" else sqlite_insert
        stmt = (
            ins(t.experiments)
            .values(**_experiment_values(experiment))
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(t.experiments.c.id)
        )
        if self._tx.conn.execute(stmt).first() is None:
            return False
        self._tx.track(experiment)
        return True

    def get(self, name: str) -> Experiment | None:
        row = self._tx.conn.execute(
            select(t.experiments).where(t.experiments.c.name == name)
        ).first()
        if row is None:
            return None
        experiment = row_to_experiment(row)
        self._tx.track(experiment)
        return experiment

    def active_for(self, model: str, kind: str) -> list[Experiment]:
        rows = self._tx.conn.execute(
            select(t.experiments).where(
                t.experiments.c.model == model,
                t.experiments.c.kind == kind,
                t.experiments.c.status.in_(("running", "paused")),
            )
        ).all()
        return [row_to_experiment(r) for r in rows]

    def save(self, experiment: Experiment) -> None:
        self._tx.conn.execute(
            update(t.experiments)
            .where(t.experiments.c.name == experiment.name)
            .values(**_experiment_values(experiment))
        )
        self._tx.track(experiment)


class SqlRolloutRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx

    def add(self, rollout: Rollout) -> None:
        result = self._tx.conn.execute(
            insert(t.rollouts).values(**_rollout_values(rollout)).returning(t.rollouts.c.id)
        )
        rollout.id = int(result.scalar_one())
        self._tx.track(rollout)

    def running(self, model: str) -> Rollout | None:
        row = self._tx.conn.execute(
            select(t.rollouts)
            .where(t.rollouts.c.model == model, t.rollouts.c.status == "running")
            .order_by(desc(t.rollouts.c.id))
            .limit(1)
        ).first()
        if row is None:
            return None
        rollout = row_to_rollout(row)
        self._tx.track(rollout)
        return rollout

    def save(self, rollout: Rollout) -> None:
        assert rollout.id is not None
        self._tx.conn.execute(
            update(t.rollouts)
            .where(t.rollouts.c.id == rollout.id)
            .values(**_rollout_values(rollout))
        )
        self._tx.track(rollout)


class SqlDeploymentRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx

    def add(self, deployment: Deployment) -> None:
        result = self._tx.conn.execute(
            insert(t.deployments)
            .values(**_deployment_values(deployment))
            .returning(t.deployments.c.id)
        )
        deployment.id = int(result.scalar_one())
        self._tx.track(deployment)

    def last(self, model: str) -> Deployment | None:
        row = self._tx.conn.execute(
            select(t.deployments)
            .where(t.deployments.c.model == model)
            .order_by(desc(t.deployments.c.id))
            .limit(1)
        ).first()
        if row is None:
            return None
        deployment = row_to_deployment(row)
        self._tx.track(deployment)
        return deployment

    def save(self, deployment: Deployment) -> None:
        assert deployment.id is not None
        self._tx.conn.execute(
            update(t.deployments)
            .where(t.deployments.c.id == deployment.id)
            .values(**_deployment_values(deployment))
        )
        self._tx.track(deployment)


class SqlTrafficLedger:
    """What serving replicas send in (counter deltas, outcomes), written in a unit of work."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._insert = pg_insert if tx.dialect == "postgresql" else sqlite_insert

    def add_counters(self, deltas: Mapping[tuple[str, str], Counters]) -> None:
        """Add each (subject, variant)'s deltas to the stored totals (the unit of work's
        transaction: all of them or none)."""
        if not deltas:
            return
        now = utcnow()
        stats_rows: list[dict[str, Any]] = []
        latency_rows: list[dict[str, Any]] = []
        for (subject, variant), c in sorted(deltas.items()):
            stats_rows.append(
                {"subject": subject, "variant": variant, "updated_at": now}
                | {f: getattr(c, f) for f in COUNTER_FIELDS}
            )
            latency_rows.extend(
                {"subject": subject, "variant": variant, "bucket": b, "count": n}
                for b, n in sorted(c.buckets.items())
            )
        stats = self._insert(t.traffic_stats)
        stats = stats.on_conflict_do_update(
            index_elements=["subject", "variant"],
            set_={f: t.traffic_stats.c[f] + stats.excluded[f] for f in COUNTER_FIELDS}
            | {"updated_at": stats.excluded.updated_at},
        )
        latency = self._insert(t.traffic_latency)
        latency = latency.on_conflict_do_update(
            index_elements=["subject", "variant", "bucket"],
            set_={"count": t.traffic_latency.c.count + latency.excluded["count"]},
        )
        self._tx.conn.execute(stats, stats_rows)
        if latency_rows:
            self._tx.conn.execute(latency, latency_rows)

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
        """Store the outcome of one prediction; return its revision (1 for the first).

        A request has one outcome: a second one raises :class:`Conflict` unless ``overwrite``,
        and an overwrite keeps the value it replaced (``previous_label``/``previous_reward``),
        when (``overwritten_at``) and counts up ``revision``; a subject and variant already
        known are kept when the new outcome comes from a replica that did not know them. One
        statement either way, so two concurrent first outcomes never both win.
        """
        now = utcnow()
        values = {
            "request_id": request_id,
            "label": label,
            "reward": reward,
            "subject": subject,
            "variant": variant,
            "received_at": now,
            "revision": 1,
        }
        fb = t.feedback
        stmt = self._insert(fb).values(**values)
        if overwrite:
            upsert = stmt.on_conflict_do_update(
                index_elements=["request_id"],
                set_={
                    "label": stmt.excluded.label,
                    "reward": stmt.excluded.reward,
                    "subject": func.coalesce(stmt.excluded.subject, fb.c.subject),
                    "variant": func.coalesce(stmt.excluded.variant, fb.c.variant),
                    "received_at": stmt.excluded.received_at,
                    "revision": fb.c.revision + 1,
                    "previous_label": fb.c.label,
                    "previous_reward": fb.c.reward,
                    "overwritten_at": stmt.excluded.received_at,
                },
            ).returning(fb.c.revision)
            return int(self._tx.conn.execute(upsert).scalar_one())
        first = stmt.on_conflict_do_nothing(index_elements=["request_id"]).returning(fb.c.revision)
        if self._tx.conn.execute(first).scalar() is not None:  # a row came back: it was inserted
            return 1
        revision = self._tx.conn.execute(
            select(fb.c.revision).where(fb.c.request_id == request_id)
        ).scalar()
        raise Conflict(
            f"request {request_id!r} already has an outcome (revision {revision}); send "
            '"overwrite": true to replace it',
            field="request_id",
        )


class SqlTrafficStore:
    """Counters and feedback as stored (the read side; commands write them)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def counters(self, subjects: Iterable[str]) -> dict[tuple[str, str], Counters]:
        """The stored totals of ``subjects``, keyed by (subject, variant)."""
        wanted = list(subjects)
        if not wanted:
            return {}
        out: dict[tuple[str, str], Counters] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(
                select(t.traffic_stats).where(t.traffic_stats.c.subject.in_(wanted))
            ):
                m = row._mapping
                out[(m["subject"], m["variant"])] = Counters(**{f: m[f] for f in COUNTER_FIELDS})
            for row in conn.execute(
                select(t.traffic_latency).where(t.traffic_latency.c.subject.in_(wanted))
            ):
                m = row._mapping
                key = (m["subject"], m["variant"])
                out.setdefault(key, Counters()).buckets[m["bucket"]] = m["count"]
        return out

    def subjects_like(self, prefix: str) -> list[str]:
        """Every stored subject starting with ``prefix`` (a rollout's steps)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.traffic_stats.c.subject)
                .where(t.traffic_stats.c.subject.startswith(prefix, autoescape=True))
                .distinct()
            ).all()
        return [r[0] for r in rows]

    def feedback(self, request_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Stored outcomes (all, or those of ``request_ids``), as plain rows."""
        query = select(t.feedback)
        if request_ids is not None:
            query = query.where(t.feedback.c.request_id.in_(list(request_ids)))
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
