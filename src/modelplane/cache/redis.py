"""The shared L2: Redis, reached through ``redis.asyncio`` with tight timeouts and a breaker.

The cache must never make a prediction slower than computing it, nor fail one. So every call
is bounded by ``timeout_s`` (socket timeouts plus an overall deadline, redis-py's own retries
off), and every failure — refused connection, timeout, protocol or server error — surfaces as
:class:`~modelplane.cache.base.CacheUnavailable`. After ``failure_threshold`` consecutive failures
the breaker opens: calls fail at once, without touching the network, for ``backoff_s``
(doubling on each failed probe up to ``max_backoff_s``); then a single call probes Redis and
closes the breaker if it succeeds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from modelplane.cache.base import CacheUnavailable

__all__ = ["RedisCache"]

T = TypeVar("T")

# Delete the lock only while it still holds our token: a lock that expired and was taken by
# another replica is not ours to release.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisCache:
    """Values and short locks under ``prefix`` in one Redis database: a
    :class:`~modelplane.cache.base.SharedTier`.

    ``get``/``set`` store values for ``ttl_s``; ``acquire_lock``/``release_lock`` guard the
    computation of one key across replicas (``SET NX PX lock_ttl_ms``, released by a
    compare-and-delete on this instance's token). Any failure raises ``CacheUnavailable``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mp:pred:",
        ttl_s: float,
        timeout_s: float = 0.05,
        lock_ttl_ms: int = 2000,
        failure_threshold: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or timeout_s <= 0 or lock_ttl_ms <= 0:
            raise ValueError("ttl_s, timeout_s and lock_ttl_ms must be positive")
        self.prefix = prefix
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.timeout_s = timeout_s
        self.lock_ttl_ms = lock_ttl_ms
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._release = self._client.register_script(_RELEASE)
        self._token = uuid.uuid4().hex.encode()
        self._clock = clock
        self._failure_threshold = max(1, failure_threshold)
        self._base_backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = backoff_s
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._client.get(self.prefix + key))
        if value is None or isinstance(value, bytes):
            return value
        raise CacheUnavailable(f"Redis returned {type(value).__name__}, expected bytes")

    async def set(self, key: str, value: bytes) -> None:
        await self._call(lambda: self._client.set(self.prefix + key, value, px=self.ttl_ms))

    async def acquire_lock(self, key: str) -> bool:
        """True if this instance now holds the compute lock of ``key`` (for ``lock_ttl_ms``)."""
        lock = self._lock_key(key)
        acquired = await self._call(
            lambda: self._client.set(lock, self._token, nx=True, px=self.lock_ttl_ms)
        )
        return bool(acquired)

    async def release_lock(self, key: str) -> None:
        """Release the compute lock of ``key`` if this instance still holds it."""
        lock = self._lock_key(key)
        await self._call(lambda: self._release(keys=[lock], args=[self._token]))

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except Exception as exc:
            raise CacheUnavailable(f"closing Redis: {type(exc).__name__}: {exc}") from exc

    @property
    def available(self) -> bool:
        """False while the breaker is open (calls fail fast without touching Redis)."""
        return self._failures < self._failure_threshold or self._clock() >= self._open_until

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}{key}:lock"

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        probe = self._admit()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await command()
        except Exception as exc:  # any failure at all: the cache is optional, never fatal
            self._failed(probe)
            raise CacheUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled: says nothing about Redis
            if probe:
                self._probing = False
            raise
        self._succeeded()
        return result

    def _admit(self) -> bool:
        """Let a call through (returning whether it is the probe) or fail it fast."""
        if self._failures < self._failure_threshold:
            return False
        if self._clock() >= self._open_until and not self._probing:
            self._probing = True
            return True
        raise CacheUnavailable("Redis is skipped for a while after repeated failures")

    def _failed(self, probe: bool) -> None:
        self._failures += 1
        if probe:
            self._probing = False
            self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
        if self._failures >= self._failure_threshold:
            self._open_until = self._clock() + self._backoff_s

    def _succeeded(self) -> None:
        self._failures = 0
        self._probing = False
        self._backoff_s = self._base_backoff_s
