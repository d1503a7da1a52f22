"""``modelplane worker``: the outbox relay and the event consumers (projections), until SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import print_json, say

__all__ = ["worker"]

RELAY = "relay"


def worker(
    ctx: typer.Context,
    only: Annotated[
        str | None,
        typer.Option(
            help="Run only these parts, comma-separated: relay and projection names "
            "(model-timeline). Default: all."
        ),
    ] = None,
    poll_s: Annotated[
        float, typer.Option(min=0.01, help="Seconds between turns when nothing waits.")
    ] = 0.5,
    json_out: JsonOpt = False,
) -> None:
    """Publish committed events and keep the projections up to date, until SIGTERM or Ctrl-C.

    The bus is in process (memory://): one worker runs every part. Example: modelplane worker
    """
    from modelplane.errors import InvalidInput
    from modelplane.events.bus import MemoryBus
    from modelplane.events.projections import PROJECTIONS
    from modelplane.events.relay import Relay
    from modelplane.events.worker import run_worker

    known = [RELAY, *sorted(PROJECTIONS)]
    parts = known if only is None else [p.strip() for p in only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in known]
    if unknown or not parts:
        raise InvalidInput(
            f"unknown part(s) for --only: {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(known)})",
            field="only",
        )
    st = state(ctx)
    engine = st.client().platform.engine  # closed with the command
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    bus = MemoryBus()
    try:
        relay = Relay(engine, bus) if RELAY in parts else None
        consumers = [PROJECTIONS[p].consumer for p in parts if p in PROJECTIONS]
        if not st.wants_json(json_out):
            say(f"worker running: {', '.join(parts)} (bus memory://); SIGTERM stops it")
        stats = run_worker(engine, bus, relay=relay, consumers=consumers, stop=stop, poll_s=poll_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bus.close()
    if st.wants_json(json_out):
        print_json({"published": stats.published, "handled": stats.handled})
        return
    handled = ", ".join(f"{name} {n}" for name, n in stats.handled.items()) or "none"
    say(f"worker stopped: published {stats.published}; handled: {handled}")
