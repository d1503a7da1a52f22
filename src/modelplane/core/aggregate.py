"""The aggregate base: an entity that records the events of its changes.

Every change goes through a method of the aggregate, which checks the rules and calls
:meth:`Aggregate._record` with the event describing the change. The unit of work collects
``events`` on commit, writes them to the outbox in the same transaction as the state, and
clears the list.

Events are numbered per aggregate. A :class:`SequencedAggregate` counts its own events in
``event_seq`` and stores the count with its row, so the unit of work numbers new events without
reading the event log; a plain :class:`Aggregate` (a token, whose row has no such column) leaves
the numbering to the unit of work, which reads the highest stored number.

The base fields are keyword-only, so a subclass declares its own fields, with or without
defaults, in any order, and its positional constructor is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplane.core.messages import Event

__all__ = ["Aggregate", "SequencedAggregate"]


@dataclass(kw_only=True)
class Aggregate:
    """Appends the events of its changes to ``events`` (neither compared nor shown)."""

    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    def _record(self, event: Event) -> None:
        """Record a change: the unit of work writes ``event`` with the state on commit."""
        self.events.append(event)


@dataclass(kw_only=True)
class SequencedAggregate(Aggregate):
    """An aggregate that counts its events in ``event_seq``, stored with its row."""

    event_seq: int = 0

    def _record(self, event: Event) -> None:
        """Record a change and count it: ``event_seq`` is the number of ``event``."""
        super()._record(event)
        self.event_seq += 1
