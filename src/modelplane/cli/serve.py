"""``modelplane serve``: the inference server (OIP v2 REST + gRPC, /predict) and the registry API.

One ASGI app under uvicorn with uvloop and httptools (measured: without them the same endpoint
loses ~22 %; see README "Serving"). ``--workers N`` runs N processes sharing the port (gRPC
too, by SO_REUSEPORT); metrics are then aggregated through prometheus-client's multiprocess
mode. Workers exit when this process dies, even by ``kill -9`` (``api.server.worker_factory``),
so a restart can bind the same ports at once (uvicorn binds with ``SO_REUSEADDR``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from typing import Annotated

import typer

from modelplane.cli.context import state

__all__ = ["APP_FACTORY", "WORKER_APP_FACTORY", "serve"]

#: Import string of the ASGI app factory uvicorn runs (``factory=True``).
APP_FACTORY = "modelplane.api.server:factory"
#: The same app for ``--workers N``: each worker first ties its life to this process.
WORKER_APP_FACTORY = "modelplane.api.server:worker_factory"


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    grpc_port: Annotated[
        int, typer.Option(min=0, max=65535, help="gRPC port (0: no gRPC server).")
    ] = 8001,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Load and warm this model before readiness (repeatable)."),
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per batch (1 turns batching off).")
    ] = 256,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="Longest a queued request waits for a batch.")
    ] = 2.0,
    cache: Annotated[
        bool, typer.Option("--cache", help="Cache predictions (L1; L2 with MODELPLANE_CACHE_URL).")
    ] = False,
    cache_max_bytes: Annotated[
        int,
        typer.Option(
            "--cache-max-bytes",
            min=0,
            help="Memory the in-process prediction cache may hold per worker, entries' real "
            "size (default 64 MiB; 0: none, only the Redis tier).",
        ),
    ] = 64 << 20,
    timeout_ms: Annotated[float, typer.Option(min=0, help="Per-request timeout (504).")] = 10000,
    max_concurrency: Annotated[
        int, typer.Option(min=1, help="Concurrent predictions per model.")
    ] = 64,
    max_queue: Annotated[
        int, typer.Option(min=0, help="Requests queued per model before 503.")
    ] = 1024,
    max_models: Annotated[int, typer.Option(min=1, help="Versions kept loaded (LRU).")] = 16,
    threads: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Inference threads per worker; 0: on the event loop "
            "(default: 0 on one CPU, else 2 per CPU up to 4).",
        ),
    ] = None,
    process_pool: Annotated[
        bool, typer.Option(help="Run inference in processes (GIL-bound models).")
    ] = False,
    prediction_log: Annotated[bool, typer.Option(help="Write the prediction log.")] = True,
    access_log: Annotated[bool, typer.Option(help="One JSON line per request on stderr.")] = True,
    controller: Annotated[
        bool,
        typer.Option(help="Drive running canary rollouts from this server (every second)."),
    ] = True,
    model_threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Threads one prediction may use (OpenMP, BLAS); default 1, which serves "
            "concurrent requests best (OMP_NUM_THREADS, when set, is kept).",
        ),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option(
            min=0.05, help="Seconds between reads of the registry and of the routing table."
        ),
    ] = 2.0,
) -> None:
    """Serve models over OIP v2 (REST and gRPC) and /predict, with the registry API.

    Example: modelplane serve --model fraud@champion --port 8000 --grpc-port 8001
    """
    import uvicorn

    from modelplane.serving.http_server import SUPERVISOR_ENV, ServingHttpProtocol
    from modelplane.serving.options import ModelOptions, ServeOptions

    st = state(ctx)
    st.settings()  # a bad configuration fails here, in one line, not in the server's lifespan
    if st.home is not None:
        os.environ["MODELPLANE_HOME"] = str(st.home)
    # Many small concurrent predictions: a model that spreads each one over every core
    # (scikit-learn's HistGradientBoosting uses OpenMP) makes its threads spin against each
    # other and the event loop — measured 50x slower p99 under load on 2 cores. Set before any
    # model library loads; the lifespan applies it again to libraries already loaded.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if model_threads is not None:
            os.environ[var] = str(model_threads)
        else:
            os.environ.setdefault(var, "1")
    options = ServeOptions(
        host=host,
        port=port,
        grpc_port=grpc_port or None,
        workers=workers,
        models=tuple(model or ()),
        defaults=ModelOptions(
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            cache=cache,
            timeout_ms=timeout_ms,
            max_concurrency=max_concurrency,
            max_queue=max_queue,
        ),
        cache_bytes=cache_max_bytes,
        max_models=max_models,
        executor_threads=threads,
        process_pool=process_pool,
        prediction_log=prediction_log,
        access_log=access_log,
        controller=controller,
        poll_interval_s=poll_interval,
    )
    os.environ["MODELPLANE_SERVE_OPTIONS"] = options.to_json()
    multiproc_dir = None
    factory = APP_FACTORY
    if workers > 1:
        # The pid in the name lets ``artifacts gc`` remove it once this process is gone (a
        # kill -9 skips the cleanup below).
        multiproc_dir = tempfile.mkdtemp(prefix=f"modelplane-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        factory = WORKER_APP_FACTORY
    # uvicorn drains on SIGTERM, then re-raises the signal to the handler that was there
    # before it: make that one a clean exit (status 0) rather than death by signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=ServingHttpProtocol,  # uvicorn's httptools protocol (see http_server.py)
            access_log=False,
            log_level="warning",
            proxy_headers=False,  # one ASGI layer less per request; nothing here reads it
            timeout_graceful_shutdown=int(options.drain_s),
        )
    finally:
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
