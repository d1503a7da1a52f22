"""The core every capability stands on: messages, the message bus, the unit-of-work port."""

from modelplane.core.bus import MessageBus
from modelplane.core.messages import Command, Event
from modelplane.core.uow import UnitOfWork

__all__ = ["Command", "Event", "MessageBus", "UnitOfWork"]
