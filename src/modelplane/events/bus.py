"""The event bus port: published events, named consumer groups, acks, retries, dead letters.

Semantics, the same on every back end (this module's in-process :class:`MemoryBus` is the
embedded default, ``MODELPLANE_BUS_URL=memory://``; Redis Streams and NATS JetStream back ends
implement the same :class:`EventBus` protocol and pass the same contract tests)::

    publish([m1, m2, …])           appended to the bus in order; every group sees every message
    fetch(group, consumer, n)      up to n deliveries for this consumer of the group
    ack(group, delivery)           done: never delivered to that group again
    fail(group, delivery, error)   retried after a backoff (exponential, full jitter), or, after
                                   ``max_attempts`` deliveries, moved to the group's dead letters
    (no ack within ack_timeout_s)  delivered again (the consumer died or hangs): attempt + 1
    dead_letters(group)            what failed for good: attempts, last error, time
    redrive(group, ids | None)     dead letters back to the group, attempts from zero

**Order.** Every message has a ``key`` (an aggregate: ``model:fraud``, ``rollout:fraud#3``).
Within a group, a message is not delivered while an earlier message of the same key is
unfinished (delivered and not acked, or waiting for its retry): one aggregate's events are
handled in order, one at a time, and different aggregates in parallel — the rule of SQS FIFO's
message groups. A dead-lettered message no longer holds its key back (the group moves on); a
redriven one goes before the messages of its key that are still unfinished.

The in-process log is kept for the process's life (the outbox table is the durable copy).

**Delivery is at least once.** A consumer that dies after its effect and before its ack gets the
message again; consumers are made idempotent by recording ``(consumer, message id)`` in the same
transaction as their effect (the relay and the consumer runner do that, not the bus).

Time comes from ``clock`` (``time.monotonic`` by default) so tests step it instead of sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "BusMessage",
    "DeadLetter",
    "Delivery",
    "EventBus",
    "MemoryBus",
    "RetryPolicy",
    "backoff_s",
]


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One event on the bus. ``id`` is the event's own id (consumers deduplicate by it);
    ``key`` orders it (one aggregate); ``payload`` is JSON-able."""

    id: str
    type: str
    key: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to one consumer of a group. ``attempt`` is 1 the first time; ``token``
    is the back end's handle for ack/fail (a stream entry id, an offset)."""

    message: BusMessage
    attempt: int
    token: Any


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a group gave up on: after ``attempts`` deliveries, the last one failing with
    ``error`` at ``failed_at``. ``id`` names it for :meth:`EventBus.redrive`."""

    id: str
    group: str
    message: BusMessage
    attempts: int
    error: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a group retries: ``max_attempts`` deliveries in all, then the dead letters; between
    tries a backoff drawn uniformly from ``[0, min(max_backoff_s, base_backoff_s * 2**(n-1))]``
    (full jitter: retries of many messages spread out instead of arriving together); a delivery
    not acked within ``ack_timeout_s`` is delivered again."""

    max_attempts: int = 5
    base_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    ack_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_backoff_s < 0 or self.max_backoff_s < 0 or self.ack_timeout_s <= 0:
            raise ValueError("backoffs must not be negative and ack_timeout_s must be positive")


def backoff_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """The wait before the retry that follows failed delivery number ``attempt`` (full jitter)."""
    cap = min(policy.max_backoff_s, policy.base_backoff_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, cap)


class EventBus(Protocol):
    """What the relay publishes to and consumers read from (see the module docstring)."""

    def publish(self, messages: Sequence[BusMessage]) -> None: ...

    def fetch(
        self, group: str, consumer: str, max_messages: int = 100, wait_s: float = 0.0
    ) -> list[Delivery]: ...

    def ack(self, group: str, delivery: Delivery) -> None: ...

    def fail(self, group: str, delivery: Delivery, error: str) -> None: ...

    def dead_letters(self, group: str) -> list[DeadLetter]: ...

    def redrive(self, group: str, ids: Iterable[str] | None = None) -> int: ...

    def close(self) -> None: ...


# -- the in-process back end ----------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One message's state in one group (absent: not yet delivered)."""

    attempt: int = 0  # deliveries so far
    due: float = 0.0  # in flight: its ack deadline; waiting: when it may be delivered again


@dataclass(slots=True)
class _Group:
    low: int = 0  # every offset below is finished (acked or dead)
    entries: dict[int, _Entry] = field(default_factory=dict)  # delivered and unfinished
    finished: set[int] = field(default_factory=set)  # finished offsets at or above ``low``
    dead: dict[str, tuple[DeadLetter, int]] = field(default_factory=dict)  # id → (it, offset)
    redriven: list[int] = field(default_factory=list)  # dead offsets sent back, oldest first


class MemoryBus:
    """:class:`EventBus` in this process: one append-only list, per-group positions. Thread-safe;
    what is published lives as long as the process (the outbox is the durable copy)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng or random.Random()
        self._now = now
        self._log: list[BusMessage] = []
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Condition()
        self._closed = False

    # -- producing --------------------------------------------------------------------------------
    def publish(self, messages: Sequence[BusMessage]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the bus is closed")
            self._log.extend(messages)
            self._lock.notify_all()

    # -- consuming --------------------------------------------------------------------------------
    def fetch(
        self, group: str, consumer: str, max_messages: int = 100, wait_s: float = 0.0
    ) -> list[Delivery]:
        """Up to ``max_messages`` deliveries; waits up to ``wait_s`` for one when none is ready."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                out = self._take(self._groups.setdefault(group, _Group()), max_messages)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0 or self._closed:
                    return out
                self._lock.wait(remaining)

    def _take(self, g: _Group, limit: int) -> list[Delivery]:
        """The next deliveries (the consumer's name matters to back ends that track who holds
        a message; here an unacked delivery simply comes again after its timeout)."""
        now = self._clock()
        out: list[Delivery] = []
        blocked: set[str] = set()  # keys with an earlier unfinished message
        for offset in self._candidates(g):
            if len(out) >= limit:
                break
            message = self._log[offset]
            if message.key in blocked:
                continue
            blocked.add(message.key)
            entry = g.entries.get(offset)
            if entry is not None and entry.due > now:  # in flight, or waiting for its retry
                continue
            if entry is None:
                entry = g.entries[offset] = _Entry()
            entry.attempt += 1
            entry.due = now + self.policy.ack_timeout_s
            out.append(Delivery(message, entry.attempt, offset))
        return out

    def _candidates(self, g: _Group) -> Iterable[int]:
        """Unfinished offsets, oldest first: redriven dead letters, then the log from ``low``."""
        yield from list(g.redriven)
        for offset in range(g.low, len(self._log)):
            if offset not in g.finished:
                yield offset

    def ack(self, group: str, delivery: Delivery) -> None:
        with self._lock:
            g = self._groups.setdefault(group, _Group())
            entry = g.entries.get(delivery.token)
            if entry is None or entry.attempt != delivery.attempt:
                return  # a stale delivery (redelivered since): the newer one decides
            self._finish(g, delivery.token)
            self._lock.notify_all()

    def fail(self, group: str, delivery: Delivery, error: str) -> None:
        with self._lock:
            g = self._groups.setdefault(group, _Group())
            entry = g.entries.get(delivery.token)
            if entry is None or entry.attempt != delivery.attempt:
                return
            if entry.attempt >= self.policy.max_attempts:
                dead_id = f"{group}:{delivery.message.id}"
                dead = DeadLetter(
                    dead_id, group, delivery.message, entry.attempt, error, self._now()
                )
                g.dead[dead_id] = (dead, delivery.token)
                self._finish(g, delivery.token)
            else:
                entry.due = self._clock() + backoff_s(self.policy, entry.attempt, self._rng)
            self._lock.notify_all()

    def _finish(self, g: _Group, offset: int) -> None:
        g.entries.pop(offset, None)
        if offset in g.redriven:
            g.redriven.remove(offset)
            return
        g.finished.add(offset)
        while g.low in g.finished:
            g.finished.discard(g.low)
            g.low += 1

    # -- dead letters ---------------------------------------------------------------------------
    def dead_letters(self, group: str) -> list[DeadLetter]:
        with self._lock:
            g = self._groups.get(group)
            letters = [] if g is None else [dead for dead, _ in g.dead.values()]
            return sorted(letters, key=lambda d: d.failed_at)

    def redrive(self, group: str, ids: Iterable[str] | None = None) -> int:
        """Send dead letters (all, or those named) back to the group; how many went."""
        with self._lock:
            g = self._groups.get(group)
            if g is None:
                return 0
            chosen = list(g.dead) if ids is None else [i for i in ids if i in g.dead]
            for dead_id in chosen:
                _, offset = g.dead.pop(dead_id)
                g.redriven.append(offset)
            self._lock.notify_all()
            return len(chosen)

    # -- state ------------------------------------------------------------------------------------
    def lag(self, group: str) -> int:
        """Messages the group has not finished (not yet delivered, in flight or waiting)."""
        with self._lock:
            g = self._groups.get(group)
            if g is None:
                return len(self._log)
            return len(self._log) - g.low - len(g.finished) + len(g.redriven)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
