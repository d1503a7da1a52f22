"""The traffic side of serving's recorder: per-arm live counters, outcomes, shadow comparisons.

A serving replica counts on its event loop (:class:`~modelplane.traffic.live.LiveStats`, no I/O
per request) and every ``flush_interval_s`` adds its deltas to the totals all replicas share
(``traffic_stats`` / ``traffic_latency``), in a thread; a failed write puts the deltas back for
the next one. Feedback rows are stored as they come (in a thread, by the caller). Serving sees
this class only through its ``TrafficRecorder`` port; bootstrap builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from modelplane.traffic.live import Counters, LiveStats

__all__ = ["LiveRecorder", "TrafficStore"]

log = logging.getLogger(__name__)


class TrafficStore(Protocol):
    """Where replicas' counters and feedback go (``SqlTrafficStore``)."""

    def add_counters(self, deltas: Mapping[tuple[str, str], Counters]) -> None: ...

    def add_feedback(
        self,
        request_id: str,
        *,
        label: float | None,
        reward: float | None,
        subject: str | None,
        variant: str | None,
        overwrite: bool = False,
    ) -> int: ...


class LiveRecorder(LiveStats):
    """Live counters (inherited: the request path calls them with no extra frame) plus the
    writes that send them on, and the loop that flushes them."""

    def __init__(self, store: TrafficStore, *, flush_interval_s: float = 1.0) -> None:
        super().__init__()
        self._store = store
        self._flush_interval_s = flush_interval_s
        self._task: asyncio.Task[None] | None = None

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
        return self._store.add_feedback(
            request_id,
            label=label,
            reward=reward,
            subject=subject,
            variant=variant,
            overwrite=overwrite,
        )

    async def flush(self) -> None:
        """Add what was counted since the last flush to the shared totals (in a thread)."""
        deltas = self.drain()
        if not deltas:
            return
        try:
            await asyncio.to_thread(self._store.add_counters, deltas)
        except Exception:
            log.warning("could not write traffic counters; retrying with the next flush",
                        exc_info=True)  # fmt: skip
            self.restore(deltas)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="modelplane-stats-flush")

    async def stop(self) -> None:
        """Stop the loop and write the counters once more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()
