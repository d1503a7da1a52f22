"""The routing table serving replicas follow: which arm a model's bare-name request goes to.

Built from the database by :meth:`modelplane.traffic.views.TrafficViews.routing_table` every
poll (a running server picks up a new experiment, a rollout's next step or a deploy within
seconds) and consulted on the request path with no I/O: an arm is a bucket lookup.

A rollout's arms are ordered candidate first and salted by the rollout's id (not its step), so
as the candidate's weight grows the units it already had stay with it.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Literal

from modelplane.traffic.assignment import DEFAULT_BUCKETS, bucket
from modelplane.traffic.model import Arm

__all__ = ["Keep", "Route", "RoutingTable", "ShadowRoute"]


@dataclass(frozen=True)
class Route:
    """How one model's bare-name traffic is split now."""

    model: str
    source: Literal["experiment", "rollout"]
    name: str  # the experiment's name or the rollout's key (fraud#7)
    salt: str  # hashed with the unit id
    subject: str  # where its live counters go
    arms: tuple[Arm, ...]
    _bounds: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        bounds: list[int] = []
        cumulative = 0.0
        for arm in self.arms:
            cumulative += arm.weight
            bounds.append(min(DEFAULT_BUCKETS, round(cumulative * DEFAULT_BUCKETS / 100.0)))
        if bounds:
            bounds[-1] = DEFAULT_BUCKETS
        object.__setattr__(self, "_bounds", tuple(bounds))

    def pick(self, unit_id: str | None, rng: random.Random | None = None) -> Arm:
        """The arm of ``unit_id`` (stable everywhere), or a random one by weight without one."""
        if unit_id is None:
            index = (rng or random).randrange(DEFAULT_BUCKETS)
        else:
            index = bucket(self.salt, unit_id, DEFAULT_BUCKETS)
        return self.arms[bisect.bisect_right(self._bounds, index)]


@dataclass(frozen=True)
class ShadowRoute:
    """Mirror ``percent`` % of a model's requests to version ``candidate``, off the request path."""

    model: str
    name: str
    subject: str
    variant: str
    candidate: int
    percent: float

    def sample(self, rng: random.Random | None = None) -> bool:
        return (rng or random).random() * 100.0 < self.percent


@dataclass(frozen=True)
class Keep:
    """A blue-green deploy's blue version, kept loaded until ``until`` (epoch seconds)."""

    model: str
    version: int
    until: float


@dataclass(frozen=True)
class RoutingTable:
    routes: dict[str, Route] = field(default_factory=dict)
    shadows: dict[str, ShadowRoute] = field(default_factory=dict)
    keep: tuple[Keep, ...] = ()
