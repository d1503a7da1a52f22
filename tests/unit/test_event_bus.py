"""The event bus port's contract, on the in-process back end (Redis and NATS pass the same)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from modelplane.events.bus import BusMessage, Delivery, MemoryBus, RetryPolicy, backoff_s

MakeBus = Callable[..., MemoryBus]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def msg(i: int, key: str = "model:fraud") -> BusMessage:
    return BusMessage(id=f"e{i}", type="AliasSet", key=key, payload={"i": i})


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.message.id for d in deliveries]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_bus(clock: Clock) -> MakeBus:
    def make(**policy: Any) -> MemoryBus:
        return MemoryBus(RetryPolicy(**policy), clock=clock, rng=random.Random(7))

    return make


class TestDelivery:
    def test_every_group_gets_every_message_once_acked(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.publish([msg(1, "a"), msg(2, "b")])

        for group in ("relay", "webhooks"):
            got = bus.fetch(group, "c1")
            assert ids(got) == ["e1", "e2"]
            assert [d.attempt for d in got] == [1, 1]
            for d in got:
                bus.ack(group, d)
            assert bus.fetch(group, "c1") == []
            assert bus.lag(group) == 0

    def test_one_key_is_handled_in_order_one_at_a_time(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.publish([msg(1, "a"), msg(2, "a"), msg(3, "b")])

        first = bus.fetch("g", "c1")
        assert ids(first) == ["e1", "e3"]  # e2 waits for e1: same aggregate
        assert bus.fetch("g", "c2") == []
        bus.ack("g", first[0])
        assert ids(bus.fetch("g", "c2")) == ["e2"]

    def test_an_unacked_delivery_comes_again_after_its_timeout(
        self, make_bus: MakeBus, clock: Clock
    ) -> None:
        bus = make_bus(ack_timeout_s=30)
        bus.publish([msg(1)])
        (taken,) = bus.fetch("g", "dies")

        assert bus.fetch("g", "c2") == []  # still within its timeout
        clock.now += 31
        (again,) = bus.fetch("g", "c2")
        assert (again.message.id, again.attempt) == ("e1", 2)
        bus.ack("g", taken)  # the dead consumer's late ack: stale, ignored
        assert bus.lag("g") == 1
        bus.ack("g", again)
        assert bus.lag("g") == 0

    def test_a_failure_is_retried_after_a_backoff(self, make_bus: MakeBus, clock: Clock) -> None:
        bus = make_bus(base_backoff_s=10, max_backoff_s=10)
        bus.publish([msg(1), msg(2)])
        (d,) = bus.fetch("g", "c")
        bus.fail("g", d, "ValueError: boom")

        clock.now += 10.001  # past any backoff the full jitter drew from [0, 10]
        (retry,) = bus.fetch("g", "c")
        assert (retry.message.id, retry.attempt) == ("e1", 2)  # still before e2: same key

    def test_after_max_attempts_a_message_is_a_dead_letter_and_its_key_moves_on(
        self, make_bus: MakeBus, clock: Clock
    ) -> None:
        bus = make_bus(max_attempts=3, base_backoff_s=0)
        bus.publish([msg(1), msg(2)])
        for attempt in (1, 2, 3):
            (d,) = bus.fetch("g", "c")
            assert (d.message.id, d.attempt) == ("e1", attempt)
            bus.fail("g", d, f"KeyError: try {attempt}")

        (dead,) = bus.dead_letters("g")
        assert (dead.message.id, dead.attempts, dead.error) == ("e1", 3, "KeyError: try 3")
        assert dead.group == "g"
        assert ids(bus.fetch("g", "c")) == ["e2"]  # the poison message no longer blocks
        assert bus.dead_letters("other") == []

    def test_a_redriven_dead_letter_is_delivered_again_from_attempt_one(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus(max_attempts=1)
        bus.publish([msg(1)])
        (d,) = bus.fetch("g", "c")
        bus.fail("g", d, "bug")
        (dead,) = bus.dead_letters("g")

        assert bus.redrive("g", ["nope"]) == 0
        assert bus.redrive("g", [dead.id]) == 1
        (again,) = bus.fetch("g", "c")
        assert (again.message.id, again.attempt) == ("e1", 1)
        bus.ack("g", again)
        assert bus.dead_letters("g") == []
        assert bus.fetch("g", "c") == []
        assert bus.lag("g") == 0

    def test_redrive_all(self, make_bus: MakeBus) -> None:
        bus = make_bus(max_attempts=1)
        bus.publish([msg(1, "a"), msg(2, "b")])
        for d in bus.fetch("g", "c"):
            bus.fail("g", d, "bug")
        assert bus.redrive("g") == 2
        assert sorted(ids(bus.fetch("g", "c"))) == ["e1", "e2"]

    def test_a_waiting_fetch_returns_when_a_message_is_published(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        got: list[str] = []
        waiter = threading.Thread(target=lambda: got.extend(ids(bus.fetch("g", "c", wait_s=60))))
        waiter.start()
        bus.publish([msg(1)])
        waiter.join(60)
        assert got == ["e1"]

    def test_close_wakes_a_waiting_fetch_and_refuses_publishing(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(bus.fetch("g", "c", wait_s=60)))
        waiter.start()
        bus.close()
        waiter.join(60)
        assert got == [[]]
        with pytest.raises(RuntimeError, match="closed"):
            bus.publish([msg(1)])


class TestConcurrency:
    def test_many_producers_and_consumers_deliver_all_once_in_per_key_order(self) -> None:
        bus = MemoryBus()
        producers, per_producer, keys = 4, 2000, 50
        seen: dict[str, list[int]] = defaultdict(list)
        in_flight: set[str] = set()
        overlap: list[str] = []
        lock = threading.Lock()
        done = threading.Event()
        total = producers * per_producer

        def produce(p: int) -> None:
            for i in range(per_producer):
                key = f"k{(p * 7 + i) % keys}-{p}"  # each key has one producer: a known order
                bus.publish([BusMessage(id=f"{p}-{i}", type="T", key=key, payload={"i": i})])

        def consume(name: str) -> None:
            while not done.is_set():
                for d in bus.fetch("g", name, max_messages=20, wait_s=0.05):
                    key = d.message.key
                    with lock:
                        if key in in_flight:
                            overlap.append(key)
                        in_flight.add(key)
                        seen[key].append(int(d.message.payload["i"]))
                        in_flight.discard(key)
                        if sum(len(v) for v in seen.values()) == total:
                            done.set()
                    bus.ack("g", d)

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        threads += [threading.Thread(target=consume, args=(f"c{c}",)) for c in range(3)]
        for t in threads:
            t.start()
        assert done.wait(120)
        for t in threads:
            t.join(60)

        assert sum(len(v) for v in seen.values()) == total
        assert all(v == sorted(v) for v in seen.values())  # per-key order
        assert len({(k, i) for k, v in seen.items() for i in v}) == total  # none twice
        assert overlap == []
        assert bus.lag("g") == 0


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_backoff_s=0.5, max_backoff_s=4)
    rng = random.Random(1)
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        draws = [backoff_s(policy, attempt, rng) for _ in range(200)]
        assert all(0 <= x <= cap for x in draws)
        assert max(draws) > cap * 0.8  # the whole range is used, not a fixed delay


def test_a_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="ack_timeout_s"):
        RetryPolicy(ack_timeout_s=0)
