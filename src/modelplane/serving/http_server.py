"""uvicorn's HTTP protocol (httptools), plus one thing our batcher needs from it.

**Is this request the only one?** A prediction on the event loop is deferred one loop turn so
that the requests read in the same turn join its batch (``batcher.py``). When the request is the
only one the server holds, nothing can join it, and the deferral costs two extra loop turns (an
``epoll_wait`` each, a future, a task wake-up) for nothing: one client at a time pays them on
every request. uvicorn knows: its shared ``ServerState.tasks`` holds every HTTP request task
from the moment its headers are parsed — including those read in this loop turn whose tasks have
not started yet, which is exactly what a request's own count cannot see (each task runs to its
``await`` before the next one starts). :class:`ServingHttpProtocol` is uvicorn's own protocol,
unchanged, that hands that set to this module when a connection opens; :func:`sole_request` reads
its size. It is a hint: unknown (another server, the in-process test transport, gRPC) counts as
"not alone", which keeps the deferral, the behaviour without the hint. It is read when the
request is decoded; if another request comes in while this one awaits something (a cold model
load, the Redis cache), the worst that happens is that this one runs alone when it could have
joined a batch — the batcher itself still refuses the shortcut when anything is queued or
running. One ``ServingHttpProtocol`` server per process (``modelplane serve`` runs one, in each
worker): the set of the last one to open a connection is the one read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ServingHttpProtocol", "sole_request"]

_tasks: Sized | None = None


def sole_request() -> bool:
    """True when the server holds just one HTTP request (the caller's own) — read, not yet
    answered; False when it holds more or when no :class:`ServingHttpProtocol` runs."""
    return _tasks is not None and len(_tasks) == 1


class ServingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; it only shares the server's request-task set (see above)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        global _tasks
        _tasks = server_state.tasks
