"""The cache's port: what a tier offers, what it raises, and where the cache reports events.

Every other module of :mod:`modelplane.cache` imports this one and nothing "above" it::

    base        CacheUnavailable, EventSink, LocalTier, SharedTier
    memory      MemoryCache   (a LocalTier)      -> base
    redis       RedisCache    (a SharedTier)     -> base
    tiered      PredictionCache (L1 + L2)        -> base
    __init__    open_cache: picks the tiers      -> base, memory, tiered (redis lazily)

There are two tier protocols, not one, because the tiers differ in kind and not only in back end:
the in-process L1 is read on every request and never awaits (so one event loop shares it without
locks), while the shared L2 is remote, awaits, may fail, and also elects the one replica that
computes a key. Both store ``bytes`` under ``str`` keys for a fixed time-to-live;
``tests/contract/test_cache_tiers.py`` holds them to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["CacheUnavailable", "EventSink", "LocalTier", "SharedTier"]

#: ``on_event(tier, outcome)``: how the cache reports hits, misses, sets and errors (see
#: :mod:`modelplane.cache.tiered` for the outcomes).
EventSink = Callable[[str, str], None]


class CacheUnavailable(Exception):
    """The shared cache failed or was skipped; the prediction goes on uncached.

    Deliberately not a :class:`~modelplane.errors.ModelplaneError`: it never reaches a client.
    """


class LocalTier(Protocol):
    """An in-process tier (L1): synchronous, never fails, bounded by the bytes it holds.

    ``get`` answers ``None`` for a key that is missing or expired; ``set`` stores a value for the
    tier's time-to-live, or not at all if it could never fit.
    """

    @property
    def bytes_used(self) -> int: ...

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...


class SharedTier(Protocol):
    """A tier shared between replicas (L2): every call may raise :class:`CacheUnavailable`.

    ``get``/``set`` as in :class:`LocalTier`; ``acquire_lock`` is true when this instance now
    holds the short compute lock of ``key`` (held by one instance at a time, expiring by itself),
    and ``release_lock`` releases it only if this instance still holds it.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def acquire_lock(self, key: str) -> bool: ...

    async def release_lock(self, key: str) -> None: ...

    async def close(self) -> None: ...
