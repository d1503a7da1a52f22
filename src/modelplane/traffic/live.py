"""Live counters of routed traffic: what each arm of an experiment or rollout did.

A serving replica records into :class:`LiveStats` on its request path (a few additions, no I/O,
no lock: it runs on the event loop) and hands :meth:`LiveStats.drain` to the store every second;
the store adds the deltas to totals shared by all replicas. Latencies go into log-spaced buckets
(5 % wide from 10 µs) so p50/p99 of all replicas together are a sum of histograms away, with at
most 5 % error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

__all__ = [
    "COUNTER_FIELDS",
    "Counters",
    "LiveStats",
    "bucket_upper_ms",
    "latency_bucket",
    "quantile_ms",
    "slower_than",
]

_BASE_MS = 0.01
_GROWTH = 1.05
_LOG_GROWTH = math.log(_GROWTH)
BUCKETS = 400  # 0.01 ms · 1.05^400 ≈ 3·10^6 ms: everything above lands in the last bucket


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a latency: bucket ``b`` holds ``(upper(b-1), upper(b)]``."""
    if not ms > _BASE_MS:  # also NaN
        return 0
    return min(BUCKETS - 1, math.ceil(math.log(ms / _BASE_MS) / _LOG_GROWTH - 1e-9))


def bucket_upper_ms(bucket: int) -> float:
    return _BASE_MS * _GROWTH**bucket


def quantile_ms(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile of a latency histogram (upper edge of its bucket); None when empty."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(buckets):
        seen += buckets[b]
        if seen >= rank:
            return bucket_upper_ms(b)
    return bucket_upper_ms(max(buckets))


def slower_than(buckets: dict[int, int], bound_ms: float) -> int:
    """How many recorded latencies are certainly above ``bound_ms`` (whole buckets above it)."""
    return sum(n for b, n in buckets.items() if b > 0 and bucket_upper_ms(b - 1) >= bound_ms)


@dataclass
class Counters:
    """Totals of one (subject, variant). Every numeric field adds up across replicas."""

    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    latency_sumsq: float = 0.0
    outcome_n: int = 0
    outcome_sum: float = 0.0
    outcome_sumsq: float = 0.0
    shadow_compared: int = 0
    shadow_agree: int = 0
    shadow_absdiff: float = 0.0
    #: comparisons that measured a difference (float outputs); labels only agree or not
    shadow_diffs: int = 0
    shadow_errors: int = 0
    shadow_dropped: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, other: Counters) -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def latency_mean_ms(self) -> float | None:
        ok = self.requests - self.errors
        return self.latency_sum / ok if ok > 0 else None

    def p(self, q: float) -> float | None:
        return quantile_ms(self.buckets, q)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {name: getattr(self, name) for name in COUNTER_FIELDS}
        out["error_rate"] = self.error_rate
        out["latency_p50_ms"] = self.p(0.5)
        out["latency_p99_ms"] = self.p(0.99)
        return out


COUNTER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Counters) if f.name != "buckets")


class LiveStats:
    """Per-process deltas since the last :meth:`drain`. Call from one thread (the event loop)."""

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, str], Counters] = {}

    def _get(self, subject: str, variant: str) -> Counters:
        key = (subject, variant)
        counters = self._deltas.get(key)
        if counters is None:
            counters = self._deltas[key] = Counters()
        return counters

    def request(self, subject: str, variant: str, latency_ms: float, *, ok: bool) -> None:
        """One routed request: its latency (successful ones only) and whether it failed."""
        c = self._get(subject, variant)
        c.requests += 1
        if not ok:
            c.errors += 1
            return
        c.latency_sum += latency_ms
        c.latency_sumsq += latency_ms * latency_ms
        b = latency_bucket(latency_ms)
        c.buckets[b] = c.buckets.get(b, 0) + 1

    def outcome(self, subject: str, variant: str, value: float) -> None:
        """A label-derived outcome (1 correct / 0 wrong) or a reward for one of its requests."""
        c = self._get(subject, variant)
        c.outcome_n += 1
        c.outcome_sum += value
        c.outcome_sumsq += value * value

    def shadow(
        self,
        subject: str,
        variant: str,
        latency_ms: float,
        *,
        ok: bool,
        agree: bool | None = None,
        absdiff: float | None = None,
    ) -> None:
        """One mirrored call: its latency, and how its answer compared with the primary's."""
        c = self._get(subject, variant)
        c.requests += 1
        if not ok:
            c.errors += 1
            c.shadow_errors += 1
            return
        c.latency_sum += latency_ms
        c.latency_sumsq += latency_ms * latency_ms
        b = latency_bucket(latency_ms)
        c.buckets[b] = c.buckets.get(b, 0) + 1
        c.shadow_compared += 1
        if agree:
            c.shadow_agree += 1
        if absdiff is not None:
            c.shadow_absdiff += absdiff
            c.shadow_diffs += 1

    def shadow_dropped(self, subject: str, variant: str) -> None:
        self._get(subject, variant).shadow_dropped += 1

    def drain(self) -> dict[tuple[str, str], Counters]:
        """Everything recorded since the last drain; the deltas start again from zero."""
        deltas, self._deltas = self._deltas, {}
        return deltas

    def restore(self, deltas: dict[tuple[str, str], Counters]) -> None:
        """Put back deltas a failed store could not take (they are sent with the next drain)."""
        for key, counters in deltas.items():
            self._get(*key).add(counters)
