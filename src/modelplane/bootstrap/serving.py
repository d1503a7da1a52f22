"""Serving's composition root: the serving runtime built from a :class:`Platform` and options.

Serving imports no capability; this module hands it what its ports ask for
(``serving/ports.py``): a loader (the registry's ``load_model`` use case); a view
source over the registry's and traffic's views; the bearer check of ``auth/access.py``; the
traffic recorder (``traffic/recorder.py``); the canary controller as a background job. It also
builds the cache, the prediction log and, when asked, the gRPC server, and returns them as one
:class:`ServingRuntime` that the server's lifespan starts and stops as one unit.

A process pool's workers load models themselves through :func:`worker_loader`, a top-level
function (picklable by name) given the settings as JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelplane.auth.access import Authenticator
from modelplane.bootstrap import Platform, bootstrap
from modelplane.cache import PredictionCache, open_cache
from modelplane.config import Settings
from modelplane.errors import ModelplaneError
from modelplane.predlog import PredictionLog
from modelplane.registry.usecases import load_model
from modelplane.serving.app import make_executor, settle_process
from modelplane.serving.delivery import TrafficRouter
from modelplane.serving.edge import ServingState
from modelplane.serving.feedback import FeedbackMemory
from modelplane.serving.metrics import ServingMetrics, mark_process_dead
from modelplane.serving.options import ServeOptions
from modelplane.serving.pool import ModelPool
from modelplane.serving.ports import BackgroundJob, LoadedVersion, ModelFacts, ModelLoader, Snapshot
from modelplane.serving.service import InferenceService
from modelplane.serving.shadow import ShadowRunner
from modelplane.serving.view import ServingView
from modelplane.traffic.controller import ControllerJob, RolloutController
from modelplane.traffic.recorder import LiveRecorder

if TYPE_CHECKING:
    from modelplane.serving.grpc.server import GrpcServer

__all__ = [
    "PlatformViewSource",
    "RegistryLoader",
    "ServingRuntime",
    "build_serving",
    "worker_loader",
]

log = logging.getLogger(__name__)


class RegistryLoader:
    """Loads ``name/version`` through the registry's ``load_model`` use case: resolved, fetched
    and verified from the artifact store, opened with the trust the version records."""

    def __init__(self, platform: Platform) -> None:
        self._registry = platform.registry
        self._artifacts = platform.artifacts

    def __call__(self, name: str, version: int) -> LoadedVersion:
        loaded = load_model(self._registry, self._artifacts, f"{name}/{version}")
        found = loaded.version
        return LoadedVersion(
            name=found.model,
            version=found.version,
            flavor=found.flavor,
            runtime=loaded.runtime,
            signature=loaded.signature,
            tags=dict(found.tags),
            nbytes=found.size,
        )


def worker_loader(config: str) -> ModelLoader:
    """A process pool worker's loader, from the server's settings as JSON."""
    return RegistryLoader(bootstrap(Settings.model_validate_json(config)))


class PlatformViewSource:
    """What the registry and traffic say now, for the serving view."""

    def __init__(self, platform: Platform) -> None:
        self._registry = platform.registry
        self._traffic = platform.traffic

    def model(self, name: str) -> ModelFacts:
        model = self._registry.get_model(name)
        page = self._registry.list_versions(name, status="ready", limit=1)
        return ModelFacts(
            name=name,
            aliases=dict(model.aliases),
            latest_ready=page.items[0].version if page.items else None,
            tags=dict(model.tags),
        )

    def snapshot(self, names: Collection[str]) -> Snapshot:
        """Each model's facts (one that cannot be read is left out: serving keeps its old view)
        and the routing table.

        The routing table is read **first**: a promotion ends the route and moves the alias in
        one transaction, so aliases read after the table are at least as new as it is. Read the
        other way round, a promotion committing between the two reads would show the old
        champion and no route, and the bare name would go back to the old version until the
        next refresh.
        """
        routing = self._traffic.routing_table()
        models: dict[str, ModelFacts] = {}
        for name in names:
            try:
                models[name] = self.model(name)
            except ModelplaneError:
                log.warning("could not refresh model %s", name, exc_info=True)
        return Snapshot(models=models, routing=routing)

    def model_names(self) -> Sequence[str]:
        return [m.name for m in self._registry.list_models(limit=1000).items]


@dataclass
class ServingRuntime:
    """Serving's parts, wired; started and stopped as one unit (a start that fails half way is
    stopped like a whole one)."""

    platform: Platform
    options: ServeOptions
    metrics: ServingMetrics
    executor: Executor | None
    cache: PredictionCache | None
    predlog: PredictionLog | None
    source: PlatformViewSource
    pool: ModelPool
    view: ServingView
    service: InferenceService
    router: TrafficRouter
    auth: Authenticator
    jobs: list[BackgroundJob] = field(default_factory=list)
    state: ServingState | None = None
    grpc_server: GrpcServer | None = None
    grpc_port: int | None = None
    _drained: bool = False

    async def start(self) -> None:
        """Start the prediction log, load and warm the models, read the view, start delivery,
        jobs and gRPC; then ready. (Nothing runs before this: a build that fails leaks no
        thread.)"""
        if self.predlog is not None:
            self.predlog.start()
        await self.view.start()
        await self.router.start()
        for job in self.jobs:
            await job.start()
        opts = self.options
        if opts.grpc_port is not None:
            from modelplane.serving.grpc.auth import auth_interceptors
            from modelplane.serving.grpc.server import start_grpc_server

            self.grpc_server = await start_grpc_server(
                self.service,
                host=opts.host,
                port=opts.grpc_port,
                interceptors=auth_interceptors(self.auth),
            )
            self.grpc_port = getattr(self.grpc_server, "bound_port", opts.grpc_port)
        self.state = ServingState(
            self.service,
            self.metrics,
            opts,
            self.auth,
            source=self.source,
            max_body=self.platform.settings.max_body_bytes,
        )
        settle_process(self.service)
        self.service.set_ready(True)

    async def drain(self) -> None:
        """Readiness goes false; wait for requests in flight (up to ``drain_s``)."""
        if self._drained:
            return
        self._drained = True
        service = self.service
        service.drain()
        deadline = time.monotonic() + self.options.drain_s
        while service.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Drain, then stop what :meth:`start` started (the last counters are written)."""
        await self.drain()
        self.state = None
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace=self.options.drain_s)
        for job in reversed(self.jobs):
            await job.stop()
        await self.view.stop()
        await self.router.stop()
        await self.pool.close()
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.close)
        if self.cache is not None:
            await self.cache.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        # With --workers N, uvicorn's supervisor cannot be told to do it: each worker
        # retires its own live gauges (queue depth, bytes, in flight) as it exits.
        mark_process_dead(os.getpid())


def build_serving(platform: Platform, options: ServeOptions) -> ServingRuntime:
    """The serving runtime over ``platform``, wired and not started."""
    settings = platform.settings
    metrics = ServingMetrics()
    executor = make_executor(options)
    cache = _cache(settings, options, metrics)
    predlog = None
    if options.prediction_log:
        predlog = PredictionLog(settings.resolved_prediction_log, on_drop=metrics.log_dropped)
    pool = ModelPool(
        RegistryLoader(platform),
        options,
        executor=executor,
        metrics=metrics,
        worker=(worker_loader, settings.model_dump_json()),
    )
    source = PlatformViewSource(platform)
    view = ServingView(source, pool, options)
    service = InferenceService(view, cache=cache, metrics=metrics, predlog=predlog)
    recorder = LiveRecorder(platform.bus.handle, flush_interval_s=options.stats_flush_s)
    shadows = ShadowRunner(
        service.predict_unlogged,
        recorder,
        queue_size=options.shadow_queue,
        workers=options.shadow_workers,
        registry=metrics.registry,
    )
    router = TrafficRouter(view, recorder, shadows, FeedbackMemory(recorder))
    service.attach(router)
    jobs: list[BackgroundJob] = []
    if options.controller:
        controller = RolloutController(platform.bus, platform.traffic)
        jobs.append(ControllerJob(controller, options.controller_interval_s))
    auth = Authenticator(
        platform.tokens, require_auth=settings.require_auth, metrics_auth=settings.metrics_auth
    )
    return ServingRuntime(
        platform, options, metrics, executor, cache, predlog, source, pool, view, service,
        router, auth, jobs,
    )  # fmt: skip


def _cache(
    settings: Settings, options: ServeOptions, metrics: ServingMetrics
) -> PredictionCache | None:
    if not (options.defaults.cache or settings.cache_url):
        return None
    cache = open_cache(
        l1_bytes=options.cache_bytes,
        ttl_s=options.cache_ttl_s,
        redis_url=settings.cache_url,
        on_event=metrics.cache_event,
    )
    metrics.watch_cache(cache.bytes_used)
    return cache
