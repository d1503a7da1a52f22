"""The traffic side of serving's recorder: per-arm live counters, outcomes, shadow comparisons.

A serving replica counts on its event loop (:class:`~modelplane.traffic.live.LiveStats`, no I/O
per request) and every ``flush_interval_s`` sends its deltas as a ``RecordTrafficCounters``
command (added to the totals all replicas share, ``traffic_stats`` / ``traffic_latency``), in a
thread; a failed command puts the deltas back for the next one. Outcomes go as they come, one
``RecordFeedback`` command each (in a thread, by the caller). Serving sees this class only
through its ``TrafficRecorder`` port; bootstrap builds it over the bus's ``handle``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from modelplane.core.messages import Command
from modelplane.core.periodic import Periodic
from modelplane.traffic.commands import RecordFeedback, RecordTrafficCounters
from modelplane.traffic.live import LiveStats

__all__ = ["LiveRecorder"]

log = logging.getLogger(__name__)


class LiveRecorder(LiveStats):
    """Live counters (inherited: the request path calls them with no extra frame) plus the
    writes that send them on, and the loop that flushes them."""

    def __init__(self, handle: Callable[[Command], Any], *, flush_interval_s: float = 1.0) -> None:
        super().__init__()
        self._handle = handle
        self._loop = Periodic(
            self.flush, flush_interval_s, name="modelplane-stats-flush", log=log,
            failure="traffic counters flush failed",
        )  # fmt: skip

    def store_feedback(
        self,
        request_id: str,
        *,
        label: float | None,
        reward: float | None,
        subject: str | None,
        variant: str | None,
        overwrite: bool,
    ) -> int:
        """Store one outcome (blocking); Conflict (409) on a second unless ``overwrite``."""
        revision: int = self._handle(
            RecordFeedback(
                request_id,
                label=label,
                reward=reward,
                subject=subject,
                variant=variant,
                overwrite=overwrite,
            )
        )
        return revision

    async def flush(self) -> None:
        """Add what was counted since the last flush to the shared totals (in a thread)."""
        deltas = self.drain()
        if not deltas:
            return
        try:
            await asyncio.to_thread(self._handle, RecordTrafficCounters(deltas))
        except Exception:
            log.warning("could not write traffic counters; retrying with the next flush",
                        exc_info=True)  # fmt: skip
            self.restore(deltas)

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop and write the counters once more."""
        await self._loop.stop()
        await self.flush()
