"""The message bus: one handler per command, events to their handlers after commit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest

from modelplane.core.bus import MessageBus
from modelplane.core.messages import Command, Event


@dataclass(frozen=True)
class Ping(Command):
    text: str


@dataclass(frozen=True)
class Pinged(Event):
    model: str


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.committed = False

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def commit(self) -> None:
        self.committed = True

    def rollback(self) -> None:
        return None

    def collect_new_events(self) -> Iterator[Event]:
        while self.events:
            yield self.events.pop(0)


def test_command_goes_to_its_handler_and_result_comes_back() -> None:
    def handle(cmd: Ping, uow: Any) -> str:
        return cmd.text.upper()

    bus = MessageBus(FakeUnitOfWork, {Ping: handle})
    assert bus.handle(Ping("hi")) == "HI"


def test_unregistered_command_is_a_programming_error() -> None:
    bus = MessageBus(FakeUnitOfWork, {})
    with pytest.raises(TypeError, match="Ping"):
        bus.handle(Ping("x"))


def test_events_reach_every_handler_after_the_command() -> None:
    seen: list[str] = []

    def handle(cmd: Ping, uow: Any) -> None:
        uow.events.append(Pinged(model=cmd.text))

    bus = MessageBus(
        FakeUnitOfWork,
        {Ping: handle},
        {
            Pinged: [
                lambda e, uow: seen.append("a:" + e.model),
                lambda e, uow: seen.append("b:" + e.model),
            ]
        },
    )
    bus.handle(Ping("m"))
    assert seen == ["a:m", "b:m"]


def test_failing_event_handler_does_not_stop_the_others() -> None:
    seen: list[str] = []

    def bad(event: Pinged, uow: Any) -> None:
        raise ValueError("boom")

    def handle(cmd: Ping, uow: Any) -> None:
        uow.events.append(Pinged(model="m"))

    bus = MessageBus(
        FakeUnitOfWork, {Ping: handle}, {Pinged: [bad, lambda e, uow: seen.append("ok")]}
    )
    bus.handle(Ping("x"))
    assert seen == ["ok"]


def test_tests_see_swallowed_event_errors() -> None:
    def bad(event: Pinged, uow: Any) -> None:
        raise ValueError("boom")

    def handle(cmd: Ping, uow: Any) -> None:
        uow.events.append(Pinged(model="m"))

    bus = MessageBus(FakeUnitOfWork, {Ping: handle}, {Pinged: [bad]}, raise_on_event_error=True)
    with pytest.raises(ValueError, match="boom"):
        bus.handle(Ping("x"))


def test_event_payload_and_aggregate() -> None:
    event = Pinged(model="fraud")
    assert event.aggregate_type == "model"
    assert event.aggregate_id == "fraud"
    assert event.payload() == {"model": "fraud"}
    assert Pinged.type_name() == "Pinged"
