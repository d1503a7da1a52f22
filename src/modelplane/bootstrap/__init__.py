"""The one composition root: read :class:`Settings`, build the concrete back ends, wire handlers.

Nothing else reads settings or picks an implementation. Call :func:`bootstrap` at start-up (the
CLI per command, the server in its lifespan, the Python API on first use); nothing is built at
import time.

The capabilities plug in as data: each declares itself once (``<capability>/capability.py``, a
:class:`~modelplane.core.capability.Capability`) and :data:`CAPABILITIES` lists them. From that
list come the command and event handlers of the bus, the repositories of the unit of work, the
read sides on :class:`Platform`, the schema's migrations, and (named there, mounted by the
entry points) the REST routers and CLI groups. Adding a capability is one line in that list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine

from modelplane.artifacts import ArtifactStore, open_store
from modelplane.auth.capability import CAPABILITY as AUTH
from modelplane.auth.views import TokenViews
from modelplane.bootstrap import ports
from modelplane.config import Settings
from modelplane.core.bus import CommandHandler, EventHandler, MessageBus
from modelplane.core.capability import Capability, RepositoryFactory, ViewFactory
from modelplane.core.messages import Command, Event
from modelplane.db.engine import make_engine
from modelplane.db.migrate import SHARED, Schema, ensure_schema
from modelplane.db.migrate import upgrade as run_upgrade
from modelplane.db.tables import metadata
from modelplane.db.uow import SqlUnitOfWork
from modelplane.errors import DependencyMissing, InvalidInput
from modelplane.events.capability import CAPABILITY as EVENTS
from modelplane.events.views import EventViews
from modelplane.registry.capability import CAPABILITY as REGISTRY
from modelplane.registry.usecases import RegistryAccess
from modelplane.registry.views import RegistryViews
from modelplane.traffic.capability import CAPABILITY as TRAFFIC
from modelplane.traffic.views import TrafficViews

__all__ = [
    "CAPABILITIES",
    "COMMAND_HANDLERS",
    "HEAD",
    "SCHEMA",
    "Composition",
    "Platform",
    "bootstrap",
    "compose",
    "compose_handlers",
    "gate_ports",
    "upgrade",
]

CAPABILITIES: tuple[Capability, ...] = (REGISTRY, TRAFFIC, EVENTS, AUTH)
"""Every capability, in the order the API mounts their routers and the CLI lists their groups."""

Handlers = dict[type[Command], CommandHandler]


def compose_handlers(*tables: Mapping[type[Command], CommandHandler]) -> Handlers:
    """One table of every capability's command handlers; a command handled twice is a wiring
    error, raised at start-up (a dict merge would let the last one win silently)."""
    composed: Handlers = {}
    for table in tables:
        for command, handler in table.items():
            if command in composed:
                raise RuntimeError(
                    f"{command.__name__} has two handlers: {composed[command].__qualname__} "
                    f"and {handler.__qualname__}"
                )
            composed[command] = handler
    return composed


@dataclass(frozen=True)
class Composition:
    """What the declarations add up to: the bus's tables, the unit of work's repositories, the
    platform's read sides and the schema's migrations."""

    command_handlers: Handlers
    event_handlers: dict[type[Event], list[EventHandler]]
    repositories: dict[str, RepositoryFactory]
    views: dict[str, ViewFactory]
    schema: Schema


def compose(capabilities: Sequence[Capability]) -> Composition:
    """Add up ``capabilities`` (and the ports between them, last); a command, repository or view
    declared twice, or a table off the shared metadata, is a wiring error raised here."""
    wired = (*capabilities, ports.CAPABILITY)
    event_handlers: dict[type[Event], list[EventHandler]] = {}
    for capability in wired:
        for event, handlers in capability.event_handlers.items():
            event_handlers.setdefault(event, []).extend(handlers)
        for table in capability.tables:
            if table.metadata is not metadata:
                raise RuntimeError(
                    f"table {table.name!r} of {capability.name} is not on the shared "
                    "modelplane.db.tables.metadata"
                )
    return Composition(
        command_handlers=compose_handlers(*(c.command_handlers for c in wired)),
        event_handlers=event_handlers,
        repositories=_unique(wired, "repository", lambda c: c.repositories),
        views=_unique(wired, "view", lambda c: c.views),
        schema=SHARED.with_branches(
            (c.migrations.folder, c.migrations.head) for c in wired if c.migrations
        ),
    )


V = TypeVar("V")


def _unique(
    capabilities: Sequence[Capability], what: str, entries: Callable[[Capability], Mapping[str, V]]
) -> dict[str, V]:
    """Merge the capabilities' ``{name: factory}`` entries; a name declared twice raises."""
    merged: dict[str, V] = {}
    owner: dict[str, str] = {}
    for capability in capabilities:
        for name, factory in entries(capability).items():
            if name in merged:
                raise RuntimeError(
                    f"{what} {name!r} is declared by {owner[name]} and by {capability.name}"
                )
            merged[name], owner[name] = factory, capability.name
    return merged


_COMPOSED = compose(CAPABILITIES)
COMMAND_HANDLERS: Handlers = _COMPOSED.command_handlers
SCHEMA: Schema = _COMPOSED.schema
#: The heads a current database holds (``modelplane db current`` compares with it).
HEAD: str = SCHEMA.head


def upgrade(engine: Engine, revision: str = "heads") -> str:
    """Migrate ``engine``'s database with every capability's revisions (``modelplane db
    upgrade``); return the revision now in force."""
    return run_upgrade(engine, revision, schema=SCHEMA)


@dataclass
class Platform:
    """Everything a running modelplane needs, built once from settings.

    ``views`` holds every capability's read side by name; the four below are the same objects,
    typed, for the many callers that use them.
    """

    settings: Settings
    engine: Engine
    bus: MessageBus
    artifacts: ArtifactStore
    registry: RegistryViews
    events: EventViews
    tokens: TokenViews
    traffic: TrafficViews
    views: Mapping[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] | None = None,
    raise_on_event_error: bool = False,
    capabilities: Sequence[Capability] | None = None,
) -> Platform:
    """Build a :class:`Platform` from ``settings`` (default: environment and modelplane.toml).

    ``capabilities``: wire these instead of :data:`CAPABILITIES` (tests plug in one of theirs).
    """
    composed = _COMPOSED if capabilities is None else compose(capabilities)
    settings = settings or Settings()
    engine = _engine(settings.resolved_db_url)
    if migrate:
        ensure_schema(engine, composed.schema)
    repositories = composed.repositories
    bus = MessageBus(
        uow_factory=lambda: SqlUnitOfWork(engine, repositories, clock),
        command_handlers=composed.command_handlers,
        event_handlers=composed.event_handlers,
        raise_on_event_error=raise_on_event_error,
    )
    views: dict[str, Any] = {name: make(engine) for name, make in composed.views.items()}
    return Platform(
        settings=settings,
        engine=engine,
        bus=bus,
        artifacts=_store(settings),
        registry=views["registry"],
        events=views["events"],
        tokens=views["tokens"],
        traffic=views["traffic"],
        views=views,
    )


def _engine(url: str) -> Engine:
    """The metadata engine; a URL that cannot work is bad configuration, said in one line."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return make_engine(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InvalidInput(
            f"MODELPLANE_DB_URL {url!r} is not a usable database URL "
            f"(sqlite:///… or postgresql+psycopg://…): {exc}",
            field="db_url",
        ) from None
    except ImportError as exc:
        raise DependencyMissing(
            f"the driver for {url.split(':')[0]} is not installed ({exc.name}); for "
            "PostgreSQL: pip install 'modelplane[postgres]'"
        ) from None


def _store(settings: Settings) -> ArtifactStore:
    location = settings.resolved_artifacts
    try:
        return open_store(location, cache_dir=str(settings.resolved_cache_dir))
    except ImportError as exc:
        raise DependencyMissing(
            f"the artifact store {location!r} needs the fsspec package for its scheme "
            f"({exc.name or exc}); e.g. pip install s3fs or gcsfs"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"MODELPLANE_ARTIFACTS {location!r}: {exc}", field="artifacts") from None


def gate_ports(platform: Platform) -> RegistryAccess:
    """The release gates' ports (``traffic.gating.GatePorts``) over ``platform``: the
    registry's :class:`RegistryAccess`, the one way the CLI (``Client.gate_ports``) and the
    REST gate route build them."""
    return RegistryAccess(platform.bus.handle, platform.registry, platform.artifacts)
