"""The registry as the composition root plugs it in: its handlers, repository, tables, views,
REST router and CLI groups, in one declaration."""

from __future__ import annotations

from modelplane.core.capability import Capability
from modelplane.registry.adapters.sql import SqlModelRepository
from modelplane.registry.adapters.tables import TABLES
from modelplane.registry.handlers import COMMAND_HANDLERS
from modelplane.registry.views import RegistryViews

__all__ = ["CAPABILITY"]

CAPABILITY = Capability(
    name="registry",
    command_handlers=COMMAND_HANDLERS,
    repositories={"models": SqlModelRepository},
    tables=TABLES,
    views={"registry": RegistryViews},
    router="modelplane.api.routes_registry:router",
    cli={"models": "modelplane.cli.models:app", "alias": "modelplane.cli.alias:app"},
)
