"""The ASGI app: ``create_app()`` builds it; ``uvicorn modelplane.api.app:create_app --factory``.

With no platform given, the app builds one from settings in its lifespan (never at import time)
and closes it at shutdown. Routers live under ``/api/v1``; the serving app mounts more routers
into the same app, and :func:`add_error_handlers` gives any app the same JSON errors. Request
bodies are bounded and writes authenticated before their body is read (``limits.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from modelplane import __version__
from modelplane.api.errors import add_error_handlers
from modelplane.api.limits import BodyLimit
from modelplane.bootstrap import CAPABILITIES, Platform, bootstrap
from modelplane.config import Settings
from modelplane.core.capability import resolve

__all__ = ["API_PREFIX", "DESCRIPTION", "create_app", "include_routers"]

API_PREFIX = "/api/v1"

DESCRIPTION = """\
The modelplane registry: models, immutable versions, aliases, tags and the event log; and
safe delivery (tag `delivery`): experiments (A/B/n, bandit, shadow) with their report, canary
rollouts with their live state, and blue-green deploys with rollback.

* **Auth**: `Authorization: Bearer <token>` (create one with `modelplane tokens create`).
  Registry writes need scope `write`, delivery writes scope `admin`; reads need `read` only
  when `require_auth` is set.
* **Gates**: a rollout or deploy takes a version whose release gates passed already
  (`POST …/versions/{version}/gate`, `modelplane gate MODEL/N`, or `modelplane deploy`, which
  runs them first); otherwise it is refused with 409 `gate_blocked` unless `force` is given (and
  recorded).
* **Scopes**: every operation states its scope as `x-required-scope`; read routes list security
  as optional (open unless `require_auth`). A body over `max_body_bytes` (uploads:
  `max_upload_bytes`, 2 GiB) is 413 on any route; while the server starts or stops, routes
  answer 503.
* **Errors** are always `{"error": {"code", "message", "field"}}`.
* **Lists** are cursor-paginated: pass `next_cursor` back as `?cursor=` until it is null.
"""


def include_routers(app: FastAPI, *, prefix: str = API_PREFIX) -> None:
    """Mount the router each capability names (registry, delivery, events, tokens: in the order
    of ``bootstrap.CAPABILITIES``) on ``app`` under ``prefix``.

    ``app`` also gets :class:`~modelplane.api.limits.BodyLimit`: every request body is bounded
    while it streams in, and a write under ``prefix`` without a write token is refused before
    its body is read.
    """
    app.add_middleware(BodyLimit, prefix=prefix)
    for capability in CAPABILITIES:
        if capability.router is not None:
            app.include_router(resolve(capability.router), prefix=prefix)


def _lifespan(
    settings: Settings | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "platform", None) is not None:  # given to create_app: not ours
            yield
            return
        platform = await run_in_threadpool(bootstrap, settings)  # migrates: blocking I/O
        app.state.platform = platform
        try:
            yield
        finally:
            app.state.platform = None
            await run_in_threadpool(platform.close)

    return lifespan


def create_app(platform: Platform | None = None, *, settings: Settings | None = None) -> FastAPI:
    """The REST API app. ``platform``: use this one (tests); else bootstrap ``settings``."""
    app = FastAPI(
        title="modelplane",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings),
    )
    app.state.platform = platform
    add_error_handlers(app)
    include_routers(app)
    return app
