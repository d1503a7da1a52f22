"""The serving ASGI app: OIP v2 REST, ``/predict``, admin and ``/metrics``, beside the registry API.

The prediction routes are plain Starlette endpoints added to the FastAPI app (``add_route``): no
dependency injection, no pydantic per request, JSON parsed by orjson straight into numpy (see
``oip.py``). FastAPI's machinery serves the registry routes and ``/docs`` next to them.

Built by :func:`create_serving_app`; its lifespan bootstraps the platform, starts the model pool
(loading and warming every ``--model`` before readiness), the gRPC server, the prediction log,
and freezes the warm heap (``gc.freeze``) so collections stay short under load.

This module is the composition only; the parts live by job:

- ``edge.py``: ``ServingState``, ``RawResponse``, the request helpers, ``_observed`` (span,
  errors, metrics, access log around every endpoint);
- ``entry.py``: ``ServingApp``, the ASGI entry matching the hot routes;
- ``routes_oip.py``: OIP v2 (metadata, health, ready, infer, model repository);
- ``routes_predict.py``: ``/predict`` and ``/feedback``;
- ``routes_admin.py``: ``/models``, load/unload, ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from modelplane import __version__
from modelplane.api.app import DESCRIPTION, include_routers
from modelplane.api.errors import add_error_handlers
from modelplane.auth.access import Authenticator
from modelplane.bootstrap import Platform, bootstrap
from modelplane.config import Settings
from modelplane.predlog import PredictionLog
from modelplane.serving import accesslog, tracing
from modelplane.serving.delivery import TrafficRouter, run_controller
from modelplane.serving.edge import AnyResponse, ServingState
from modelplane.serving.entry import ServingApp
from modelplane.serving.metrics import ServingMetrics, mark_process_dead
from modelplane.serving.options import ServeOptions
from modelplane.serving.pool import ModelPool
from modelplane.serving.routes_admin import admin_load, admin_models, admin_unload, metrics_endpoint
from modelplane.serving.routes_oip import (
    health_live,
    health_ready,
    infer,
    model_metadata,
    model_ready,
    repository_index,
    repository_load,
    repository_unload,
    server_metadata,
)
from modelplane.serving.routes_predict import feedback, plain_inputs, predict
from modelplane.serving.service import InferenceService

if TYPE_CHECKING:
    from modelplane.cache import PredictionCache
    from modelplane.serving.grpc.server import GrpcServer

# ServingApp, ServingState and plain_inputs are re-exported: callers import them from here.
__all__ = [
    "ServingApp",
    "ServingState",
    "create_serving_app",
    "factory",
    "inference_threads",
    "plain_inputs",
]


def _drain_on_sigterm(service: InferenceService) -> None:
    """On SIGTERM readiness goes false at once; then uvicorn's own handler stops accepting,
    lets in-flight requests finish and runs the lifespan shutdown (which drains the rest)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        service.drain()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def inference_threads(options: ServeOptions) -> int:
    """Threads for inference; 0 = predict on the event loop.

    Auto (``--threads`` not given): on one CPU a thread only adds a hand-off, two context
    switches and a fight for the GIL (measured: 30-60 µs per request, ~10 % of a small
    model's request), so predict runs on the loop; with more CPUs, two threads per CPU up to 4.
    """
    if options.executor_threads is not None:
        return options.executor_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if (cpus or 1) <= 1 else min(4, 2 * (cpus or 1))


def _executor(options: ServeOptions) -> Executor | None:
    threads = inference_threads(options)
    if options.process_pool:
        return ProcessPoolExecutor(max_workers=max(1, threads))
    if threads == 0:
        return None
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelplane-predict")


@dataclass
class _Parts:
    """What the lifespan builds, starts and stops; the gRPC server and the canary controller
    once started (a start that fails half way stops what it started)."""

    platform: Platform
    own_platform: bool
    metrics: ServingMetrics
    executor: Executor | None
    cache: PredictionCache | None
    predlog: PredictionLog | None
    pool: ModelPool
    service: InferenceService
    router: TrafficRouter
    grpc_server: GrpcServer | None = None
    controller: asyncio.Task[None] | None = None


def _build(plat: Platform, opts: ServeOptions, *, own_platform: bool) -> _Parts:
    """The serving parts, wired; only the prediction log is started."""
    metrics = ServingMetrics()
    executor = _executor(opts)
    cache = None
    if opts.defaults.cache or plat.settings.cache_url:
        from modelplane.cache import open_cache

        cache = open_cache(
            l1_bytes=opts.cache_bytes,
            ttl_s=opts.cache_ttl_s,
            redis_url=plat.settings.cache_url,
            on_event=metrics.cache_event,
        )
        metrics.watch_cache(cache.bytes_used)
    predlog = None
    if opts.prediction_log:
        predlog = PredictionLog(plat.settings.resolved_prediction_log, on_drop=metrics.log_dropped)
        predlog.start()
    pool = ModelPool(
        plat,
        opts,
        executor=executor,
        on_batch=lambda name, n, rows: metrics.observe_batch(name, rows),
        on_loaded=lambda s: metrics.model_loaded(s.name, str(s.version), s.load_seconds, s.nbytes),
        on_unloaded=lambda s: metrics.model_unloaded(s.name, str(s.version)),
        on_breaker=lambda name, number, st: metrics.breaker_state(name, str(number), st),
    )
    service = InferenceService(
        pool, executor=executor, cache=cache, metrics=metrics, predlog=predlog
    )
    router = TrafficRouter(
        plat,
        pool,
        service.predict_unlogged,
        poll_interval_s=opts.poll_interval_s,
        flush_interval_s=opts.stats_flush_s,
        shadow_queue=opts.shadow_queue,
        shadow_workers=opts.shadow_workers,
        registry=metrics.registry,
    )
    service.router = router
    return _Parts(plat, own_platform, metrics, executor, cache, predlog, pool, service, router)


async def _start(app: FastAPI, parts: _Parts, opts: ServeOptions) -> None:
    """Load and warm the models, start routing, the controller and gRPC; then ready."""
    plat, service = parts.platform, parts.service
    await parts.pool.start()
    _limit_model_threads()
    await parts.router.start()
    if opts.controller:
        parts.controller = asyncio.create_task(
            run_controller(plat, opts.controller_interval_s), name="modelplane-canary"
        )
    auth = Authenticator(
        plat.tokens,
        require_auth=plat.settings.require_auth,
        metrics_auth=plat.settings.metrics_auth,
    )
    app.state.authenticator = auth
    if opts.grpc_port is not None:
        from modelplane.serving.grpc.auth import auth_interceptors
        from modelplane.serving.grpc.server import start_grpc_server

        parts.grpc_server = await start_grpc_server(
            service,
            host=opts.host,
            port=opts.grpc_port,
            interceptors=auth_interceptors(auth),
        )
        app.state.grpc_port = getattr(parts.grpc_server, "bound_port", opts.grpc_port)
    app.state.serving = ServingState(plat, service, parts.pool, parts.metrics, opts, auth)
    gc.collect()
    gc.freeze()  # the warm heap (models, modules) is never scanned again
    _drain_on_sigterm(service)
    service.set_ready(True)


async def _stop(app: FastAPI, parts: _Parts, opts: ServeOptions) -> None:
    """Drain in-flight requests (up to ``drain_s``), then stop what ``_start`` started."""
    service = parts.service
    service.drain()
    deadline = time.monotonic() + opts.drain_s
    while service.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    app.state.serving = None
    if parts.grpc_server is not None:
        await parts.grpc_server.stop(grace=opts.drain_s)
    if parts.controller is not None:
        parts.controller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await parts.controller
    await parts.router.close()  # the last counters are written
    await parts.pool.close()
    if parts.predlog is not None:
        await run_in_threadpool(parts.predlog.close)
    if parts.cache is not None:
        await parts.cache.close()
    if parts.executor is not None:
        parts.executor.shutdown(wait=False, cancel_futures=True)
    if parts.own_platform:
        await run_in_threadpool(parts.platform.close)
    # With --workers N, uvicorn's supervisor cannot be told to do it: each worker
    # retires its own live gauges (queue depth, bytes, in flight) as it exits.
    mark_process_dead(os.getpid())


_ROUTES: list[tuple[str, Callable[[Request], Awaitable[AnyResponse]], list[str]]] = [
    ("/v2", server_metadata, ["GET"]),
    ("/v2/health/live", health_live, ["GET"]),
    ("/v2/health/ready", health_ready, ["GET"]),
    ("/v2/models/{name}", model_metadata, ["GET"]),
    ("/v2/models/{name}/ready", model_ready, ["GET"]),
    ("/v2/models/{name}/infer", infer, ["POST"]),
    ("/v2/models/{name}/versions/{version}", model_metadata, ["GET"]),
    ("/v2/models/{name}/versions/{version}/ready", model_ready, ["GET"]),
    ("/v2/models/{name}/versions/{version}/infer", infer, ["POST"]),
    ("/v2/repository/index", repository_index, ["POST"]),
    ("/v2/repository/models/{name}/load", repository_load, ["POST"]),
    ("/v2/repository/models/{name}/unload", repository_unload, ["POST"]),
    ("/predict", predict, ["POST"]),
    ("/feedback", feedback, ["POST"]),
    ("/models", admin_models, ["GET"]),
    ("/models/{name}/load", admin_load, ["POST"]),
    ("/models/{name}/unload", admin_unload, ["POST"]),
    ("/metrics", metrics_endpoint, ["GET"]),
]


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
        parts = _build(plat, opts, own_platform=own_platform)
        try:
            await _start(app, parts, opts)
            yield
        finally:
            await _stop(app, parts, opts)

    app = FastAPI(
        title="modelplane", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.platform = platform
    app.state.serving = None
    app.state.authenticator = None
    add_error_handlers(app)
    include_routers(app)
    for path, endpoint, methods in _ROUTES:
        # Starlette sends whatever ASGI callable an endpoint returns (a RawResponse too).
        app.add_route(path, cast(Any, endpoint), methods=methods, include_in_schema=False)
    return ServingApp(app)


def factory() -> ServingApp:
    """For ``uvicorn --factory`` workers: options come from ``MODELPLANE_SERVE_OPTIONS``."""
    raw = os.environ.get("MODELPLANE_SERVE_OPTIONS")
    return create_serving_app(options=ServeOptions.from_json(raw) if raw else None)


def _limit_model_threads() -> None:
    """Hold native thread pools (OpenMP, BLAS) to ``OMP_NUM_THREADS`` (``serve`` sets it).

    The environment variable reaches libraries loaded after it is set; this reaches those a
    model loaded before (see ``modelplane serve --model-threads``).
    """
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if not raw.isdigit() or int(raw) < 1:
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # comes with scikit-learn; without it there is nothing to limit
        return
    threadpool_limits(limits=int(raw))
