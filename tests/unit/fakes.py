"""An in-memory unit of work: the same port as :class:`modelplane.db.uow.SqlUnitOfWork` with
the repositories :data:`modelplane.bootstrap.CAPABILITIES` declare.

:class:`FakeDatabase` is what survives between commands (committed rows and the event log);
each :class:`FakeUnitOfWork` is one transaction over it. On ``__enter__`` the transaction takes
a deep copy of the committed tables and works on that copy; ``commit`` numbers the events of the
aggregates it touched exactly as the SQL outbox does, appends them to the log and makes the copy
the committed state. Leaving without commit (a refused command) drops the copy: nothing the
command changed, and none of its events, remains.

The repositories hand out deep copies and store deep copies on ``add``/``save``, as rows do: an
aggregate changed but never saved is not persisted, so a handler that forgets a ``save`` fails
here as it would on SQL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from modelplane.auth.model import Token
from modelplane.bootstrap.ports import RegistryModelPort
from modelplane.core.clock import utcnow
from modelplane.core.messages import Event
from modelplane.core.uow import HasEvents
from modelplane.errors import Conflict
from modelplane.registry.model import ModelVersion, RegisteredModel
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters
from modelplane.traffic.rollout import Rollout

__all__ = ["FakeDatabase", "FakeUnitOfWork", "StoredEvent", "StoredFeedback"]

T = TypeVar("T", bound=HasEvents)


def _row(aggregate: T) -> T:
    """A stored copy: the state without the pending events."""
    stored = copy.deepcopy(aggregate)
    stored.events = []
    return stored


@dataclass(frozen=True)
class StoredEvent:
    """One row of the outbox, as the SQL unit of work writes it."""

    type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    event: Event
    occurred_at: datetime


@dataclass
class StoredFeedback:
    """One row of ``feedback``, as the SQL ledger writes it."""

    label: float | None
    reward: float | None
    subject: str | None
    variant: str | None
    received_at: datetime
    revision: int = 1
    previous_label: float | None = None
    previous_reward: float | None = None
    overwritten_at: datetime | None = None


@dataclass
class Tables:
    models: dict[str, RegisteredModel] = field(default_factory=dict)
    versions: dict[tuple[str, int], ModelVersion] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    experiments: dict[str, Experiment] = field(default_factory=dict)
    rollouts: dict[int, Rollout] = field(default_factory=dict)
    deployments: dict[int, Deployment] = field(default_factory=dict)
    #: ``traffic_stats`` and ``traffic_latency`` together: totals per (subject, variant)
    traffic: dict[tuple[str, str], Counters] = field(default_factory=dict)
    feedback: dict[str, StoredFeedback] = field(default_factory=dict)
    events: list[StoredEvent] = field(default_factory=list)


@dataclass
class FakeDatabase:
    """The committed state shared by every unit of work of one test."""

    tables: Tables = field(default_factory=Tables)
    commits: int = 0

    @property
    def events(self) -> list[StoredEvent]:
        return self.tables.events


class _Tx:
    """What the repositories see of their transaction: its tables and its tracked aggregates."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.seen: list[HasEvents] = []

    def track(self, aggregate: HasEvents) -> None:
        if not any(a is aggregate for a in self.seen):
            self.seen.append(aggregate)


class FakeModelRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._t = tx.tables

    def add(self, model: RegisteredModel) -> bool:
        if model.name in self._t.models:
            return False
        model.id = len(self._t.models) + 1
        self._t.models[model.name] = _row(model)
        self._tx.track(model)
        return True

    def get(self, name: str) -> RegisteredModel | None:
        stored = self._t.models.get(name)
        if stored is None:
            return None
        model = copy.deepcopy(stored)
        self._tx.track(model)
        return model

    def save(self, model: RegisteredModel) -> None:
        self._t.models[model.name] = _row(model)

    def add_version(self, model: RegisteredModel, version: ModelVersion) -> None:
        self._t.versions[(model.name, version.version)] = copy.deepcopy(version)

    def get_version(self, model: RegisteredModel, number: int) -> ModelVersion | None:
        stored = self._t.versions.get((model.name, number))
        if stored is None:
            return None
        # A version row does not carry aliases (SQL's row_to_version leaves them empty).
        loaded = copy.deepcopy(stored)
        loaded.aliases = ()
        return loaded

    def save_version(self, model: RegisteredModel, version: ModelVersion) -> None:
        key = (model.name, version.version)
        stored = self._t.versions[key]
        # Only status and tags change after creation; the SQL update writes those two.
        stored.status = version.status
        stored.tags = dict(version.tags)


class FakeTokenRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._t = tx.tables

    def add(self, token: Token) -> None:
        if token.id in self._t.tokens:
            raise AssertionError(f"duplicate token id {token.id!r} (a primary key)")
        self._t.tokens[token.id] = _row(token)
        self._tx.track(token)

    def get(self, token_id: str) -> Token | None:
        stored = self._t.tokens.get(token_id)
        if stored is None:
            return None
        token = copy.deepcopy(stored)
        self._tx.track(token)
        return token

    def save(self, token: Token) -> None:
        # The SQL update writes revoked_at only.
        self._t.tokens[token.id].revoked_at = token.revoked_at


class FakeExperimentRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._t = tx.tables

    def add(self, experiment: Experiment) -> bool:
        if experiment.name in self._t.experiments:
            return False
        self._t.experiments[experiment.name] = _row(experiment)
        self._tx.track(experiment)
        return True

    def get(self, name: str) -> Experiment | None:
        stored = self._t.experiments.get(name)
        if stored is None:
            return None
        experiment = copy.deepcopy(stored)
        self._tx.track(experiment)
        return experiment

    def active_for(self, model: str, kind: str) -> list[Experiment]:
        return [
            copy.deepcopy(e)
            for e in self._t.experiments.values()
            if e.model == model and e.kind == kind and e.status in ("running", "paused")
        ]

    def save(self, experiment: Experiment) -> None:
        self._t.experiments[experiment.name] = _row(experiment)
        self._tx.track(experiment)


class FakeRolloutRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._t = tx.tables

    def add(self, rollout: Rollout) -> None:
        rollout.id = max(self._t.rollouts, default=0) + 1
        self._t.rollouts[rollout.id] = _row(rollout)
        self._tx.track(rollout)

    def running(self, model: str) -> Rollout | None:
        running = [
            r for r in self._t.rollouts.values() if r.model == model and r.status == "running"
        ]
        if not running:
            return None
        rollout = copy.deepcopy(max(running, key=lambda r: r.id or 0))
        self._tx.track(rollout)
        return rollout

    def save(self, rollout: Rollout) -> None:
        assert rollout.id is not None
        self._t.rollouts[rollout.id] = _row(rollout)
        self._tx.track(rollout)


class FakeDeploymentRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._t = tx.tables

    def add(self, deployment: Deployment) -> None:
        deployment.id = max(self._t.deployments, default=0) + 1
        self._t.deployments[deployment.id] = _row(deployment)
        self._tx.track(deployment)

    def last(self, model: str) -> Deployment | None:
        mine = [d for d in self._t.deployments.values() if d.model == model]
        if not mine:
            return None
        deployment = copy.deepcopy(max(mine, key=lambda d: d.id or 0))
        self._tx.track(deployment)
        return deployment

    def save(self, deployment: Deployment) -> None:
        assert deployment.id is not None
        self._t.deployments[deployment.id] = _row(deployment)
        self._tx.track(deployment)


class FakeTrafficLedger:
    """Counter deltas add up per (subject, variant); one outcome per request (see the SQL)."""

    def __init__(self, tx: _Tx) -> None:
        self._t = tx.tables

    def add_counters(self, deltas: Mapping[tuple[str, str], Counters]) -> None:
        for key, counters in deltas.items():
            self._t.traffic.setdefault(key, Counters()).add(counters)

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
        now = utcnow()
        stored = self._t.feedback.get(request_id)
        if stored is None:
            self._t.feedback[request_id] = StoredFeedback(label, reward, subject, variant, now)
            return 1
        if not overwrite:
            raise Conflict(
                f"request {request_id!r} already has an outcome (revision {stored.revision}); "
                'send "overwrite": true to replace it',
                field="request_id",
            )
        self._t.feedback[request_id] = StoredFeedback(
            label,
            reward,
            subject if subject is not None else stored.subject,
            variant if variant is not None else stored.variant,
            now,
            revision=stored.revision + 1,
            previous_label=stored.label,
            previous_reward=stored.reward,
            overwritten_at=now,
        )
        return stored.revision + 1


class FakeUnitOfWork:
    """One transaction over a :class:`FakeDatabase`. Use as ``with uow: …; uow.commit()``."""

    models: FakeModelRepository
    tokens: FakeTokenRepository
    experiments: FakeExperimentRepository
    rollouts: FakeRolloutRepository
    deployments: FakeDeploymentRepository
    ledger: FakeTrafficLedger
    model_port: RegistryModelPort  # it runs no SQL: the real port over the fake repository

    def __init__(self, db: FakeDatabase, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self.committed = False
        self._tx: _Tx | None = None
        self._published: list[Event] = []

    def __enter__(self) -> Self:
        self._tx = _Tx(copy.deepcopy(self.db.tables))
        self.models = FakeModelRepository(self._tx)
        self.tokens = FakeTokenRepository(self._tx)
        self.experiments = FakeExperimentRepository(self._tx)
        self.rollouts = FakeRolloutRepository(self._tx)
        self.deployments = FakeDeploymentRepository(self._tx)
        self.ledger = FakeTrafficLedger(self._tx)
        self.model_port = RegistryModelPort(self.models, self.clock)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        assert self._tx is not None, "commit() outside 'with uow:'"
        tables = self._tx.tables
        pending = [e for agg in self._tx.seen for e in agg.events]
        now = self.clock()
        for agg in self._tx.seen:
            tables.events.extend(_numbered(agg, tables.events, now))
        self.db.tables = tables
        self.db.commits += 1
        for agg in self._tx.seen:
            agg.events.clear()
        self._published.extend(pending)
        self.committed = True
        self._tx = None

    def rollback(self) -> None:
        self._tx = None

    def collect_new_events(self) -> Iterator[Event]:
        while self._published:
            yield self._published.pop(0)


def _numbered(agg: HasEvents, log: list[StoredEvent], now: datetime) -> list[StoredEvent]:
    """Number ``agg``'s events as the SQL outbox does: from the aggregate's own ``event_seq``
    when it keeps one, else after the highest stored number of that aggregate."""
    if not agg.events:
        return []
    first = agg.events[0]
    counted: Any = getattr(agg, "event_seq", None)
    if isinstance(counted, int):
        seq = counted - len(agg.events) + 1
    else:
        key = (first.aggregate_type, first.aggregate_id)
        seq = 1 + max(
            (s.sequence for s in log if (s.aggregate_type, s.aggregate_id) == key), default=0
        )
    rows = []
    for event in agg.events:
        rows.append(
            StoredEvent(
                type=event.type_name(),
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                sequence=seq,
                event=event,
                occurred_at=now,
            )
        )
        seq += 1
    return rows
