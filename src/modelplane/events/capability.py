"""The event log as the composition root plugs it in: its read side, REST router and CLI group.

It has no commands yet (events are written by the unit of work's outbox, whose ``events`` table
belongs to the database layer), so it declares no handlers, repositories or tables.
"""

from __future__ import annotations

from modelplane.core.capability import Capability
from modelplane.events.views import EventViews

__all__ = ["CAPABILITY"]

CAPABILITY = Capability(
    name="events",
    views={"events": EventViews},
    router="modelplane.api.routes_events:router",
    cli={"events": "modelplane.cli.events:app"},
)
