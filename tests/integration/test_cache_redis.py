"""The prediction cache against the real Redis of this machine: L2, cross-replica locks, outages.

Each test writes under its own prefix ``mp:test:<uuid>:`` and deletes its keys afterwards. A
Redis "that stops answering" is simulated with a real TCP proxy started by the test, which then
swallows every byte in both directions.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from modelplane.cache import CacheUnavailable, MemoryCache, PredictionCache
from modelplane.cache.redis import RedisCache
from tests.clocks import FakeClock
from tests.conftest import REDIS_URL

# Far above the 50 ms Redis timeout, far below redis-py's 5 s default: proves nothing hangs.
PROMPTLY_S = 2.0


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, tier: str, outcome: str) -> None:
        self.seen.append((tier, outcome))

    def count(self, tier: str, outcome: str) -> int:
        return self.seen.count((tier, outcome))


class Counted:
    """A compute function shared by "replicas": counts calls, takes ``delay_s``."""

    def __init__(
        self, value: bytes = b"value", delay_s: float = 0.0, gate: asyncio.Event | None = None
    ) -> None:
        self.value = value
        self.delay_s = delay_s
        self.gate = gate  # when given, the call ends once it is set (not after delay_s)
        self.calls = 0
        self.error: Exception | None = None
        self.started = asyncio.Event()  # set by the first call: a replica is computing

    async def __call__(self) -> bytes:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


class BlackholeProxy:
    """A TCP proxy to Redis; ``answering = False`` makes it swallow every byte both ways."""

    def __init__(self) -> None:
        target = urlparse(REDIS_URL)
        self.target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.answering = True
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{urlparse(REDIS_URL).path}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))
        self._handlers.discard(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if self.answering:
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()
            self._writers.discard(sink)


@pytest.fixture
async def proxy() -> AsyncIterator[BlackholeProxy]:
    p = BlackholeProxy()
    await p.start()
    yield p
    await p.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _replica(url: str, prefix: str, events: Events | None = None, **l2: Any) -> PredictionCache:
    return PredictionCache(
        MemoryCache(1 << 20, 60), RedisCache(url, prefix=prefix, ttl_s=60, **l2), on_event=events
    )


class TestRedisCache:
    @pytest.mark.anyio
    async def test_set_then_get_with_ttl(self, prefix: str) -> None:
        l2 = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60)
        try:
            assert await l2.get("k") is None
            await l2.set("k", b"\x00binary\xff")
            assert await l2.get("k") == b"\x00binary\xff"
        finally:
            await l2.close()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert 0 < client.pttl(f"{prefix}k") <= 60_000
        finally:
            client.close()

    @pytest.mark.anyio
    async def test_only_the_holder_releases_a_lock(self, prefix: str) -> None:
        a = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60)
        b = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60)
        try:
            assert await a.acquire_lock("k")
            assert not await b.acquire_lock("k")
            await b.release_lock("k")  # not b's lock: stays
            assert not await b.acquire_lock("k")
            await a.release_lock("k")
            assert await b.acquire_lock("k")
        finally:
            await a.close()
            await b.close()

    @pytest.mark.anyio
    async def test_a_lock_expires_after_its_ttl(self, prefix: str) -> None:
        a = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60, lock_ttl_ms=5000)
        b = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert await a.acquire_lock("k")
            lock = f"{prefix}k:lock"
            remaining_ms = client.pttl(lock)
            assert 0 < remaining_ms <= 5000
            # Let the lock's lifetime pass without sleeping: a non-positive PEXPIRE is Redis
            # expiring the key now.
            client.pexpire(lock, remaining_ms - 5000)
            assert await b.acquire_lock("k")
        finally:
            await a.close()
            await b.close()
            client.close()

    @pytest.mark.anyio
    async def test_a_closed_port_raises_cache_unavailable_then_fails_fast(self) -> None:
        l2 = RedisCache(
            f"redis://127.0.0.1:{_closed_port()}/0", ttl_s=60, failure_threshold=2, backoff_s=60
        )
        try:
            for _ in range(2):
                with pytest.raises(CacheUnavailable, match="Redis"):
                    await l2.get("k")
            assert not l2.available
            with pytest.raises(CacheUnavailable, match="skipped"):
                await l2.get("k")
        finally:
            await l2.close()


class TestTieredWithRedis:
    @pytest.mark.anyio
    async def test_an_l2_hit_fills_l1(self, prefix: str) -> None:
        first = _replica(REDIS_URL, prefix)
        events = Events()
        second = _replica(REDIS_URL, prefix, events)
        compute = Counted()
        try:
            assert await first.get_or_compute("k", compute) == (b"value", False)
            assert await second.get_or_compute("k", compute) == (b"value", True)
            assert events.seen == [("l1", "miss"), ("l2", "hit"), ("l1", "set")]
            assert second.l1 is not None
            assert second.l1.get("k") == b"value"
            assert await second.get_or_compute("k", compute) == (b"value", True)
            assert events.seen[-1] == ("l1", "hit")
            assert compute.calls == 1
        finally:
            await first.close()
            await second.close()

    @pytest.mark.anyio
    async def test_concurrent_misses_on_two_replicas_compute_once(self, prefix: str) -> None:
        events_a, events_b = Events(), Events()
        a = _replica(REDIS_URL, prefix, events_a)
        b = _replica(REDIS_URL, prefix, events_b)
        compute = Counted(delay_s=0.1)
        try:
            results = await asyncio.gather(
                *(a.get_or_compute("k", compute) for _ in range(20)),
                *(b.get_or_compute("k", compute) for _ in range(20)),
            )
        finally:
            await a.close()
            await b.close()
        assert compute.calls == 1
        assert {value for value, _ in results} == {b"value"}
        peers = events_a.count("flight", "peer") + events_b.count("flight", "peer")
        assert peers == 1  # one replica computed, the other waited for its answer
        assert events_a.count("flight", "shared") == events_b.count("flight", "shared") == 19

    @pytest.mark.anyio
    async def test_a_waiting_replica_computes_when_the_lock_holder_fails(self, prefix: str) -> None:
        a = _replica(REDIS_URL, prefix)
        b = _replica(REDIS_URL, prefix)
        # a fails only once b has found a's lock and waits for its peer: the path under test
        # is taken whatever the machine's speed.
        b_waits = asyncio.Event()
        failing = Counted(gate=b_waits)
        failing.error = RuntimeError("replica a's model failed")
        healthy = Counted(b"from b")
        assert isinstance(b.l2, RedisCache)
        acquire = b.l2.acquire_lock

        async def acquire_then_signal(key: str) -> bool:
            locked = await acquire(key)
            if not locked:
                b_waits.set()
            return locked

        b.l2.acquire_lock = acquire_then_signal  # type: ignore[method-assign]
        try:
            task_a = asyncio.ensure_future(a.get_or_compute("k", failing))
            # Until a holds the lock and is computing (the bound only ends a hung test).
            await asyncio.wait_for(failing.started.wait(), timeout=60)
            value_b = await b.get_or_compute("k", healthy)
            with pytest.raises(RuntimeError, match="replica a"):
                await task_a
        finally:
            await a.close()
            await b.close()
        assert value_b == (b"from b", False)
        assert (failing.calls, healthy.calls) == (1, 1)

    @pytest.mark.anyio
    async def test_a_waiting_replica_computes_anyway_after_wait_for_peer_ms(
        self, prefix: str
    ) -> None:
        holder = RedisCache(REDIS_URL, prefix=prefix, ttl_s=60)
        waiting = PredictionCache(
            None, RedisCache(REDIS_URL, prefix=prefix, ttl_s=60), wait_for_peer_ms=60
        )
        compute = Counted()
        try:
            assert await holder.acquire_lock("k")  # a peer that never answers
            assert await waiting.get_or_compute("k", compute) == (b"value", False)
        finally:
            await holder.close()
            await waiting.close()
        assert compute.calls == 1

    @pytest.mark.anyio
    async def test_redis_that_stops_answering_mid_test_degrades_to_uncached(
        self, prefix: str, proxy: BlackholeProxy
    ) -> None:
        events = Events()
        clock = FakeClock()
        cache = PredictionCache(
            None,
            RedisCache(proxy.url, prefix=prefix, ttl_s=60, timeout_s=0.05, clock=clock),
            on_event=events,
        )
        compute = Counted()
        try:
            assert await cache.get_or_compute("before", compute) == (b"value", False)
            assert events.count("l2", "set") == 1

            proxy.answering = False
            started = time.monotonic()
            for i in range(10):
                assert await cache.get_or_compute(f"during-{i}", compute) == (b"value", False)
            # A key stored before the outage is simply recomputed: no hang, no error.
            assert await cache.get_or_compute("before", compute) == (b"value", False)
            assert time.monotonic() - started < PROMPTLY_S
            assert compute.calls == 12
            assert events.count("l2", "error") == 11
            # The breaker stopped dialling a dead Redis after a few failures.
            assert isinstance(cache.l2, RedisCache)
            assert not cache.l2.available
            connections = proxy.connections
            await cache.get_or_compute("skipped", compute)
            assert proxy.connections == connections

            proxy.answering = True
            clock.now += 5.0  # past the breaker's backoff: the next call probes Redis
            assert await cache.get_or_compute("before", compute) == (b"value", True)
            assert events.seen[-1] == ("l2", "hit")
        finally:
            await cache.close()

    @pytest.mark.anyio
    async def test_concurrent_requests_survive_a_silent_redis(
        self, prefix: str, proxy: BlackholeProxy
    ) -> None:
        events = Events()
        proxy.answering = False
        cache = _replica(proxy.url, prefix, events, timeout_s=0.05)
        compute = Counted()
        started = time.monotonic()
        try:
            results = await asyncio.gather(
                *(cache.get_or_compute(f"k{i % 5}", compute) for i in range(50))
            )
        finally:
            await cache.close()
        assert time.monotonic() - started < PROMPTLY_S
        assert {value for value, _ in results} == {b"value"}
        assert compute.calls == 5  # single-flight still holds without Redis
        assert events.count("l2", "error") == 5

    @pytest.mark.anyio
    async def test_a_redis_url_on_a_closed_port_degrades_to_uncached(self, prefix: str) -> None:
        events = Events()
        cache = _replica(f"redis://127.0.0.1:{_closed_port()}/0", prefix, events)
        compute = Counted()
        started = time.monotonic()
        try:
            for _ in range(2):
                results = await asyncio.gather(
                    *(cache.get_or_compute("k", compute) for _ in range(5))
                )
                assert {value for value, _ in results} == {b"value"}
        finally:
            await cache.close()
        assert time.monotonic() - started < PROMPTLY_S
        assert compute.calls == 1  # the second round is an L1 hit
        assert events.count("l2", "error") == 1
        assert events.count("l1", "hit") == 5
