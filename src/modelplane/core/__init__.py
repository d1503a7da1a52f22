"""The core every capability stands on: messages, aggregates, the bus, the unit-of-work port."""

from modelplane.core.aggregate import Aggregate, SequencedAggregate
from modelplane.core.bus import MessageBus
from modelplane.core.messages import Command, Event
from modelplane.core.uow import UnitOfWork

__all__ = ["Aggregate", "Command", "Event", "MessageBus", "SequencedAggregate", "UnitOfWork"]
