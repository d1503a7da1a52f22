"""Projections: read models that consumers build from events, rebuildable by replaying history.

A :class:`Projection` is a :class:`~modelplane.events.relay.Consumer` (its handler writes the
read model, idempotently, in the transaction that records the event as processed) plus the
tables it owns. :func:`replay` rebuilds it from zero: it empties those tables and the
projection's ``processed_events`` rows, then feeds every row of the ``events`` table, in id
order, through the same handler — so a rebuilt projection equals the live one (a test checks it
after a random sequence of commands).

**The model timeline** (:data:`MODEL_TIMELINE`): one row per event about a model — its own
events, and those of its experiments, rollouts and deployments — with the version it concerns,
the event's fields and when it happened, in the global order events were committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select

from modelplane.core.clock import aware, utcnow
from modelplane.db.engine import WRITE
from modelplane.events.bus import BusMessage
from modelplane.events.relay import Consumer, events_after, handle, message_of
from modelplane.events.tables import model_timeline, processed_events

__all__ = ["MODEL_TIMELINE", "PROJECTIONS", "Projection", "replay", "timeline"]


@dataclass(frozen=True)
class Projection:
    """A read model: its consumer (group and handler) and the tables it owns."""

    consumer: Consumer
    tables: tuple[Table, ...]

    @property
    def name(self) -> str:
        return self.consumer.name


def replay(
    engine: Engine,
    projection: Projection,
    *,
    batch: int = 1000,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Rebuild ``projection`` from the whole event history; how many events it read.

    Run it while the projection's live consumer is stopped (the worker's ``--only`` leaves it
    out), or the two interleave on the same rows.
    """
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        for table in projection.tables:
            conn.execute(delete(table))
        conn.execute(delete(processed_events).where(processed_events.c.consumer == projection.name))
    done = 0
    position = 0
    while rows := events_after(engine, position, batch):
        for row in rows:
            message = message_of(row)
            if projection.consumer.wants(message):
                handle(engine, projection.consumer, message, clock)
        done += len(rows)
        position = rows[-1].id
    return done


# -- the model timeline -------------------------------------------------------------------------


def _model_of(message: BusMessage) -> str | None:
    payload = message.payload
    model = payload.get("model")
    return model if isinstance(model, str) else None


def _version_of(payload: dict[str, Any]) -> int | None:
    for field in ("version", "candidate", "green"):
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _record_timeline(message: BusMessage, conn: Connection) -> None:
    model = _model_of(message)
    if model is None:  # an event about no model (a token): not on any timeline
        return
    payload = dict(message.payload)
    conn.execute(
        insert(model_timeline).values(
            event_id=message.id,
            position=int(message.headers["position"]),
            model=model,
            type=message.type,
            subject=message.key,
            version=_version_of(payload),
            detail={k: v for k, v in payload.items() if k != "model"},
            occurred_at=datetime.fromisoformat(message.headers["occurred_at"]),
        )
    )


MODEL_TIMELINE = Projection(
    Consumer("projection:model-timeline", _record_timeline), (model_timeline,)
)

#: Every projection, by the name ``modelplane events replay --projection`` takes.
PROJECTIONS: dict[str, Projection] = {"model-timeline": MODEL_TIMELINE}


def timeline(engine: Engine, model: str) -> list[dict[str, Any]]:
    """A model's timeline, oldest first."""
    m = model_timeline
    with engine.connect() as conn:
        rows = conn.execute(select(m).where(m.c.model == model).order_by(m.c.position))
        return [
            {
                "event_id": r.event_id,
                "position": r.position,
                "type": r.type,
                "subject": r.subject,
                "version": r.version,
                "detail": r.detail,
                "occurred_at": aware(r.occurred_at).isoformat(),
            }
            for r in rows
        ]
