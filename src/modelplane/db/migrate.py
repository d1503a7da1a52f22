"""Schema migrations: ``modelplane db upgrade``, and automatic upgrade of an empty SQLite file.

Checking the schema is one query on ``alembic_version``; Alembic itself is imported only when a
migration must actually run, so a fresh process that loads a model stays quick.

Two kinds of revisions make up a :class:`Schema`:

* the shared chain in ``migrations/versions`` (0001…, head :data:`HEAD`). It is history and
  stays here: 0001 creates tables of several capabilities at once, and databases in the field
  are stamped with it;
* a capability's own revisions, for capabilities added from now on, in a folder of its own
  (``Capability.migrations``): a branch with its own base (``down_revision = None``,
  ``branch_labels = ("<capability>",)``). Upgrades run the shared chain first, then every
  branch, so a branch's tables may refer to the shared ones.

A current database holds one ``alembic_version`` row per head: :data:`HEAD` and each branch's
declared head. Those are declared strings, so the check needs no Alembic.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from modelplane.errors import Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD",
    "SHARED",
    "Schema",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "upgrade",
]

#: The newest migration of the shared chain (tests pin it to the scripts' head).
HEAD = "0004"
_SCRIPTS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Schema:
    """The revisions a database is migrated with, and the heads it holds when current."""

    locations: tuple[Path, ...] = ()  # the capabilities' own revision folders
    heads: frozenset[str] = frozenset({HEAD})

    @property
    def head(self) -> str:
        """The heads as one string, as :func:`current_revision` reports a current database."""
        return " ".join(sorted(self.heads))

    def with_branches(self, branches: Iterable[tuple[Path, str]]) -> Schema:
        """This schema plus ``(folder, head)`` branches of revisions."""
        locations, heads = list(self.locations), set(self.heads)
        for folder, head in branches:
            if head in heads:
                raise RuntimeError(f"migration head {head!r} is declared twice")
            locations.append(folder)
            heads.add(head)
        return Schema(locations=tuple(locations), heads=frozenset(heads))


#: The shared chain alone.
SHARED = Schema()


def current_revision(engine: Engine) -> str | None:
    """The database's heads, sorted and space-separated (``"0004"``); None if never migrated."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return None
    return " ".join(sorted(rows)) or None


def alembic_config(schema: Schema = SHARED, url: str | None = None) -> Config:
    """An Alembic config over ``schema``'s revisions (``url``: for Alembic's own commands, e.g.
    ``revision --autogenerate`` run in a process that imported the capabilities' tables)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    if schema.locations:
        folders = [_SCRIPTS / "versions", *schema.locations]
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "version_locations", os.pathsep.join(str(f).replace("%", "%%") for f in folders)
        )
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "heads", *, schema: Schema = SHARED) -> str:
    """Run migrations up to ``revision``; return the revision now in force."""
    from alembic import command

    from modelplane.db.engine import WRITE

    config = alembic_config(schema)
    # Serialise concurrent upgraders (two processes first using one empty database): SQLite
    # writers hold the database lock from BEGIN IMMEDIATE, PostgreSQL takes an advisory lock.
    # Whoever waits then finds the schema at head and Alembic does nothing.
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7246318)")
        config.attributes["connection"] = conn
        if schema.locations and revision == "heads":
            command.upgrade(config, HEAD)  # the shared chain first: branches build on it
        command.upgrade(config, revision)
    if engine.dialect.name == "postgresql":
        # Autovacuum may be off: give the planner statistics from the start.
        from modelplane.db.tables import metadata

        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE " + ", ".join(metadata.tables))
    return current_revision(engine) or ""


def ensure_schema(engine: Engine, schema: Schema = SHARED) -> None:
    """Make sure the schema is at ``schema``'s heads.

    An empty database (any back end) and any SQLite file are upgraded on first use; an older
    PostgreSQL schema, shared by a team, is only upgraded by ``modelplane db upgrade``.
    """
    revision = current_revision(engine)
    if revision == schema.head:
        return
    if revision is None or engine.dialect.name == "sqlite":
        upgrade(engine, schema=schema)
        return
    raise Unavailable(
        f"the metadata database is at schema {revision or 'none'}, this modelplane needs "
        f"{schema.head}: run 'modelplane db upgrade'"
    )
