"""What a capability declares so the composition root can plug it in: one value, no wiring.

Each capability (registry, traffic, auth, events, …) builds one :class:`Capability` in its
``capability.py``; :mod:`modelplane.bootstrap` lists them and composes their handlers,
repositories, views and migrations, and the API and the CLI mount the router and command groups
they name. Nothing below the composition root imports a capability, so adding one touches no
shared module but that list.

The router and the CLI groups are dotted import strings (``"modelplane.api.routes_registry:
router"``): the entry points sit above the capabilities in the layers contract, so a
capability may name them but not import them, and naming them costs no import (the CLI stays
quick to start).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.core.bus import CommandHandler, EventHandler
from modelplane.core.messages import Command, Event

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table

__all__ = [
    "Capability",
    "Migrations",
    "RepositoryFactory",
    "ViewFactory",
    "resolve",
]

RepositoryFactory = Callable[[Any], object]
"""Builds one repository over the SQL unit of work being entered (its ``conn``, ``track``,
``clock`` and the repositories built before it); core does not know that class, hence ``Any``."""

ViewFactory = Callable[["Engine"], object]
"""Builds a read side (``RegistryViews``…) over the metadata engine."""


@dataclass(frozen=True)
class Migrations:
    """A capability's own Alembic revisions: a folder and the revision that is its head.

    The revisions form a branch of their own: the first has ``down_revision = None`` and
    ``branch_labels = ("<capability>",)``. Its tables may refer to the tables of the shared chain
    in ``db/migrations`` (upgrades run that chain first). ``head`` is declared, not read from
    the folder, so checking a database's schema at start-up needs no Alembic (a test pins it
    to the folder's real head).
    """

    folder: Path
    head: str


@dataclass(frozen=True)
class Capability:
    """One capability, as the composition root sees it.

    * ``command_handlers``: each command class to its one handler.
    * ``event_handlers``: each event class to the handlers that react to it.
    * ``repositories``: attribute name on the unit of work → how to build it (``"models"``).
    * ``tables``: its SQLAlchemy tables, on the shared ``modelplane.db.tables.metadata``.
    * ``migrations``: its own Alembic revisions, if any (tables made before issue 12 stay in
      the shared chain, which databases in the field are stamped with).
    * ``views``: attribute name on the platform → how to build that read side (``"registry"``).
    * ``router``: the FastAPI router its routes live in, as ``"module:attribute"``.
    * ``cli``: command-group name → its Typer app, as ``"module:attribute"``.
    """

    name: str
    command_handlers: Mapping[type[Command], CommandHandler] = field(default_factory=dict)
    event_handlers: Mapping[type[Event], Sequence[EventHandler]] = field(default_factory=dict)
    repositories: Mapping[str, RepositoryFactory] = field(default_factory=dict)
    tables: Sequence[Table] = ()
    migrations: Migrations | None = None
    views: Mapping[str, ViewFactory] = field(default_factory=dict)
    router: str | None = None
    cli: Mapping[str, str] = field(default_factory=dict)


def resolve(dotted: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = dotted.partition(":")
    if not attribute:
        raise ValueError(f"{dotted!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module_name), attribute)
