"""The unit-of-work port: one database transaction around one command.

A handler enters the unit of work, loads aggregates through its repositories, calls one method,
and commits once. On commit the unit of work collects the events the aggregates appended and
writes them in the same transaction (transactional outbox); leaving without commit rolls back
everything, state and events alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self

from modelplane.core.messages import Event

__all__ = ["HasEvents", "UnitOfWork"]


class HasEvents(Protocol):
    """An aggregate: it appends the events of its changes to ``events``."""

    events: list[Event]


class UnitOfWork(Protocol):
    """What every concrete unit of work offers, whatever it stores state in."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def collect_new_events(self) -> Iterator[Event]: ...
