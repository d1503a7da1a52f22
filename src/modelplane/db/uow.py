"""The SQL unit of work: one transaction, the repositories that use it, and the outbox.

On commit it writes every event the touched aggregates appended, numbered per aggregate, into
the ``events`` table in the same transaction as the state change. On PostgreSQL it first takes
an exclusive lock on ``events`` so ids are assigned in commit order and a relay tailing the table
by id never skips a row committed late (the eventsourcing library explains the race).

The repositories are data: the composition root hands in ``{attribute: factory}`` from the
capabilities' declarations, and each ``with uow:`` builds them onto the unit of work in that
order (a later factory may use an earlier repository). So this layer imports no capability; the
handlers see ``uow.models`` and the like through their capability's unit-of-work protocol.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import Connection, RootTransaction

from modelplane.core.capability import RepositoryFactory
from modelplane.core.clock import utcnow
from modelplane.core.messages import Event
from modelplane.core.uow import HasEvents
from modelplane.db import tables as t
from modelplane.db.engine import WRITE

__all__ = ["SqlUnitOfWork"]


class SqlUnitOfWork:
    """A write transaction. Use as ``with uow: …; uow.commit()``."""

    conn: Connection

    def __init__(
        self,
        engine: Engine,
        repositories: Mapping[str, RepositoryFactory],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._repositories = repositories
        self.clock = clock or utcnow
        self._tx: RootTransaction | None = None
        self._seen: list[HasEvents] = []
        self._committed: list[Event] = []
        self.analyze_after_commit = False
        self.dialect = engine.dialect.name

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.conn = self._engine.connect().execution_options(**{WRITE: True})
        self._tx = self.conn.begin()
        self._seen = []
        for name in self._repositories:  # built again on first use, over this transaction
            self.__dict__.pop(name, None)
        return self

    def __getattr__(self, name: str) -> object:
        """A declared repository, built on its first use in this transaction: a command uses
        one or two of them, not every capability's (``__getattr__`` runs only for names not
        already set, so a built repository costs a plain attribute read afterwards)."""
        factory = self.__dict__.get("_repositories", {}).get(name)
        if factory is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        repository = factory(self)
        setattr(self, name, repository)
        return repository

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            self._tx = None
            self.conn.close()

    def track(self, aggregate: HasEvents) -> None:
        """Remember an aggregate so its events are written on commit."""
        if not any(a is aggregate for a in self._seen):
            self._seen.append(aggregate)

    def commit(self) -> None:
        assert self._tx is not None, "commit() outside 'with uow:'"
        pending = [e for agg in self._seen for e in agg.events]
        if pending:
            self._write_events()
        self._tx.commit()
        for agg in self._seen:
            agg.events.clear()
        self._committed.extend(pending)
        if self.analyze_after_commit:
            self.analyze_after_commit = False
            self._analyze()

    def _analyze(self) -> None:
        """Refresh PostgreSQL's planner statistics of modelplane's tables (see the repository)."""
        with self._engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE " + ", ".join(t.metadata.tables)
            )

    def rollback(self) -> None:
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()

    def collect_new_events(self) -> Iterator[Event]:
        while self._committed:
            yield self._committed.pop(0)

    # -- outbox ----------------------------------------------------------------------------
    def _write_events(self) -> None:
        if self.dialect == "postgresql":
            self.conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
        now = self.clock()
        rows = []
        for agg in self._seen:
            if not agg.events:
                continue
            first = agg.events[0]
            key = (first.aggregate_type, first.aggregate_id)
            counted = getattr(agg, "event_seq", None)
            if isinstance(counted, int):
                # The aggregate numbers its own events and stores the count with its row.
                seq = counted - len(agg.events) + 1
            else:
                last = self.conn.execute(
                    select(func.max(t.events.c.sequence)).where(
                        t.events.c.aggregate_type == key[0], t.events.c.aggregate_id == key[1]
                    )
                ).scalar()
                seq = (last or 0) + 1
            for event in agg.events:
                rows.append(
                    {
                        "event_id": str(uuid.uuid4()),
                        "type": event.type_name(),
                        "schema_version": event.schema_version,
                        "aggregate_type": event.aggregate_type,
                        "aggregate_id": event.aggregate_id,
                        "sequence": seq,
                        "payload": event.payload(),
                        "occurred_at": now,
                    }
                )
                seq += 1
        self.conn.execute(_INSERT_EVENTS, rows)


_INSERT_EVENTS = insert(t.events)
