"""The outbox relay and the idempotent consumer runner: committed event rows → bus → handlers.

**Relay.** Every command writes its events into the ``events`` table in its own transaction
(the outbox, :mod:`modelplane.db.uow`); on PostgreSQL that transaction locks the table first,
so ids are assigned in commit order and a relay that tails the table by id never skips a row
that commits late. :meth:`Relay.run_once` publishes the rows after its position, in id order,
then moves the position — fenced by its lease: several processes may run a relay of one name
(several servers, several workers), the one holding the lease publishes, and a relay whose
lease ran out (paused, partitioned) can neither move the position nor publish a second time in
the steady state. A crash between publishing and moving the position publishes those rows
again on restart: delivery is at least once, and consumers drop the duplicates. When the bus is
down, commands still succeed (their events wait in the table) and the relay catches up when it
is back: nothing is lost.

**Consumers.** A :class:`Consumer` is data: a name (its consumer group), the event types it
wants, and a plain handler ``(message, connection) -> None``. :func:`consume_once` fetches
deliveries for the group and, for each, in ONE database transaction, records ``(consumer,
event id)`` in ``processed_events`` and runs the handler on that transaction's connection: the
effect and the record commit together. A redelivered event finds its record and is acknowledged
without a second effect; a handler that raises rolls both back and the bus retries it (backoff,
then the dead letters).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from modelplane.core.clock import utcnow
from modelplane.db import tables as t
from modelplane.db.engine import WRITE
from modelplane.events.bus import BusMessage, EventBus
from modelplane.events.tables import event_relays, processed_events

__all__ = ["Consumer", "Relay", "consume_once", "events_after", "handle", "message_of"]

log = logging.getLogger(__name__)


def message_of(row: Any) -> BusMessage:
    """An ``events`` row as a bus message: keyed by its aggregate, so one aggregate's events are
    handled in order."""
    return BusMessage(
        id=row.event_id,
        type=row.type,
        key=f"{row.aggregate_type}:{row.aggregate_id}",
        payload=dict(row.payload),
        headers={
            "schema_version": str(row.schema_version),
            "sequence": str(row.sequence),
            "occurred_at": row.occurred_at.isoformat(),
            "position": str(row.id),
        },
    )


def events_after(engine: Engine, position: int, limit: int) -> list[Any]:
    """Up to ``limit`` ``events`` rows with an id above ``position``, in id (commit) order."""
    e = t.events
    with engine.connect() as conn:
        return list(conn.execute(select(e).where(e.c.id > position).order_by(e.c.id).limit(limit)))


class Relay:
    """Publishes committed ``events`` rows to ``bus`` in id order (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        *,
        name: str = "main",
        holder: str | None = None,
        batch: int = 500,
        lease_s: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch < 1 or lease_s <= 0:
            raise ValueError("batch must be at least 1 and lease_s positive")
        self.engine = engine
        self.bus = bus
        self.name = name
        self.holder = holder or f"relay-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.lease_s = lease_s
        self._clock = clock

    def run_once(self) -> int:
        """Publish up to ``batch`` rows after the position; how many were published (0: none
        waiting, or another relay holds the lease). An idle relay only reads: the lease is taken
        (a write) when there is something to publish, so polling does not queue behind commands
        for the database's write lock."""
        if not self.lag():
            return 0
        position = self._lease()
        if position is None:
            return 0
        rows = events_after(self.engine, position, self.batch)
        if not rows:
            return 0
        self.bus.publish([message_of(r) for r in rows])
        if not self._advance(rows[-1].id):
            log.warning("relay %s lost its lease while publishing: the next holder republishes",
                        self.name)  # fmt: skip
        return len(rows)

    def drain(self) -> int:
        """Publish until nothing waits (or the lease is another relay's); how many in all."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def position(self) -> int:
        with self.engine.connect() as conn:
            return self._position(conn)

    def lag(self) -> int:
        """Committed events not yet published by this relay name."""
        with self.engine.connect() as conn:
            last = conn.execute(select(t.events.c.id).order_by(t.events.c.id.desc()).limit(1))
            newest = last.scalar() or 0
            return max(0, int(newest) - self._position(conn))

    def _position(self, conn: Connection) -> int:
        r = event_relays
        return int(conn.execute(select(r.c.position).where(r.c.name == self.name)).scalar() or 0)

    # -- the lease --------------------------------------------------------------------------------
    def _lease(self) -> int | None:
        """Take or renew the lease; the position if this relay holds it now, else None."""
        now = self._clock()
        until = now + timedelta(seconds=self.lease_s)
        r = event_relays
        try:
            with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
                taken = conn.execute(
                    update(r)
                    .where(r.c.name == self.name)
                    .where(
                        or_(r.c.holder == self.holder, r.c.holder.is_(None), r.c.lease_until < now)
                    )
                    .values(holder=self.holder, lease_until=until, updated_at=now)
                ).rowcount
                if taken:
                    found = conn.execute(select(r.c.position).where(r.c.name == self.name))
                    return int(found.scalar_one())
                if conn.execute(select(r.c.name).where(r.c.name == self.name)).first():
                    return None  # another relay holds it
                conn.execute(
                    insert(r).values(
                        name=self.name,
                        position=0,
                        holder=self.holder,
                        lease_until=until,
                        updated_at=now,
                    )
                )
                return 0
        except IntegrityError:  # another relay created the row this instant: it holds it
            return None

    def _advance(self, position: int) -> bool:
        """Move the position, only while this relay holds the lease (fencing)."""
        now = self._clock()
        r = event_relays
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            return bool(
                conn.execute(
                    update(r)
                    .where(r.c.name == self.name, r.c.holder == self.holder)
                    .where(r.c.lease_until >= now)
                    .values(position=position, updated_at=now)
                ).rowcount
            )

    def release(self) -> None:
        """Give the lease up (a clean shutdown): another relay takes over at once."""
        r = event_relays
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            conn.execute(
                update(r)
                .where(r.c.name == self.name, r.c.holder == self.holder)
                .values(holder=None, lease_until=None)
            )


# -- consumers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """A handler registered as data: ``name`` is its consumer group and its key in
    ``processed_events``; ``types`` the event types it handles (empty: all); ``handler`` runs in
    the transaction that records the event as processed."""

    name: str
    handler: Callable[[BusMessage, Connection], None]
    types: frozenset[str] = field(default_factory=frozenset)

    def wants(self, message: BusMessage) -> bool:
        return not self.types or message.type in self.types


def consume_once(
    engine: Engine,
    bus: EventBus,
    consumer: Consumer,
    *,
    worker: str = "worker",
    max_messages: int = 100,
    wait_s: float = 0.0,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Handle one fetch of deliveries for ``consumer``; how many were handled or skipped."""
    deliveries = bus.fetch(consumer.name, worker, max_messages, wait_s)
    for delivery in deliveries:
        message = delivery.message
        if not consumer.wants(message):
            bus.ack(consumer.name, delivery)
            continue
        try:
            handle(engine, consumer, message, clock)
        except Exception as exc:
            log.warning("consumer %s failed on %s %s (attempt %d): %s", consumer.name,
                        message.type, message.id, delivery.attempt, exc)  # fmt: skip
            bus.fail(consumer.name, delivery, f"{type(exc).__name__}: {exc}")
        else:
            bus.ack(consumer.name, delivery)
    return len(deliveries)


def handle(
    engine: Engine, consumer: Consumer, message: BusMessage, clock: Callable[[], datetime]
) -> None:
    """Run ``consumer`` on ``message`` once: its effect and the ``processed_events`` row in one
    transaction; nothing when the row is already there."""
    p = processed_events
    try:
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            seen = conn.execute(
                select(p.c.event_id).where(
                    p.c.consumer == consumer.name, p.c.event_id == message.id
                )
            ).first()
            if seen is not None:
                return  # handled before (a redelivery, or the relay published it twice)
            try:
                conn.execute(
                    insert(p).values(
                        consumer=consumer.name, event_id=message.id, processed_at=clock()
                    )
                )
            except IntegrityError as exc:
                raise _AlreadyHandled from exc
            consumer.handler(message, conn)  # its own errors roll the record back too
    except _AlreadyHandled:
        # Another worker of the group recorded it first (a redelivery racing the original):
        # its transaction holds the effect; this one rolled back.
        return


class _AlreadyHandled(Exception):
    pass
