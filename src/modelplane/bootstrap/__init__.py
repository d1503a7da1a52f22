"""The one composition root: read :class:`Settings`, build the concrete back ends, wire handlers.

Nothing else reads settings or picks an implementation. Call :func:`bootstrap` at start-up (the
CLI per command, the server in its lifespan, the Python API on first use); nothing is built at
import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from modelplane.artifacts import ArtifactStore, open_store
from modelplane.auth.handlers import COMMAND_HANDLERS as TOKEN_HANDLERS
from modelplane.auth.views import TokenViews
from modelplane.config import Settings
from modelplane.core.bus import MessageBus
from modelplane.db.engine import make_engine
from modelplane.db.migrate import ensure_schema
from modelplane.db.uow import SqlUnitOfWork
from modelplane.errors import DependencyMissing, InvalidInput
from modelplane.events.views import EventViews
from modelplane.registry.handlers import COMMAND_HANDLERS as REGISTRY_HANDLERS
from modelplane.registry.views import RegistryViews
from modelplane.traffic.handlers import COMMAND_HANDLERS as TRAFFIC_HANDLERS
from modelplane.traffic.views import TrafficViews

__all__ = ["COMMAND_HANDLERS", "Platform", "bootstrap", "compose_handlers"]

Handlers = dict[type[Any], Callable[[Any, Any], Any]]


def compose_handlers(*tables: Mapping[type[Any], Callable[[Any, Any], Any]]) -> Handlers:
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


COMMAND_HANDLERS: Handlers = compose_handlers(REGISTRY_HANDLERS, TOKEN_HANDLERS, TRAFFIC_HANDLERS)


@dataclass
class Platform:
    """Everything a running modelplane needs, built once from settings."""

    settings: Settings
    engine: Engine
    bus: MessageBus
    artifacts: ArtifactStore
    registry: RegistryViews
    events: EventViews
    tokens: TokenViews
    traffic: TrafficViews

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] | None = None,
    raise_on_event_error: bool = False,
) -> Platform:
    """Build a :class:`Platform` from ``settings`` (default: environment and modelplane.toml)."""
    settings = settings or Settings()
    engine = _engine(settings.resolved_db_url)
    if migrate:
        ensure_schema(engine)
    bus = MessageBus(
        uow_factory=lambda: SqlUnitOfWork(engine, clock),
        command_handlers=COMMAND_HANDLERS,
        event_handlers={},
        raise_on_event_error=raise_on_event_error,
    )
    return Platform(
        settings=settings,
        engine=engine,
        bus=bus,
        artifacts=_store(settings),
        registry=RegistryViews(engine),
        events=EventViews(engine),
        tokens=TokenViews(engine),
        traffic=TrafficViews(engine),
    )


def _engine(url: str) -> Engine:
    """The metadata engine; a URL that cannot work is bad configuration, said in one line."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return make_engine(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InvalidInput(
            f"MODELPLANE_DB_URL {url!r} is not a usable database URL "
            "(sqlite:///… or postgresql+psycopg://…): {exc}".replace("{exc}", str(exc)),
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
