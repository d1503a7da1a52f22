"""Schema migrations: ``modelplane db upgrade``, and automatic upgrade of an empty SQLite file.

Checking the schema is one query on ``alembic_version``; Alembic itself is imported only when a
migration must actually run, so a fresh process that loads a model stays quick.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from modelplane.errors import Unavailable

__all__ = ["HEAD", "current_revision", "ensure_schema", "upgrade"]

#: The newest migration shipped with this package (tests pin it to the scripts' head).
HEAD = "0004"
_SCRIPTS = Path(__file__).parent / "migrations"


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Run migrations up to ``revision``; return the revision now in force."""
    from alembic import command
    from alembic.config import Config

    from modelplane.db.engine import WRITE

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    # Serialise concurrent upgraders (two processes first using one empty database): SQLite
    # writers hold the database lock from BEGIN IMMEDIATE, PostgreSQL takes an advisory lock.
    # Whoever waits then finds the schema at head and Alembic does nothing.
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7246318)")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    if engine.dialect.name == "postgresql":
        # Autovacuum may be off: give the planner statistics from the start.
        from modelplane.db.tables import metadata

        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE " + ", ".join(metadata.tables))
    return current_revision(engine) or ""


def ensure_schema(engine: Engine) -> None:
    """Make sure the schema is at :data:`HEAD`.

    An empty database (any back end) and any SQLite file are upgraded on first use; an older
    PostgreSQL schema, shared by a team, is only upgraded by ``modelplane db upgrade``.
    """
    revision = current_revision(engine)
    if revision == HEAD:
        return
    if revision is None or engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise Unavailable(
        f"the metadata database is at schema {revision or 'none'}, this modelplane needs "
        f"{HEAD}: run 'modelplane db upgrade'"
    )
