"""The event worker: the relay and the consumers in one loop, until told to stop.

``modelplane worker`` runs it (``--only relay,model-timeline`` to split the parts across
processes once the bus is shared: Redis or NATS, issue 14). Each turn: the relay publishes what
committed since its last turn, then each consumer handles one fetch; when a turn did nothing the
loop waits ``poll_s`` or until ``stop`` is set. Stopping finishes the turn in hand (a consumer
acks nothing it did not finish) and hands the relay's lease over at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from modelplane.events.bus import EventBus
from modelplane.events.relay import Consumer, Relay, consume_once

__all__ = ["WorkerStats", "run_worker"]

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """What a worker did: events published by its relay, deliveries handled per consumer."""

    published: int = 0
    handled: dict[str, int] = field(default_factory=dict)
    turns: int = 0


def run_worker(
    engine: Engine,
    bus: EventBus,
    *,
    relay: Relay | None,
    consumers: Sequence[Consumer],
    stop: threading.Event,
    poll_s: float = 0.5,
    worker_id: str = "worker",
    on_turn: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """Run until ``stop`` is set; what was done."""
    stats = WorkerStats(handled={c.name: 0 for c in consumers})
    try:
        while not stop.is_set():
            busy = 0
            if relay is not None:
                try:
                    published = relay.run_once()
                except Exception:  # the database or the bus is down: retry next turn
                    log.exception("relay %s failed; retrying", relay.name)
                    published = 0
                stats.published += published
                busy += published
            for consumer in consumers:
                if stop.is_set():
                    break
                handled = consume_once(engine, bus, consumer, worker=worker_id)
                stats.handled[consumer.name] += handled
                busy += handled
            stats.turns += 1
            if on_turn is not None:
                on_turn(stats)
            if not busy:
                stop.wait(poll_s)
    finally:
        if relay is not None:
            try:
                relay.release()
            except Exception:
                log.exception("relay %s could not release its lease", relay.name)
    return stats
