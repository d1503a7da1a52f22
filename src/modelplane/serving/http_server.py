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

**Workers die with their server.** ``modelplane serve --workers N`` runs N uvicorn worker
processes under a supervisor; killed with ``kill -9``, the supervisor cannot stop them, and they
kept serving the inherited sockets (HTTP, and gRPC through ``SO_REUSEPORT``), so a restart got
"address already in use". Each worker builds its app through ``api.server.worker_factory``, which
first calls :func:`exit_with_parent`: on Linux the kernel sends the worker SIGTERM when its
parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every platform a thread watches
``os.getppid()``; either way the worker drains as on any SIGTERM (uvicorn stops accepting, the
lifespan stops the gRPC server), and is ended with ``os._exit`` should that take longer than
``grace_s``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Sized
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "SUPERVISOR_ENV",
    "ServingHttpProtocol",
    "exit_with_parent",
    "grace_s",
    "sole_request",
]

#: Set by ``modelplane serve --workers N`` to its own pid: a worker that sees it (and is not
#: that process) exits when that process dies.
SUPERVISOR_ENV = "MODELPLANE_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1

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


def exit_with_parent(parent: int, *, grace_s: float, poll_s: float = 0.5) -> threading.Thread:
    """SIGTERM this process when ``parent`` stops being its parent; ``os._exit(1)`` if it is
    still alive ``grace_s`` later. Returns the watching thread (a daemon)."""
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
        armed = armed and os.getppid() == parent  # else it died first: the kernel sends nothing
    # The portable watch covers other platforms and a parent that died before prctl (the
    # kernel then sends nothing), and ends a drain that hangs. It sends SIGTERM only where the
    # kernel does not: a second one would make uvicorn skip the drain.
    thread = threading.Thread(
        target=_watch_parent,
        args=(parent, grace_s, poll_s, armed),
        name="modelplane-parent-watch",
        daemon=True,
    )
    thread.start()
    return thread


def _watch_parent(parent: int, grace_s: float, poll_s: float, armed: bool) -> None:
    stop = threading.Event()
    while os.getppid() == parent:
        stop.wait(poll_s)
    if not armed:
        os.kill(os.getpid(), signal.SIGTERM)
    stop.wait(grace_s)
    os._exit(1)


def grace_s() -> float:
    """How long a worker whose supervisor died may drain: the drain time, plus 5 s."""
    raw = os.environ.get("MODELPLANE_SERVE_OPTIONS")
    drain = 10.0
    if raw:
        from modelplane.serving.options import ServeOptions

        drain = ServeOptions.from_json(raw).drain_s
    return drain + 5.0
