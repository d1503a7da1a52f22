"""The prediction cache: L1 in process, L2 shared, and each key computed once at a time.

:meth:`PredictionCache.get_or_compute` looks in L1, then L2 (a hit there fills L1), and only
then computes. Concurrent misses of one key in this process share one computation (a task per
key in flight; if it raises, every waiter gets the error and nothing is stored). Across
replicas a short Redis lock elects one computer: the others poll L2 for its answer for up to
``wait_for_peer_ms`` and then compute anyway. L2 trouble (:class:`CacheUnavailable`) is counted
and otherwise ignored: the caller always gets the computed value, never a cache error.

Events reported through ``on_event(tier, outcome)``:

=========  ==========================================================================
tier       outcomes
=========  ==========================================================================
``l1``     ``hit``, ``miss``, ``set``
``l2``     ``hit``, ``miss``, ``set``, ``error`` (a failed or skipped Redis call)
``flight`` ``shared`` (joined a computation in flight in this process),
           ``peer`` (got the value another replica computed while we waited)
=========  ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from modelplane.cache.base import CacheUnavailable, EventSink, LocalTier, SharedTier

__all__ = ["PredictionCache"]


def _ignore(tier: str, outcome: str) -> None:
    del tier, outcome


class PredictionCache:
    """Two tiers (either may be ``None``) and single-flight, behind one call."""

    def __init__(
        self,
        l1: LocalTier | None,
        l2: SharedTier | None,
        *,
        on_event: EventSink | None = None,
        wait_for_peer_ms: float = 500,
        poll_ms: float = 15,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self._emit = on_event or _ignore
        self._wait_for_peer_s = wait_for_peer_ms / 1000
        self._poll_s = poll_ms / 1000
        self._flights: dict[str, asyncio.Task[tuple[bytes, bool]]] = {}

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[bytes]], *, bypass: bool = False
    ) -> tuple[bytes, bool]:
        """The value of ``key`` and whether it came from a cache tier.

        ``bypass`` (``Cache-Control: no-cache``) computes without reading any tier or joining
        a computation in flight; the fresh value is still stored. A caller that joins another's
        computation gets ``hit=False``: the value is as fresh as its own would have been.
        Cancelling one caller does not cancel a computation others are waiting for.
        """
        if bypass:
            return await self._compute(key, compute, self.l2), False
        if self.l1 is not None:
            value = self.l1.get(key)
            if value is not None:
                self._emit("l1", "hit")
                return value, True
            self._emit("l1", "miss")
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fill(key, compute))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        else:
            self._emit("flight", "shared")
        # shield: a caller that times out or disconnects must not cancel the others' answer.
        return await asyncio.shield(flight)

    def bytes_used(self) -> int:
        """Memory the in-process tier holds, entries' real size (0 without one); the server
        reports it as ``modelplane_cache_bytes``."""
        return self.l1.bytes_used if self.l1 is not None else 0

    async def close(self) -> None:
        """Cancel computations nobody waits for any more, then close L2."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        if self.l2 is not None:
            with contextlib.suppress(CacheUnavailable):
                await self.l2.close()

    def _landed(self, key: str, flight: asyncio.Task[tuple[bytes, bool]]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: no "exception never retrieved" if all waiters left

    async def _fill(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        l2 = self.l2
        if l2 is None:
            return await self._compute(key, compute, None), False
        try:
            value = await l2.get(key)
            if value is not None:
                self._emit("l2", "hit")
                self._fill_l1(key, value)
                return value, True
            self._emit("l2", "miss")
            locked = await l2.acquire_lock(key)
            if not locked:  # another replica is computing it
                value, locked = await self._wait_for_peer(l2, key)
                if value is not None:
                    self._emit("flight", "peer")
                    self._fill_l1(key, value)
                    return value, True
        except CacheUnavailable:
            # One error per request: the rest of this request leaves Redis alone.
            self._emit("l2", "error")
            return await self._compute(key, compute, None), False
        try:
            return await self._compute(key, compute, l2), False
        finally:
            if locked:
                try:
                    await l2.release_lock(key)
                except CacheUnavailable:
                    self._emit("l2", "error")

    async def _wait_for_peer(self, l2: SharedTier, key: str) -> tuple[bytes | None, bool]:
        """Poll L2 for a peer's value: ``(value, False)``, or ``(None, we_now_hold_the_lock)``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_for_peer_s
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._poll_s, remaining))
            value = await l2.get(key)
            if value is not None:
                return value, False
            # The lock is free again: the peer finished (look once more) or failed (our turn).
            if await l2.acquire_lock(key):
                value = await l2.get(key)
                if value is None:
                    return None, True
                await l2.release_lock(key)
                return value, False
        return None, False

    async def _compute(
        self, key: str, compute: Callable[[], Awaitable[bytes]], l2: SharedTier | None
    ) -> bytes:
        """Compute, then store in L1 and (when given) L2; an L2 failure is only counted."""
        value = await compute()
        self._fill_l1(key, value)
        if l2 is not None:
            try:
                await l2.set(key, value)
            except CacheUnavailable:
                self._emit("l2", "error")
            else:
                self._emit("l2", "set")
        return value

    def _fill_l1(self, key: str, value: bytes) -> None:
        if self.l1 is not None:
            self.l1.set(key, value)
            self._emit("l1", "set")
