"""The shared schema: one SQLAlchemy ``MetaData``, its naming convention, the column types every
capability uses, and the ``events`` outbox table (the unit of work's own machinery).

Each capability defines its tables on this ``metadata`` in its own module
(``registry/adapters/tables.py``, ``traffic/adapters/tables.py``, ``auth/tables.py``) and names
them in its declaration, so the database layer knows no capability. The tables register here
when those modules are imported, which the composition root does.

The Alembic chain in ``migrations/versions`` is history and stays here: revision 0001 creates
tables of several capabilities at once, and databases in the field are stamped with it. A
capability's tables added from now on come with revisions in its own folder (see
:mod:`modelplane.db.migrate`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = ["BigId", "Timestamp", "events", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False, default=1),
    Column("aggregate_type", String(32), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    UniqueConstraint("aggregate_type", "aggregate_id", "sequence"),
)
Index("ix_events_type_id", events.c.type, events.c.id)
