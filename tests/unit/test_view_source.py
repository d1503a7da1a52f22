"""The serving view's source reads the routing table before the models.

A promotion ends the route and moves ``champion`` in one transaction. Whatever moment it commits
at between the source's reads, the snapshot must never say "old champion and no route" (the bare
name would go back to the old version until the next refresh). The fakes below commit the
promotion right after the first read the source makes, whichever it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelplane.bootstrap.serving import PlatformViewSource


@dataclass
class World:
    """The database: the champion and whether a rollout still routes the bare name."""

    champion: int = 1
    routed: bool = True
    reads: list[str] = field(default_factory=list)

    def read(self, what: str) -> None:
        """Called as a read returns what it saw."""
        self.reads.append(what)
        if len(self.reads) == 1:  # the promotion commits right after the first read
            self.champion, self.routed = 3, False


@dataclass
class Registry:
    world: World

    def get_model(self, name: str) -> Any:
        model = _Model(name=name, aliases={"champion": self.world.champion}, tags={})
        self.world.read("models")
        return model

    def list_versions(self, name: str, **_: Any) -> Any:
        return _Page(items=[_Version(version=3)])


@dataclass
class Traffic:
    world: World

    def routing_table(self) -> Any:
        table = {"fraud": "route"} if self.world.routed else {}
        self.world.read("routing")
        return table


@dataclass
class _Model:
    name: str
    aliases: dict[str, int]
    tags: dict[str, str]


@dataclass
class _Version:
    version: int


@dataclass
class _Page:
    items: list[_Version]


def source(world: World) -> PlatformViewSource:
    src = PlatformViewSource.__new__(PlatformViewSource)
    src._registry = Registry(world)  # type: ignore[assignment]
    src._traffic = Traffic(world)  # type: ignore[assignment]
    return src


def test_a_promotion_between_the_reads_never_shows_the_old_champion_without_its_route() -> None:
    world = World()
    snap = source(world).snapshot(["fraud"])
    assert world.reads[0] == "routing"
    champion = snap.models["fraud"].aliases["champion"]
    routed = "fraud" in snap.routing  # type: ignore[operator]
    assert (champion, routed) != (1, False)
    assert (champion, routed) == (3, True)  # the route (at 100 %) still answers with 3


def test_a_promotion_before_the_snapshot_shows_the_new_champion_and_no_route() -> None:
    world = World(champion=3, routed=False)
    world.reads.append("earlier")  # the promotion is already committed
    snap = source(world).snapshot(["fraud"])
    assert snap.models["fraud"].aliases["champion"] == 3
    assert "fraud" not in snap.routing  # type: ignore[operator]
