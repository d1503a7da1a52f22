"""The outbox relay and idempotent consumers on SQLite and the real PostgreSQL, in-process bus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, String, Table, insert, select

from modelplane.bootstrap import Platform, bootstrap
from modelplane.config import Settings
from modelplane.db.tables import metadata
from modelplane.events.bus import BusMessage, MemoryBus, RetryPolicy
from modelplane.events.relay import Consumer, Relay, consume_once
from modelplane.events.tables import processed_events
from modelplane.registry import commands as rc


@pytest.fixture
def platform(any_db_url: str, home: Path) -> Iterator[Platform]:
    p = bootstrap(Settings(home=home, db_url=any_db_url))
    try:
        yield p
    finally:
        p.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 8, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def register(platform: Platform, *names: str) -> None:
    for name in names:
        platform.bus.handle(rc.RegisterModel(name=name))


def event_ids(platform: Platform) -> list[str]:
    return [e.event_id for e in platform.events.list_events(limit=1000).items]


def processed(platform: Platform, consumer: str, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` ``consumer`` has handled."""
    p = processed_events
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(p.c.event_id).where(p.c.consumer == consumer, p.c.event_id.in_(event_ids))
        )
        return {str(r) for r in rows.scalars()}


def drain(bus: MemoryBus, group: str) -> list[BusMessage]:
    out = []
    while got := bus.fetch(group, "test", 1000):
        for d in got:
            out.append(d.message)
            bus.ack(group, d)
    return out


class TestRelay:
    def test_publishes_committed_events_in_order_once(self, platform: Platform) -> None:
        bus = MemoryBus()
        register(platform, "a", "b", "c")
        relay = Relay(platform.engine, bus, batch=2)

        assert relay.lag() == 3
        assert relay.drain() == 3
        assert relay.drain() == 0  # nothing new: nothing published again
        got = drain(bus, "g")
        assert [m.id for m in got] == event_ids(platform)
        assert [m.key for m in got] == ["model:a", "model:b", "model:c"]
        assert got[0].type == "ModelRegistered"
        assert relay.lag() == 0

        register(platform, "d")
        assert relay.run_once() == 1
        assert [m.key for m in drain(bus, "g")] == ["model:d"]

    def test_a_second_relay_does_not_publish_while_the_first_holds_the_lease(
        self, platform: Platform
    ) -> None:
        bus = MemoryBus()
        clock = Clock()
        first = Relay(platform.engine, bus, holder="one", lease_s=10, clock=clock)
        second = Relay(platform.engine, bus, holder="two", lease_s=10, clock=clock)
        register(platform, "a")
        assert first.run_once() == 1
        register(platform, "b")

        assert second.run_once() == 0  # the lease is the first's
        assert first.run_once() == 1
        clock.now += timedelta(seconds=11)  # the first stops renewing: its lease runs out
        register(platform, "c")
        assert second.run_once() == 1  # takes over from the position, publishes only "c"
        assert [m.key for m in drain(bus, "g")] == ["model:a", "model:b", "model:c"]

    def test_a_relay_that_lost_its_lease_cannot_move_the_position(self, platform: Platform) -> None:
        bus = MemoryBus()
        clock = Clock()
        stale = Relay(platform.engine, bus, holder="stale", lease_s=10, clock=clock)
        register(platform, "a")
        assert stale._lease() == 0
        clock.now += timedelta(seconds=11)
        fresh = Relay(platform.engine, bus, holder="fresh", lease_s=10, clock=clock)
        assert fresh._lease() == 0

        assert stale._advance(1) is False  # fenced: the position stays
        assert fresh.position() == 0

    def test_a_crash_between_publish_and_mark_republishes_and_consumers_drop_the_duplicate(
        self, platform: Platform
    ) -> None:
        bus = MemoryBus()
        register(platform, "a", "b")
        relay = Relay(platform.engine, bus)
        relay._advance = lambda position: False  # type: ignore[method-assign]  # dies first
        assert relay.run_once() == 2
        restarted = Relay(platform.engine, bus, holder=relay.holder)
        assert restarted.run_once() == 2  # the same two again: at least once

        effects = _effects_table()
        consumer = Consumer("counter", _insert_effect(effects))
        while consume_once(platform.engine, bus, consumer):
            pass
        with platform.engine.connect() as conn:
            rows = sorted(conn.execute(select(effects.c.event_id)).scalars())
        assert rows == sorted(event_ids(platform))  # once each, though delivered twice

    def test_release_hands_the_lease_over_at_once(self, platform: Platform) -> None:
        bus = MemoryBus()
        one = Relay(platform.engine, bus, holder="one")
        two = Relay(platform.engine, bus, holder="two")
        register(platform, "a")
        assert one.run_once() == 1
        one.release()
        register(platform, "b")
        assert two.run_once() == 1


_tables: dict[str, Table] = {}


def _effects_table() -> Table:
    """A table a test consumer writes its effect to (on the shared metadata, created here)."""
    return _tables["effects"]


@pytest.fixture(autouse=True)
def _effects(platform: Platform) -> Iterator[None]:
    table = Table("relay_test_effects", metadata, Column("event_id", String(36)),
                  extend_existing=True)  # fmt: skip
    table.create(platform.engine, checkfirst=True)
    _tables["effects"] = table
    try:
        yield
    finally:
        metadata.remove(table)


def _insert_effect(table: Table) -> Callable[[BusMessage, Connection], None]:
    def handler(message: BusMessage, conn: Connection) -> None:
        conn.execute(insert(table).values(event_id=message.id))

    return handler


class TestConsumers:
    def test_a_redelivered_event_has_its_effect_once(self, platform: Platform) -> None:
        clock = [0.0]
        bus = MemoryBus(RetryPolicy(ack_timeout_s=5), clock=lambda: clock[0])
        register(platform, "a")
        Relay(platform.engine, bus).drain()
        effects = _effects_table()
        consumer = Consumer("counter", _insert_effect(effects))

        # A worker takes the event, has its effect committed, and dies before its ack.
        (delivery,) = bus.fetch("counter", "dies")
        from modelplane.events.relay import handle

        handle(platform.engine, consumer, delivery.message, lambda: datetime.now(UTC))
        clock[0] += 6  # its ack never comes: redelivered to another worker
        assert consume_once(platform.engine, bus, consumer, worker="other") == 1

        with platform.engine.connect() as conn:
            assert list(conn.execute(select(effects.c.event_id)).scalars()) == event_ids(platform)
        assert bus.lag("counter") == 0
        assert processed(platform, "counter", event_ids(platform)) == set(event_ids(platform))

    def test_a_failing_handler_rolls_back_its_effect_and_ends_in_the_dead_letters(
        self, platform: Platform
    ) -> None:
        bus = MemoryBus(RetryPolicy(max_attempts=2, base_backoff_s=0))
        register(platform, "a")
        Relay(platform.engine, bus).drain()
        effects = _effects_table()
        broken = [True]

        def handler(message: BusMessage, conn: Connection) -> None:
            conn.execute(insert(effects).values(event_id=message.id))
            if broken[0]:
                raise KeyError("no such model")

        consumer = Consumer("fragile", handler)
        consume_once(platform.engine, bus, consumer)
        consume_once(platform.engine, bus, consumer)
        (dead,) = bus.dead_letters("fragile")
        assert (dead.attempts, dead.error) == (2, "KeyError: 'no such model'")
        with platform.engine.connect() as conn:
            assert list(conn.execute(select(effects.c.event_id))) == []  # rolled back
        assert processed(platform, "fragile", [dead.message.id]) == set()

        broken[0] = False  # the fix ships; redrive
        assert bus.redrive("fragile") == 1
        assert consume_once(platform.engine, bus, consumer) == 1
        with platform.engine.connect() as conn:
            assert list(conn.execute(select(effects.c.event_id)).scalars()) == [dead.message.id]

    def test_a_consumer_skips_the_types_it_does_not_want(self, platform: Platform) -> None:
        bus = MemoryBus()
        register(platform, "a")
        Relay(platform.engine, bus).drain()
        effects = _effects_table()
        consumer = Consumer("picky", _insert_effect(effects), frozenset({"NoSuchEvent"}))
        while consume_once(platform.engine, bus, consumer):
            pass
        with platform.engine.connect() as conn:
            assert list(conn.execute(select(effects.c.event_id))) == []
        assert bus.lag("picky") == 0


class TestProjections:
    def test_a_rebuilt_timeline_equals_the_live_one_after_random_commands(
        self, platform: Platform
    ) -> None:
        import random

        from modelplane.events.projections import MODEL_TIMELINE, replay, timeline

        rng = random.Random(13)
        models = ["fraud", "churn", "spam"]
        versions: dict[str, int] = {}
        for step in range(60):
            model = rng.choice(models)
            kind = rng.choice(["version", "version", "alias", "tag", "untag", "archive"])
            try:
                if kind == "version":
                    platform.bus.handle(rc.RegisterVersion(
                        model=model, flavor="sklearn", digest=f"{step:064x}", size=1,
                        artifact_name="model.skops"))  # fmt: skip
                    versions[model] = versions.get(model, 0) + 1
                elif kind == "alias" and versions.get(model):
                    v = rng.randint(1, versions[model])
                    platform.bus.handle(rc.SetAlias(model=model, alias="champion", version=v))
                elif kind == "tag":
                    platform.bus.handle(rc.SetTag(model=model, key="team", value=f"t{step}"))
                elif kind == "untag":
                    platform.bus.handle(rc.DeleteTag(model=model, key="team"))
                elif kind == "archive" and versions.get(model):
                    v = rng.randint(1, versions[model])
                    platform.bus.handle(rc.ArchiveVersion(model=model, version=v))
            except Exception:  # refused (no such model, tag or version state): no event
                continue

        bus = MemoryBus()
        relay = Relay(platform.engine, bus)
        relay.drain()
        while consume_once(platform.engine, bus, MODEL_TIMELINE.consumer, max_messages=7):
            relay.drain()
        live = {m: timeline(platform.engine, m) for m in models}
        assert sum(len(v) for v in live.values()) == len(event_ids(platform))

        assert replay(platform.engine, MODEL_TIMELINE, batch=9) == len(event_ids(platform))
        assert {m: timeline(platform.engine, m) for m in models} == live
        fraud_types = [row["type"] for row in live["fraud"]]
        assert fraud_types[0] in {"ModelRegistered", "ModelVersionRegistered"}


class TestWorker:
    def test_run_worker_publishes_projects_and_releases_its_lease(self, platform: Platform) -> None:
        import threading

        from modelplane.events.projections import MODEL_TIMELINE, timeline
        from modelplane.events.tables import event_relays
        from modelplane.events.worker import WorkerStats, run_worker

        register(platform, "a", "b")
        stop = threading.Event()
        relay = Relay(platform.engine, MemoryBus())

        def on_turn(stats: WorkerStats) -> None:
            if stats.handled[MODEL_TIMELINE.name] == 2:
                stop.set()

        stats = run_worker(
            platform.engine, relay.bus, relay=relay, consumers=[MODEL_TIMELINE.consumer],
            stop=stop, poll_s=0.01, on_turn=on_turn,
        )  # fmt: skip
        assert stats.published == 2
        assert [len(timeline(platform.engine, m)) for m in ("a", "b")] == [1, 1]
        with platform.engine.connect() as conn:
            assert conn.execute(event_relays.select()).mappings().one()["holder"] is None
