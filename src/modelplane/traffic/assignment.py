"""Stable assignment of units (users, sessions, any key) to the variants of an experiment.

A unit maps to one of :data:`DEFAULT_BUCKETS` buckets by xxh3-64 of a length-prefixed encoding of
(experiment id, unit id) — never Python's ``hash()``, which changes between processes — and the
variants own contiguous bucket ranges in proportion to their weights (percentages summing to
100). The same unit therefore gets the same variant in every process and after restarts, and
a different experiment id reshuffles units independently.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from modelplane.errors import InvalidInput

__all__ = [
    "DEFAULT_BUCKETS",
    "Variant",
    "bucket",
    "choose",
    "thompson_weights",
    "validate_split",
]

DEFAULT_BUCKETS = 10_000
"""Buckets per experiment: a split is exact to 0.01 %."""

_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its name, the model reference it serves and its percentage."""

    name: str
    ref: str
    weight: float


def _encode(*parts: str) -> bytes:
    """Each part as an 8-byte big-endian length followed by its UTF-8 bytes (no ambiguity)."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(8, "big")
        out += raw
    return bytes(out)


def bucket(experiment_id: str, unit_id: str, buckets: int = DEFAULT_BUCKETS) -> int:
    """The bucket in ``[0, buckets)`` of ``unit_id`` in ``experiment_id``; the same everywhere."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise InvalidInput(f"buckets must be a positive integer, got {buckets!r}", field="buckets")
    for field, value in (("experiment_id", experiment_id), ("unit_id", unit_id)):
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    return xxhash.xxh3_64_intdigest(_encode(experiment_id, unit_id)) % buckets


def validate_split(variants: Sequence[Variant]) -> None:
    """Raise :class:`InvalidInput` naming the problem unless ``variants`` is a valid split.

    A valid split has at least two variants with distinct non-empty names, non-empty refs,
    finite non-negative weights, and weights summing to 100 (within 1e-6).
    """
    if len(variants) < 2:
        raise InvalidInput(
            f"an experiment needs at least 2 variants, got {len(variants)}", field="variants"
        )
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        if not isinstance(variant.name, str) or not variant.name:
            raise InvalidInput(f"variant {i} has an empty name", field=f"variants[{i}].name")
        if variant.name in seen:
            raise InvalidInput(
                f"duplicate variant name {variant.name!r}", field=f"variants[{i}].name"
            )
        seen.add(variant.name)
        if not isinstance(variant.ref, str) or not variant.ref:
            raise InvalidInput(
                f"variant {variant.name!r} has an empty model reference",
                field=f"variants[{i}].ref",
            )
        weight = variant.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidInput(
                f"variant {variant.name!r} weight must be a number, got {weight!r}",
                field=f"variants[{i}].weight",
            )
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInput(
                f"variant {variant.name!r} weight must be a finite percentage >= 0, got {weight!r}",
                field=f"variants[{i}].weight",
            )
    total = math.fsum(v.weight for v in variants)
    if abs(total - 100.0) > _WEIGHT_TOLERANCE:
        raise InvalidInput(
            f"variant weights must sum to 100, got {total:g}", field="variants.weight"
        )


def _upper_bounds(variants: Sequence[Variant], buckets: int) -> list[int]:
    """The exclusive upper bucket of each variant's contiguous range (cumulative weights)."""
    bounds: list[int] = []
    cumulative = 0.0
    for variant in variants:
        cumulative += variant.weight
        bounds.append(min(buckets, round(cumulative * buckets / 100.0)))
    bounds[-1] = buckets
    return bounds


def _variant_of(index: int, variants: Sequence[Variant], buckets: int) -> Variant:
    for variant, upper in zip(variants, _upper_bounds(variants, buckets), strict=True):
        if index < upper:
            return variant
    return variants[-1]  # unreachable: the last bound is ``buckets``


def choose(
    experiment_id: str,
    unit_id: str | None,
    variants: Sequence[Variant],
    *,
    rng: random.Random | None = None,
) -> Variant:
    """The variant that serves ``unit_id``; a random one (by weight) when ``unit_id`` is None.

    Raises :class:`InvalidInput` when ``variants`` is not a valid split (see
    :func:`validate_split`).
    """
    validate_split(variants)
    if unit_id is None:
        index = (rng if rng is not None else random).randrange(DEFAULT_BUCKETS)
    else:
        index = bucket(experiment_id, unit_id, DEFAULT_BUCKETS)
    return _variant_of(index, variants, DEFAULT_BUCKETS)


def thompson_weights(
    successes: Sequence[int],
    failures: Sequence[int],
    *,
    draws: int = 10_000,
    rng: np.random.Generator | None = None,
) -> list[float]:
    """Thompson-sampling split: per arm, the percentage of posterior draws in which it is best.

    Each arm's reward rate has a Beta(1 + successes, 1 + failures) posterior (uniform prior);
    ``draws`` joint samples are taken and each arm gets the share of samples it wins, as
    percentages summing to 100. Arms with no data get equal shares.
    """
    if len(successes) != len(failures):
        raise InvalidInput(
            f"successes and failures must have one entry per arm, got {len(successes)} "
            f"and {len(failures)}",
            field="failures",
        )
    if len(successes) < 2:
        raise InvalidInput(
            f"a bandit needs at least 2 arms, got {len(successes)}", field="successes"
        )
    for field, counts in (("successes", successes), ("failures", failures)):
        for i, count in enumerate(counts):
            if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
                raise InvalidInput(
                    f"{field}[{i}] must be a non-negative integer, got {count!r}",
                    field=f"{field}[{i}]",
                )
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise InvalidInput(f"draws must be a positive integer, got {draws!r}", field="draws")
    generator = rng if rng is not None else np.random.default_rng()
    a = 1.0 + np.asarray(successes, dtype=np.float64)
    b = 1.0 + np.asarray(failures, dtype=np.float64)
    samples = generator.beta(a, b, size=(draws, len(a)))
    wins = np.bincount(np.argmax(samples, axis=1), minlength=len(a))
    weights = [100.0 * int(w) / draws for w in wins]
    # Make the sum exactly 100 despite rounding: the largest arm absorbs the residue.
    largest = max(range(len(weights)), key=weights.__getitem__)
    weights[largest] = 100.0 - math.fsum(w for i, w in enumerate(weights) if i != largest)
    return weights
