"""docs/events.md names every event the capabilities declare, with its fields."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from modelplane.auth import model as auth_model
from modelplane.core.messages import Event
from modelplane.registry import events as registry_events
from modelplane.traffic import events as traffic_events

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def declared() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    for module in (registry_events, traffic_events, auth_model):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Event)
                and value is not Event
                and not value.__name__.startswith("_")
            ):
                found[value.__name__] = value
    return found


def test_every_event_has_a_row_with_its_fields() -> None:
    rows = {
        m.group(1): [f.strip() for f in m.group(2).split(",")]
        for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", DOC.read_text(), re.MULTILINE)
    }
    events = declared()
    assert set(events) <= set(rows), f"not in docs/events.md: {set(events) - set(rows)}"
    for name, cls in events.items():
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        assert rows[name] == fields, name
