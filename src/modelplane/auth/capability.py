"""API tokens as the composition root plugs them in: handlers, repository, table, views, REST
router and CLI group, in one declaration."""

from __future__ import annotations

from modelplane.auth.adapters import SqlTokenRepository
from modelplane.auth.handlers import COMMAND_HANDLERS
from modelplane.auth.tables import TABLES
from modelplane.auth.views import TokenViews
from modelplane.core.capability import Capability

__all__ = ["CAPABILITY"]

CAPABILITY = Capability(
    name="auth",
    command_handlers=COMMAND_HANDLERS,
    repositories={"tokens": SqlTokenRepository},
    tables=TABLES,
    views={"tokens": TokenViews},
    router="modelplane.api.security:router",
    cli={"tokens": "modelplane.cli.tokens:app"},
)
