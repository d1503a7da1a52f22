"""The event backbone's own tables: each relay's position and lease, each consumer's handled ids.

* ``event_relays`` — one row per relay name: the id of the last ``events`` row it published
  (``position``), who holds its lease (``holder``) and until when (``lease_until``). Several
  processes may run a relay; the lease makes one of them publish at a time, and its position
  update is fenced by the holder (a relay that lost its lease cannot move the position).
* ``processed_events`` — ``(consumer, event_id)`` for every event a consumer handled, written
  in the same transaction as the consumer's effect: a redelivered event finds its row and is
  acknowledged without a second effect.
* ``model_timeline`` — the model timeline projection (:mod:`modelplane.events.projections`): one
  row per event about a model, rebuildable from the event history.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, PrimaryKeyConstraint, String, Table

from modelplane.db.tables import Timestamp, metadata

__all__ = ["event_relays", "model_timeline", "processed_events"]

event_relays = Table(
    "event_relays",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, default=0),
    Column("holder", String(128), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("processed_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("consumer", "event_id"),
)

model_timeline = Table(
    "model_timeline",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False),  # the events row's id: the global order
    Column("model", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("subject", String(300), nullable=False),  # model:fraud, rollout:fraud#3, …
    Column("version", BigInteger, nullable=True),
    Column("detail", JSON, nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    Index("ix_model_timeline_model_position", "model", "position"),
)
