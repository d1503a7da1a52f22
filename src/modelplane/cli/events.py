"""``modelplane events list|replay``: the event log, oldest first, in the order events were
committed; rebuilding a projection from it."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

from modelplane.cli.context import CursorOpt, JsonOpt, LimitOpt, state
from modelplane.cli.output import fmt_time, print_json, print_table, say

__all__ = ["app"]

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")

app = typer.Typer(no_args_is_help=True, help="The event log (one event per state change).")


@app.command("list")
def list_events(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only the events of this model.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Only this event type, e.g. AliasSet.")
    ] = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List events, oldest first.

    Example: modelplane events list --model fraud --type AliasSet
    """
    st = state(ctx)
    filters: dict[str, str] = {}
    if model is not None:
        from modelplane.registry.model import validate_name

        filters = {"model": validate_name(model)}
    page = st.client().list_events(type=type_, limit=limit, cursor=cursor, **filters)
    if st.wants_json(json_out):
        print_json({"events": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor})
        return
    print_table(
        ("id", "time (UTC)", "type", "aggregate", "seq", "payload"),
        (
            (
                str(e.id),
                fmt_time(e.occurred_at),
                e.type,
                f"{e.aggregate_type}:{e.aggregate_id}",
                str(e.sequence),
                _summary(e.payload, e.aggregate_id),
            )
            for e in page.items
        ),
        wrap=("type", "aggregate", "payload"),
        next_cursor=page.next_cursor,
        empty="no events",
    )


def _summary(payload: dict[str, Any], aggregate_id: str) -> str:
    """``version=3 flavor=sklearn digest=0ced2b2bcd38…``: what a person scans for."""
    parts = []
    for key, value in payload.items():
        if value is None or value == {} or value == "" or value == aggregate_id:
            continue
        if isinstance(value, str) and _HEX_DIGEST.fullmatch(value):
            text = value[:12] + "…"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            text = json.dumps(value, separators=(",", ":"), default=str)
        parts.append(f"{key}={text}")
    return " ".join(parts)


@app.command("replay")
def replay(
    ctx: typer.Context,
    projection: Annotated[
        str, typer.Option(help="The projection to rebuild from the whole event history.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Rebuild a projection (a read model built from events) from zero.

    Example: modelplane events replay --projection model-timeline
    """
    from modelplane.errors import InvalidInput
    from modelplane.events.projections import PROJECTIONS
    from modelplane.events.projections import replay as run_replay

    chosen = PROJECTIONS.get(projection)
    if chosen is None:
        known = ", ".join(sorted(PROJECTIONS))
        raise InvalidInput(f"no projection {projection!r} (known: {known})", field="projection")
    st = state(ctx)
    read = run_replay(st.client().platform.engine, chosen)
    if st.wants_json(json_out):
        print_json({"projection": projection, "events": read})
        return
    say(f"rebuilt {projection} from {read} events")
