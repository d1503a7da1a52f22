"""The serving routes and what the serving process sets up around them.

The prediction routes are plain Starlette endpoints (``add_route``): no dependency injection, no
pydantic per request, JSON parsed by orjson straight into numpy (see ``oip.py``). The ASGI app
that serves them next to the registry API is built by the entry layer
(``modelplane.api.server.create_serving_app``); its lifespan starts the serving runtime that
``modelplane.bootstrap.serving`` composes.

The parts live by job:

- ``edge.py``: ``ServingState``, ``RawResponse``, the request helpers, ``_observed`` (span,
  errors, metrics, access log around every endpoint);
- ``entry.py``: ``ServingApp``, the ASGI entry matching the hot routes;
- ``routes_oip.py``: OIP v2 (metadata, health, ready, infer, model repository);
- ``routes_predict.py``: ``/predict`` and ``/feedback``;
- ``routes_admin.py``: ``/models``, load/unload, ``/metrics``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request

from modelplane.serving.edge import AnyResponse, ServingState
from modelplane.serving.entry import ServingApp
from modelplane.serving.options import ServeOptions
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

# ServingApp, ServingState and plain_inputs are re-exported: callers import them from here.
__all__ = [
    "ROUTES",
    "ServingApp",
    "ServingState",
    "add_serving_routes",
    "inference_threads",
    "make_executor",
    "plain_inputs",
    "settle_process",
]

ROUTES: list[tuple[str, Callable[[Request], Awaitable[AnyResponse]], list[str]]] = [
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


def add_serving_routes(app: Starlette) -> None:
    """Add every serving route to ``app`` (hidden from its OpenAPI document)."""
    for path, endpoint, methods in ROUTES:
        # Starlette sends whatever ASGI callable an endpoint returns (a RawResponse too).
        app.add_route(path, cast(Any, endpoint), methods=methods, include_in_schema=False)


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


def make_executor(options: ServeOptions) -> Executor | None:
    """Where predictions run: None (the event loop), threads, or processes."""
    threads = inference_threads(options)
    if options.process_pool:
        return ProcessPoolExecutor(max_workers=max(1, threads))
    if threads == 0:
        return None
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelplane-predict")


def settle_process(service: InferenceService) -> None:
    """Once the models are warm: hold native thread pools, freeze the warm heap (collections
    stay short under load) and drain on SIGTERM."""
    _limit_model_threads()
    gc.collect()
    gc.freeze()  # the warm heap (models, modules) is never scanned again
    _drain_on_sigterm(service)


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
