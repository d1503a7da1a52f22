"""The in-process message bus: each command to its one handler, each event to its handlers.

Handler registration is data (``{CommandType: handler}``, ``{EventType: [handlers]}``), built by
:mod:`modelplane.bootstrap`, which also injects each handler's dependencies. Command errors
propagate to the caller; an event handler's error is logged and does not undo the command
(unless the bus is built with ``raise_on_event_error=True``, as tests do, so no error is
swallowed silently).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelplane.core.messages import Command, Event
from modelplane.core.uow import UnitOfWork

__all__ = ["CommandHandler", "EventHandler", "MessageBus"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[Any, Any], Any]
"""A command's handler: ``(command, unit of work) -> result``. Both parameters are ``Any`` in the
table because each handler names its own command class and its capability's unit-of-work
protocol (``RegistryUnitOfWork``…), and a callable taking a narrower parameter is not a
callable taking the wider one; the table's keys (``type[Command]``) and each handler's own
signature carry the types, :mod:`modelplane.bootstrap` checks one handler per command."""

EventHandler = Callable[[Any, Any], None]
"""An event's handler: ``(event, unit of work) -> None``, typed as :data:`CommandHandler`."""


class MessageBus:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        command_handlers: Mapping[type[Command], CommandHandler],
        event_handlers: Mapping[type[Event], Sequence[EventHandler]] | None = None,
        *,
        raise_on_event_error: bool = False,
    ) -> None:
        self._uow_factory = uow_factory
        self._commands = dict(command_handlers)
        self._events = {k: list(v) for k, v in (event_handlers or {}).items()}
        self._raise_on_event_error = raise_on_event_error

    def handle(self, command: Command) -> Any:
        """Run ``command`` through its handler; return what the handler returns."""
        try:
            handler = self._commands[type(command)]
        except KeyError:
            raise TypeError(f"no handler registered for {type(command).__name__}") from None
        uow = self._uow_factory()
        result = handler(command, uow)
        self._dispatch(list(uow.collect_new_events()))
        return result

    def _dispatch(self, queue: list[Event]) -> None:
        while queue:
            event = queue.pop(0)
            for handler in self._events.get(type(event), ()):
                uow = self._uow_factory()
                try:
                    handler(event, uow)
                except Exception:
                    log.exception("event handler %r failed on %r", handler, event)
                    if self._raise_on_event_error:
                        raise
                    continue
                queue.extend(uow.collect_new_events())

    def handles(self, command_type: type[Command]) -> bool:
        return command_type in self._commands
