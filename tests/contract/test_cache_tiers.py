"""One contract for every cache tier: the in-process L1 (memory) and the shared L2 (Redis).

Both tiers store ``bytes`` under ``str`` keys for a fixed time-to-live; they differ in kind (L1
is synchronous, L2 awaits), so the contract drives each through a :class:`Harness` that awaits
either. Time passes without sleeping: the memory tier takes an injectable clock, and for Redis
the harness shortens the remaining ``PTTL`` of the test's own keys by the same amount (a key
whose lifetime reaches zero is removed, as Redis would expire it), so both answer to Redis' own
expiry semantics: a key lives exactly as long as the TTL its ``SET ... PX`` gave it.

The Redis tier runs against the real Redis of this machine, each test under its own key prefix;
a Redis that is not running skips those tests, or fails them with ``CI=true``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis
import redis.asyncio

from modelplane.cache.base import LocalTier, SharedTier
from modelplane.cache.memory import MemoryCache
from modelplane.cache.redis import RedisCache
from tests.clocks import FakeClock
from tests.conftest import REDIS_URL

# Tests let time pass in steps of TTL_S/4 or more: a Redis key also ages in real time while a
# test runs, so a "still there" check holds unless a test takes 15 s between two steps.
TTL_S = 60.0
LARGE = 1 << 20


class Harness(ABC):
    """One tier under test, awaited whatever its kind, with a way to let time pass."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def set(self, key: str, value: bytes) -> None: ...

    @abstractmethod
    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for every entry of this tier."""

    async def close(self) -> None:
        return None


OpenTier = Callable[[int], Awaitable[Harness]]


class CacheTierContract(ABC):
    """What every cache tier does; a subclass per back end supplies :meth:`open_tier`."""

    @abstractmethod
    async def open_tier(self, max_bytes: int) -> Harness:
        """A fresh, empty tier with ``TTL_S`` and (where the tier has one) a byte bound."""

    @pytest.fixture
    async def opened(self) -> AsyncIterator[OpenTier]:
        harnesses: list[Harness] = []

        async def open_one(max_bytes: int = 64 * LARGE) -> Harness:
            harness = await self.open_tier(max_bytes)
            harnesses.append(harness)
            return harness

        yield open_one
        for harness in harnesses:
            await harness.close()

    @pytest.fixture
    async def tier(self, opened: OpenTier) -> Harness:
        return await opened(64 * LARGE)

    @pytest.mark.anyio
    async def test_a_missing_key_is_none(self, tier: Harness) -> None:
        assert await tier.get("never-set") is None

    @pytest.mark.anyio
    async def test_get_returns_the_bytes_that_were_set(self, tier: Harness) -> None:
        value = bytes(range(256)) * 3  # every byte value, NUL and 0xff included
        await tier.set("k", value)
        assert await tier.get("k") == value

    @pytest.mark.anyio
    async def test_an_empty_value_is_a_hit_not_a_miss(self, tier: Harness) -> None:
        await tier.set("k", b"")
        assert await tier.get("k") == b""

    @pytest.mark.anyio
    async def test_a_large_value_round_trips_byte_for_byte(self, tier: Harness) -> None:
        value = os.urandom(LARGE)
        await tier.set("k", value)
        assert await tier.get("k") == value

    @pytest.mark.anyio
    async def test_keys_are_independent(self, tier: Harness) -> None:
        for i in range(50):
            await tier.set(f"key-{i}", f"value-{i}".encode())
        assert [await tier.get(f"key-{i}") for i in range(50)] == [
            f"value-{i}".encode() for i in range(50)
        ]
        assert await tier.get("key-50") is None

    @pytest.mark.anyio
    async def test_any_text_is_a_key(self, tier: Harness) -> None:
        keys = ["héllo", "a:b:c", "with space", "\U0001f600", "x" * 300]
        for key in keys:
            await tier.set(key, key.encode())
        assert [await tier.get(key) for key in keys] == [key.encode() for key in keys]

    @pytest.mark.anyio
    async def test_setting_again_replaces_the_value(self, tier: Harness) -> None:
        await tier.set("k", b"old" * 100)
        await tier.set("k", b"new")
        assert await tier.get("k") == b"new"

    @pytest.mark.anyio
    async def test_an_entry_expires_after_the_ttl(self, tier: Harness) -> None:
        await tier.set("k", b"v")
        await tier.advance(TTL_S / 2)
        assert await tier.get("k") == b"v"
        await tier.advance(TTL_S / 2)
        assert await tier.get("k") is None

    @pytest.mark.anyio
    async def test_reading_does_not_extend_the_ttl(self, tier: Harness) -> None:
        await tier.set("k", b"v")
        for _ in range(3):
            await tier.advance(TTL_S / 4)
            assert await tier.get("k") == b"v"
        await tier.advance(TTL_S / 4)
        assert await tier.get("k") is None

    @pytest.mark.anyio
    async def test_setting_again_restarts_the_ttl(self, tier: Harness) -> None:
        await tier.set("k", b"v1")
        await tier.advance(TTL_S / 2)
        await tier.set("k", b"v2")
        await tier.advance(TTL_S / 2)
        assert await tier.get("k") == b"v2"
        await tier.advance(TTL_S / 2)
        assert await tier.get("k") is None

    @pytest.mark.anyio
    async def test_an_oversized_value_is_stored_whole_or_not_at_all(self, opened: OpenTier) -> None:
        """A value beyond the tier's bound (the memory tier's ``max_bytes``; Redis has none of
        its own) never comes back truncated, never leaves the key's previous value to be served
        as if it were the new one, and never evicts another entry."""
        tier = await opened(4096)
        await tier.set("other", b"kept")
        await tier.set("k", b"old")
        big = b"z" * 10_000
        await tier.set("k", big)
        assert await tier.get("k") in (big, None)
        assert await tier.get("other") == b"kept"


class MemoryHarness(Harness):
    def __init__(self, max_bytes: int) -> None:
        self.clock = FakeClock()
        self.tier: LocalTier = MemoryCache(max_bytes, TTL_S, clock=self.clock)

    async def get(self, key: str) -> bytes | None:
        return self.tier.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self.tier.set(key, value)

    async def advance(self, seconds: float) -> None:
        self.clock.now += seconds


class TestMemoryTier(CacheTierContract):
    async def open_tier(self, max_bytes: int) -> Harness:
        return MemoryHarness(max_bytes)


class RedisHarness(Harness):
    """A :class:`RedisCache` under its own prefix, and a second client to age its keys."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tier: SharedTier = RedisCache(REDIS_URL, prefix=prefix, ttl_s=TTL_S, timeout_s=2.0)
        self._admin = redis.asyncio.Redis.from_url(REDIS_URL, socket_timeout=2)

    async def get(self, key: str) -> bytes | None:
        return await self.tier.get(key)

    async def set(self, key: str, value: bytes) -> None:
        await self.tier.set(key, value)

    async def advance(self, seconds: float) -> None:
        """Shorten the remaining lifetime of each of this prefix's keys by ``seconds``: a key
        left with none is removed (``PEXPIRE`` with a non-positive time deletes it)."""
        elapsed_ms = round(seconds * 1000)
        async for name in self._admin.scan_iter(match=f"{self.prefix}*"):
            remaining_ms = await self._admin.pttl(name)
            if remaining_ms >= 0:  # -1: no TTL (then the key never expires), -2: gone
                await self._admin.pexpire(name, remaining_ms - elapsed_ms)

    async def close(self) -> None:
        try:
            await self.tier.close()
        finally:
            await self._admin.aclose()


class TestRedisTier(CacheTierContract):
    @pytest.fixture(autouse=True)
    def _prefix(self, redis_prefix: str) -> None:
        self.prefix = redis_prefix

    async def open_tier(self, max_bytes: int) -> Harness:
        del max_bytes  # Redis' own memory limit is the server's, not the tier's
        return RedisHarness(self.prefix)
