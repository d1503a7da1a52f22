"""Keep answering when what is around a model fails: bulkhead, timeout, circuit breaker.

- :class:`Bulkhead` — at most ``max_concurrency`` requests of a model inside, ``max_queue`` more
  waiting in order; beyond that :class:`~modelplane.errors.Overloaded` (503 + ``Retry-After``)
  at once, so a slow model sheds load instead of growing an unbounded queue.
- :func:`with_timeout` — a deadline per request: :class:`~modelplane.errors.DeadlineExceeded`
  (504).
- :class:`CircuitBreaker` — per version; opens on the error share over a sliding window, lets a
  few probes through after a pause, and closes when they succeed. The caller decides what to
  do while it is open (a fallback version, or :class:`~modelplane.errors.CircuitOpen`).

All three are plain objects for one event loop (no locks): the serving core owns one of each
per model or version.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal, TypeVar

from modelplane.errors import DeadlineExceeded, Overloaded

__all__ = ["BreakerState", "Bulkhead", "CircuitBreaker", "with_timeout"]

log = logging.getLogger(__name__)

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]

_SERVICE_EWMA = 0.2  # weight of the latest service time in the bulkhead's running estimate


class Bulkhead:
    """A concurrency limit with a bounded FIFO queue: ``async with bulkhead.slot(): ...``.

    ``Overloaded.retry_after`` estimates when the queue will have drained from the recent
    service time (a moving average of how long requests held a slot), in whole seconds, at
    least 1. A request cancelled while it waits gives its place back.
    """

    def __init__(
        self,
        max_concurrency: int,
        max_queue: int,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_queue < 0:
            raise ValueError(f"max_queue must not be negative, got {max_queue}")
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._clock = clock
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._service_s = 0.0  # moving average; 0 until a request has finished

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def slot(self) -> _Slot:
        """An async context manager holding one place inside for the duration of the block."""
        return _Slot(self)

    @property
    def retry_after(self) -> float:
        """Seconds a client turned away now should wait: the queue's drain time, at least 1."""
        drain = (self.waiting + 1) * self._service_s / self.max_concurrency
        return float(max(1, math.ceil(drain)))

    async def acquire(self) -> None:
        """Take a place inside, waiting in line if need be; ``Overloaded`` if the line is full."""
        if self._in_flight < self.max_concurrency and not self._waiters:
            self._in_flight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise Overloaded(
                f"model {self.name!r} is overloaded: {self._in_flight} requests running and "
                f"{len(self._waiters)} waiting",
                retry_after=self.retry_after,
                field=self.name or None,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the place was handed to us just as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a place back: to the first live waiter if any (it stays counted in flight)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1

    def _observe(self, seconds: float) -> None:
        if self._service_s == 0.0:
            self._service_s = seconds
        else:
            self._service_s += _SERVICE_EWMA * (seconds - self._service_s)


class _Slot:
    __slots__ = ("_bulkhead", "_started")

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead
        self._started = 0.0

    async def __aenter__(self) -> None:
        await self._bulkhead.acquire()
        self._started = self._bulkhead._clock()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        bulkhead = self._bulkhead
        bulkhead._observe(bulkhead._clock() - self._started)
        bulkhead.release()


async def with_timeout(awaitable: Awaitable[T], seconds: float | None, *, what: str) -> T:
    """Await ``awaitable`` for at most ``seconds`` (``None``: no limit).

    Past the limit the awaitable is cancelled and :class:`~modelplane.errors.DeadlineExceeded`
    names ``what`` and the limit. Cancelling reaches coroutines and asyncio futures; work
    already running in an executor thread cannot be interrupted: it finishes and its result is
    dropped (the batcher drops the rows of a cancelled request). A ``TimeoutError`` raised by
    the work itself (a client library's own timeout) propagates unchanged.
    """
    if seconds is None:
        return await awaitable
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if deadline.expired():
            raise DeadlineExceeded(f"{what} took longer than {seconds:g} s") from None
        raise


class CircuitBreaker:
    """Closed → open → half-open → closed, on the error share over a sliding time window.

    - closed: every request is allowed; when the last ``window_s`` seconds hold at least
      ``min_requests`` results and at least ``error_rate`` of them are failures, it opens.
    - open: nothing is allowed for ``open_s`` seconds, then it turns half-open.
    - half_open: up to ``half_open_probes`` requests at once are allowed through as probes;
      ``half_open_probes`` successes close it, one failure opens it again. A probe that never
      reports back (its caller was cancelled) is forgotten after ``open_s``.

    The window is a ring of 30 time buckets (1 s each for the default 30 s window) with running
    totals, so :meth:`allow` and :meth:`record` cost O(1). The caller records only what the
    model's health decides: a server-side failure (the model raised, timed out, crashed) is
    ``record(False)``; an input error (4xx: bad shape, wrong type) is the client's fault and
    must be recorded as a success or not at all, or one bad client could open the breaker for
    everyone. Results that arrive while it is open are ignored. ``on_change(state)`` is called
    on every transition (a metrics gauge).
    """

    BUCKETS = 30

    def __init__(
        self,
        *,
        window_s: float = 30,
        min_requests: int = 20,
        error_rate: float = 0.5,
        open_s: float = 10,
        half_open_probes: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if window_s <= 0 or open_s < 0:
            raise ValueError("window_s must be positive and open_s not negative")
        if not 0 < error_rate <= 1:
            raise ValueError(f"error_rate must be in (0, 1], got {error_rate}")
        if min_requests < 1 or half_open_probes < 1:
            raise ValueError("min_requests and half_open_probes must be at least 1")
        self.window_s = window_s
        self.min_requests = min_requests
        self.error_rate = error_rate
        self.open_s = open_s
        self.half_open_probes = half_open_probes
        self.on_change = on_change
        self._clock = clock
        self._bucket_s = window_s / self.BUCKETS
        self._totals = [0] * self.BUCKETS
        self._failures = [0] * self.BUCKETS
        self._total = 0
        self._failed = 0
        self._epoch = math.floor(clock() / self._bucket_s)  # index of the newest bucket
        self._state: BreakerState = "closed"
        self._since = clock()  # when the current state began
        self._probes_out = 0  # probes allowed and not yet recorded (half-open)
        self._probes_ok = 0

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half_open`` (an open breaker past ``open_s`` reads as
        half-open)."""
        if self._state == "open" and self._clock() - self._since >= self.open_s:
            self._enter("half_open")
        return self._state

    def allow(self) -> bool:
        """May a request go to the model now? Each ``True`` must be followed by one
        :meth:`record` of its outcome."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._probes_out + self._probes_ok >= self.half_open_probes:
            if self._clock() - self._since < self.open_s:
                return False
            self._probes_out = 0  # probes lost (never recorded): let new ones through
            self._since = self._clock()
        self._probes_out += 1
        return True

    def record(self, success: bool) -> None:
        """Report the outcome of an allowed request (server-side failures only: see above)."""
        state = self.state
        if state == "closed":
            self._count(success)
            if self._total >= self.min_requests and self._failed >= self.error_rate * self._total:
                self._enter("open")
        elif state == "half_open":
            self._probes_out = max(0, self._probes_out - 1)
            if not success:
                self._enter("open")
            else:
                self._probes_ok += 1
                if self._probes_ok >= self.half_open_probes:
                    self._enter("closed")

    @property
    def window(self) -> tuple[int, int]:
        """(requests, failures) recorded over the sliding window, up to now."""
        self._advance()
        return self._total, self._failed

    def _count(self, success: bool) -> None:
        self._advance()
        i = self._epoch % self.BUCKETS
        self._totals[i] += 1
        self._total += 1
        if not success:
            self._failures[i] += 1
            self._failed += 1

    def _advance(self) -> None:
        """Move the window to now, emptying the buckets that fell out of it."""
        epoch = math.floor(self._clock() / self._bucket_s)
        if epoch <= self._epoch:
            return
        if epoch - self._epoch >= self.BUCKETS:
            self._reset_window()
        else:
            for e in range(self._epoch + 1, epoch + 1):
                i = e % self.BUCKETS
                self._total -= self._totals[i]
                self._failed -= self._failures[i]
                self._totals[i] = self._failures[i] = 0
        self._epoch = epoch

    def _reset_window(self) -> None:
        self._totals = [0] * self.BUCKETS
        self._failures = [0] * self.BUCKETS
        self._total = self._failed = 0

    def _enter(self, state: BreakerState) -> None:
        self._state = state
        self._since = self._clock()
        self._probes_out = self._probes_ok = 0
        if state != "half_open":
            self._reset_window()
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception:
                log.exception("on_change callback of a circuit breaker failed")
