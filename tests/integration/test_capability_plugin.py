"""A capability declared here, in the test, plugs in through the same composition as the real
ones, without a change to ``modelplane.db``: its command handler and event handlers run on the
bus, its repository is built onto the SQL unit of work, its event goes through the outbox, its
view sits on the platform and its table comes from its own migrations folder, applied after the
shared chain. That is the "one line in ``bootstrap.CAPABILITIES``" claim, tested."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest
from sqlalchemy import Column, Engine, String, Table, insert, select

from modelplane.bootstrap import CAPABILITIES, bootstrap, compose
from modelplane.config import Settings
from modelplane.core.capability import Capability, Migrations
from modelplane.core.messages import Command, Event
from modelplane.core.uow import UnitOfWork
from modelplane.db import migrate
from modelplane.db.tables import metadata
from modelplane.errors import Unavailable
from modelplane.registry import commands as rc

REVISION = '''\
    """The toys table: the toy capability's first revision, a branch of its own."""
    import sqlalchemy as sa
    from alembic import op

    revision = "toy_0001"
    down_revision = None
    branch_labels = ("toy",)
    depends_on = None


    def upgrade() -> None:
        op.create_table("toys", sa.Column("name", sa.String(64), primary_key=True))


    def downgrade() -> None:
        op.drop_table("toys")
'''


@dataclass(frozen=True)
class NameToy(Command):
    name: str


@dataclass(frozen=True)
class ToyNamed(Event):
    aggregate_type: ClassVar[str] = "toy"
    name: str

    @property
    def aggregate_id(self) -> str:
        return self.name


@dataclass
class Toy:
    name: str
    events: list[Event] = field(default_factory=list)


class ToyRepository(Protocol):
    def add(self, toy: Toy) -> None: ...


class ToyUnitOfWork(UnitOfWork, Protocol):
    toys: ToyRepository


def name_toy(cmd: NameToy, uow: ToyUnitOfWork) -> Toy:
    with uow:
        toy = Toy(cmd.name)
        toy.events.append(ToyNamed(name=cmd.name))
        uow.toys.add(toy)
        uow.commit()
    return toy


@dataclass
class Toys:
    """The toy capability, as built by its ``capability.py``: its table lives on the shared
    metadata only while the test runs (other tests ANALYZE every table of it)."""

    capability: Capability
    audit: Capability
    table: Table
    heard: list[str]


def _declare(folder: Path) -> Toys:
    table = Table("toys", metadata, Column("name", String(64), primary_key=True))
    heard: list[str] = []

    class SqlToyRepository:
        def __init__(self, tx: Any) -> None:
            self._tx = tx

        def add(self, toy: Toy) -> None:
            self._tx.conn.execute(insert(table).values(name=toy.name))
            self._tx.track(toy)

    class ToyViews:
        def __init__(self, engine: Engine) -> None:
            self._engine = engine

        def names(self) -> list[str]:
            with self._engine.connect() as conn:
                return list(conn.execute(select(table.c.name).order_by(table.c.name)).scalars())

    def hear(prefix: str) -> Callable[[ToyNamed, Any], None]:
        def handler(event: ToyNamed, uow: Any) -> None:
            heard.append(f"{prefix}:{event.name}")

        return handler

    capability = Capability(
        name="toy",
        command_handlers={NameToy: name_toy},
        event_handlers={ToyNamed: [hear("toy")]},
        repositories={"toys": SqlToyRepository},
        tables=(table,),
        migrations=Migrations(folder=folder, head="toy_0001"),
        views={"toys": ToyViews},
    )
    # A second capability reacting to the same event: the handler lists are concatenated.
    audit = Capability(name="audit", event_handlers={ToyNamed: [hear("audit")]})
    return Toys(capability, audit, table, heard)


@pytest.fixture
def declare_toys(tmp_path: Path) -> Iterator[Callable[[], Toys]]:
    """Declares the toy capability when called (as importing its ``capability.py`` would)."""
    folder = tmp_path / "toy_migrations"
    folder.mkdir()
    (folder / "toy_0001_toys.py").write_text(textwrap.dedent(REVISION))
    declared: list[Toys] = []

    def declare() -> Toys:
        declared.append(_declare(folder))
        return declared[-1]

    try:
        yield declare
    finally:
        for toys in declared:
            metadata.remove(toys.table)


@pytest.fixture
def toys(declare_toys: Callable[[], Toys]) -> Toys:
    return declare_toys()


def test_a_capability_declared_elsewhere_plugs_in(
    toys: Toys, any_db_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = (*CAPABILITIES, toys.capability, toys.audit)
    settings = Settings(home=home, db_url=any_db_url)
    platform = bootstrap(settings, capabilities=wired, raise_on_event_error=True)
    try:
        assert migrate.current_revision(platform.engine) == "0004 events_0002 toy_0001"
        assert platform.bus.handle(NameToy("rex")).name == "rex"
        platform.bus.handle(rc.RegisterModel(name="fraud"))  # the others still work beside it
        assert platform.views["toys"].names() == ["rex"]
        assert toys.heard == ["toy:rex", "audit:rex"]
        logged = platform.events.list_events(aggregate_type="toy").items
        assert [(e.type, e.aggregate_id, e.sequence) for e in logged] == [("ToyNamed", "rex", 1)]
    finally:
        platform.close()

    def no_migration(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("a current database must not be migrated again")

    monkeypatch.setattr(migrate, "upgrade", no_migration)
    again = bootstrap(settings, capabilities=wired)
    again.close()


def test_a_capability_added_to_a_migrated_database_brings_its_tables(
    declare_toys: Callable[[], Toys], any_db_url: str, home: Path
) -> None:
    settings = Settings(home=home, db_url=any_db_url)
    bootstrap(settings).close()  # a database of today: the shared chain only
    toys = declare_toys()  # then a release that adds the toy capability
    wired = (*CAPABILITIES, toys.capability)
    if any_db_url.startswith("postgresql"):
        # A team's PostgreSQL schema is only upgraded on purpose (modelplane db upgrade).
        schema = compose(wired).schema
        platform = bootstrap(settings, capabilities=wired, migrate=False)
        try:
            needs = "needs 0004 events_0002 toy_0001: run 'modelplane db "
            with pytest.raises(Unavailable, match=needs):
                migrate.ensure_schema(platform.engine, schema)
            migrate.upgrade(platform.engine, schema=schema)
        finally:
            platform.close()
    platform = bootstrap(settings, capabilities=wired, raise_on_event_error=True)
    try:
        assert migrate.current_revision(platform.engine) == "0004 events_0002 toy_0001"
        platform.bus.handle(NameToy("rex"))
        assert platform.views["toys"].names() == ["rex"]
    finally:
        platform.close()


def test_the_declared_head_is_the_folders_head(toys: Toys) -> None:
    """What ``Migrations.head`` must match (checked for every real capability in the
    migration tests): the head Alembic finds in the folder."""
    from alembic.script import ScriptDirectory

    schema = compose((*CAPABILITIES, toys.capability)).schema
    scripts = ScriptDirectory.from_config(migrate.alembic_config(schema))
    assert set(scripts.get_heads()) == schema.heads == {"0004", "events_0002", "toy_0001"}
