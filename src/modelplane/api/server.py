"""The serving process's ASGI app: inference routes beside the registry API (an entry point).

:func:`create_serving_app` puts serving's routes (OIP v2, ``/predict``, admin, ``/metrics``)
and the registry API under ``/api/v1`` in one FastAPI app behind :class:`ServingApp` (the hot
routes skip FastAPI's stack). Its lifespan bootstraps the platform (unless given one), builds
the serving runtime (``modelplane.bootstrap.serving``) and starts and stops it as one unit.

uvicorn runs it through :func:`factory` (``modelplane serve``) or :func:`worker_factory`
(``--workers N``: each worker first ties its life to the supervisor).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from modelplane.api.app import DESCRIPTION, include_routers
from modelplane.api.errors import add_error_handlers
from modelplane.bootstrap import Platform, bootstrap
from modelplane.bootstrap.serving import build_serving
from modelplane.config import Settings
from modelplane.core.version import VERSION
from modelplane.serving import accesslog, tracing
from modelplane.serving.app import add_serving_routes
from modelplane.serving.entry import ServingApp
from modelplane.serving.http_server import SUPERVISOR_ENV, exit_with_parent, grace_s
from modelplane.serving.options import ServeOptions

__all__ = ["create_serving_app", "factory", "worker_factory"]


def create_serving_app(
    settings: Settings | None = None,
    options: ServeOptions | None = None,
    *,
    platform: Platform | None = None,
) -> ServingApp:
    """The whole server: OIP v2, /predict, admin, /metrics and the registry API under /api/v1."""
    opts = options or ServeOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_platform = platform is None
        plat: Platform = (
            platform if platform is not None else await run_in_threadpool(bootstrap, settings)
        )
        app.state.platform = plat
        tracing.setup_tracing("modelplane", otlp_endpoint=plat.settings.otlp_endpoint)
        accesslog.configure_access_log(enabled=opts.access_log)
        runtime = build_serving(plat, opts)
        try:
            await runtime.start()
            app.state.serving = runtime.state
            yield
        finally:
            await runtime.drain()
            accesslog.flush()
            app.state.serving = None
            await runtime.stop()
            if own_platform:
                await run_in_threadpool(plat.close)

    app = FastAPI(title="modelplane", version=VERSION, description=DESCRIPTION, lifespan=lifespan)
    app.state.platform = platform
    app.state.serving = None
    add_error_handlers(app)
    include_routers(app)
    add_serving_routes(app)
    return ServingApp(app)


def factory() -> ServingApp:
    """For ``uvicorn --factory``: options come from ``MODELPLANE_SERVE_OPTIONS``."""
    raw = os.environ.get("MODELPLANE_SERVE_OPTIONS")
    return create_serving_app(options=ServeOptions.from_json(raw) if raw else None)


def worker_factory() -> Any:
    """The serving app for a uvicorn worker (``factory=True``): tied to its supervisor's life
    first (when ``SUPERVISOR_ENV`` names another process), then :func:`factory`."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if supervisor.isdigit() and int(supervisor) != os.getpid():
        exit_with_parent(int(supervisor), grace_s=grace_s())
    return factory()
