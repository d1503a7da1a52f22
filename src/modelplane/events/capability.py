"""The event backbone as the composition root plugs it in: its read side, REST router and CLI
group, and its own tables (relay positions and leases, consumers' processed event ids) with
their Alembic branch. Events themselves are written by the unit of work's outbox, whose
``events`` table belongs to the database layer.
"""

from __future__ import annotations

from pathlib import Path

from modelplane.core.capability import Capability, Migrations
from modelplane.events.tables import event_relays, model_timeline, processed_events
from modelplane.events.views import EventViews

__all__ = ["CAPABILITY"]

CAPABILITY = Capability(
    name="events",
    tables=(event_relays, processed_events, model_timeline),
    migrations=Migrations(folder=Path(__file__).parent / "migrations", head="events_0002"),
    views={"events": EventViews},
    router="modelplane.api.routes_events:router",
    cli={"events": "modelplane.cli.events:app"},
)
