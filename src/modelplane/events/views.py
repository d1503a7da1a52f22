"""Reading the event log, in the global order events were committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, column, or_, select, table

from modelplane.core.clock import aware
from modelplane.core.pagination import (
    Page,
    check_limit,
    cursor_int,
    decode_cursor,
    encode_cursor,
)
from modelplane.db import tables as t

__all__ = ["EventRecord", "EventViews"]

# The experiments that route a model, for ``list_events(model=…)``: named here by the two
# columns read rather than imported from delivery, which the event log does not depend on.
_experiments = table("experiments", column("name"), column("model"))


@dataclass(frozen=True)
class EventRecord:
    id: int
    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int
    payload: dict[str, Any]
    occurred_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "sequence": self.sequence,
            "payload": self.payload,
            "occurred_at": self.occurred_at.isoformat(),
        }


class EventViews:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_events(
        self,
        *,
        aggregate_type: str | None = None,
        aggregate_id: str | None = None,
        type: str | None = None,
        model: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[EventRecord]:
        """Events oldest first; filter by aggregate (``model``, ``fraud``) or event type.

        ``model`` keeps everything about one model: its own events, and those of its rollouts
        and deployments (``fraud#7``) and of the experiments that route it.
        """
        check_limit(limit)
        e = t.events
        stmt = select(e)
        if model is not None:
            experiments = select(_experiments.c.name).where(_experiments.c.model == model)
            stmt = stmt.where(
                or_(
                    and_(e.c.aggregate_type == "model", e.c.aggregate_id == model),
                    and_(
                        e.c.aggregate_type.in_(("rollout", "deployment")),
                        e.c.aggregate_id.startswith(f"{model}#", autoescape=True),
                    ),
                    and_(e.c.aggregate_type == "experiment", e.c.aggregate_id.in_(experiments)),
                )
            )
        if aggregate_type is not None:
            stmt = stmt.where(e.c.aggregate_type == aggregate_type)
        if aggregate_id is not None:
            stmt = stmt.where(e.c.aggregate_id == aggregate_id)
        if type is not None:
            stmt = stmt.where(e.c.type == type)
        after = decode_cursor(cursor, "id")
        if after is not None:
            stmt = stmt.where(e.c.id > cursor_int(after, "id"))
        stmt = stmt.order_by(e.c.id).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(stmt)]
        items = [
            EventRecord(
                id=r["id"],
                event_id=r["event_id"],
                type=r["type"],
                schema_version=r["schema_version"],
                aggregate_type=r["aggregate_type"],
                aggregate_id=r["aggregate_id"],
                sequence=r["sequence"],
                payload=r["payload"],
                occurred_at=aware(r["occurred_at"]),
            )
            for r in rows[:limit]
        ]
        next_cursor = encode_cursor({"id": items[-1].id}) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)
