"""The prediction cache: an in-process L1 (LRU + TTL), an optional shared Redis L2, and
single-flight so that concurrent identical misses compute once.

::

    cache = open_cache(l1_bytes=64 << 20, ttl_s=300, redis_url="redis://127.0.0.1:6379/0")
    key = prediction_key("fraud", 3, {"x": batch})
    body, hit = await cache.get_or_compute(key, compute_encoded_outputs)
    outputs = decode_outputs(body)

``import modelplane.cache`` does not import redis: :func:`open_cache` imports it only when
given a ``redis_url``.
"""

from __future__ import annotations

from modelplane.cache.base import CacheUnavailable, EventSink
from modelplane.cache.codec import decode_outputs, encode_outputs
from modelplane.cache.keys import prediction_key
from modelplane.cache.memory import MemoryCache
from modelplane.cache.tiered import PredictionCache

__all__ = [
    "CacheUnavailable",
    "EventSink",
    "MemoryCache",
    "PredictionCache",
    "decode_outputs",
    "encode_outputs",
    "open_cache",
    "prediction_key",
]


def open_cache(
    *,
    l1_bytes: int = 64 << 20,
    ttl_s: float = 300,
    redis_url: str | None = None,
    on_event: EventSink | None = None,
) -> PredictionCache:
    """A prediction cache with an L1 of ``l1_bytes`` (0: none) and, given a URL, a Redis L2.

    Building it does no I/O: Redis is first contacted by the first lookup, and a Redis that is
    down only makes lookups miss.
    """
    l1 = MemoryCache(l1_bytes, ttl_s) if l1_bytes > 0 else None
    l2 = None
    if redis_url is not None:
        from modelplane.cache.redis import RedisCache

        l2 = RedisCache(redis_url, ttl_s=ttl_s)
    return PredictionCache(l1, l2, on_event=on_event)
