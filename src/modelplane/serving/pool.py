"""The model pool: which versions are loaded, warmed and ready.

A version is loaded once (concurrent first requests share one load, through the loader port),
warmed with one inference, then served until the pool evicts it (least recently used, bounded by
count and bytes). What a *reference* means (aliases, latest ready, routes) is the serving view's
business (``view.py``); the pool only answers ``(name, version)``.

The view *protects* versions from eviction: the arms of running experiments and rollouts,
shadow candidates, and a blue-green deploy's blue version until its keep time ends, so a
rollback switches back to a version that is still warm. ``--model`` and admin loads are pinned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from modelplane.serving.metrics import ServingMetrics
from modelplane.serving.options import ModelOptions, ServeOptions
from modelplane.serving.ports import LoadedVersion, LoaderFactory, ModelLoader
from modelplane.serving.resilience import Bulkhead, CircuitBreaker
from modelplane.serving.served import PREDICT, PROBA, ServedModel, warmup_input

__all__ = ["ModelPool"]

log = logging.getLogger(__name__)

Key = tuple[str, int]


class ModelPool:
    """Loaded versions by ``(name, version)``, in least-recently-used order."""

    def __init__(
        self,
        loader: ModelLoader,
        options: ServeOptions,
        *,
        executor: Executor | None,
        metrics: ServingMetrics | None = None,
        worker: tuple[LoaderFactory, str] | None = None,
    ) -> None:
        self._loader = loader
        self._options = options
        self._executor = executor
        self._metrics = metrics
        self._worker = worker
        self._served: OrderedDict[Key, ServedModel] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[ServedModel]] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._pinned: set[Key] = set()
        self._protected: dict[Key, float] = {}  # key → until (epoch seconds)

    async def close(self) -> None:
        for served in list(self._served.values()):
            await served.close()
        self._served.clear()

    # -- the hot path ------------------------------------------------------------------------
    async def get(self, key: Key, options: ModelOptions) -> ServedModel:
        """The loaded version ``key``; loaded (with ``options``) and warmed first if need be."""
        served = self._served.get(key)
        if served is not None:
            self._served.move_to_end(key)
            served.last_used = time.monotonic()
            return served
        return await self._load(key, options)

    def lookup(self, key: Key) -> ServedModel | None:
        """The loaded version ``key`` (marked used), or None: the hot path's synchronous hit."""
        served = self._served.get(key)
        if served is not None:
            self._served.move_to_end(key)
            served.last_used = time.monotonic()
        return served

    def loaded(self) -> list[ServedModel]:
        return list(self._served.values())

    def has(self, name: str, version: int) -> bool:
        """Whether ``name/version`` is loaded and warm now."""
        return (name, version) in self._served

    def versions_of(self, name: str) -> set[int]:
        """The loaded versions of ``name``."""
        return {n for (m, n) in self._served if m == name}

    def pin(self, key: Key) -> None:
        """Never evict ``key`` (``--model``, admin loads) until it is unloaded."""
        self._pinned.add(key)

    def protect(self, keys: dict[Key, float]) -> None:
        """Never evict these versions before their time (epoch seconds; ``inf``: until the
        next call). Each call replaces the previous set."""
        self._protected = dict(keys)

    def unload(self, name: str, version: int | None = None) -> list[int]:
        """Unload a model's versions (all, or one); they reload on their next request."""
        keys = [k for k in self._served if k[0] == name and (version is None or k[1] == version)]
        for key in keys:
            self._pinned.discard(key)
            self._drop(key)
        return [k[1] for k in keys]

    # -- loading -----------------------------------------------------------------------------
    async def _load(self, key: Key, options: ModelOptions) -> ServedModel:
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            served = await asyncio.to_thread(self._load_blocking, key, options)
            self._served[key] = served
            self._evict()
            if self._metrics is not None:
                self._metrics.model_loaded(
                    served.name, str(served.version), served.load_seconds, served.nbytes
                )
            future.set_result(served)
            return served
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._loading[key]

    def _load_blocking(self, key: Key, options: ModelOptions) -> ServedModel:
        started = time.perf_counter()
        name, number = key
        loaded = self._loader(name, number)  # trust as recorded on the version
        options = options.with_tags(dict(loaded.tags))  # a version's own tags win
        observed = _warm(loaded, name, number)
        bulkhead = self._bulkheads.get(name)
        if bulkhead is None:
            bulkhead = Bulkhead(options.max_concurrency, options.max_queue)
            self._bulkheads[name] = bulkhead
        return ServedModel(
            loaded=loaded,
            options=options,
            breaker=CircuitBreaker(on_change=self._breaker_hook(name, number)),
            bulkhead=bulkhead,
            nbytes=loaded.nbytes,
            observed_outputs=observed,
            executor=self._executor,
            worker=self._worker,
            on_batch=self._batch_hook if self._metrics is not None else None,
            load_seconds=time.perf_counter() - started,
        )

    def _batch_hook(self, served: ServedModel) -> Callable[[int, int], None] | None:
        """The batch callback (metrics) of ``served``'s batchers; built only for a new batcher."""
        metrics = self._metrics
        if metrics is None:
            return None

        def on_batch(requests: int, rows: int) -> None:
            metrics.observe_batch(served.name, rows)
            metrics.set_queue_depth(
                served.name, sum(b.queue_depth for b in served.batchers.values())
            )

        return on_batch

    def _breaker_hook(self, name: str, number: int) -> Callable[[str], None] | None:
        metrics = self._metrics
        if metrics is None:
            return None
        return lambda state: metrics.breaker_state(name, str(number), state)

    def _evict(self) -> None:
        opts = self._options
        now = time.time()
        protected = {k for k, until in self._protected.items() if until > now}
        while len(self._served) > opts.max_models or (
            len(self._served) > 1
            and sum(s.nbytes for s in self._served.values()) > opts.max_model_bytes
        ):
            victim = next(
                (
                    k
                    for k, s in self._served.items()
                    if k not in self._pinned and k not in protected and s.in_flight == 0
                ),
                None,
            )
            if victim is None:
                return
            self._drop(victim)

    def _drop(self, key: Key) -> None:
        served = self._served.pop(key)
        asyncio.get_running_loop().create_task(served.close())
        if self._metrics is not None:
            self._metrics.model_unloaded(served.name, str(served.version))


def _warm(loaded: LoadedVersion, name: str, number: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """One inference of a neutral row; the dtype and shape of each output it returned."""
    sample = warmup_input(loaded.signature)
    observed: dict[str, tuple[str, tuple[int, ...]]] = {}
    if sample is None:
        return observed
    try:
        out = np.asarray(loaded.runtime.predict(sample))
        observed[PREDICT] = (out.dtype.name, (-1, *out.shape[1:]))
        if loaded.runtime.has_proba:
            proba = np.asarray(loaded.runtime.predict_proba(sample))
            observed[PROBA] = (proba.dtype.name, (-1, *proba.shape[1:]))
    except Exception:
        # A neutral row of zeros may be outside what a model accepts; that is the model's
        # business, not a reason to refuse serving it (the breaker watches).
        log.warning("warm-up of %s/%s failed; serving it anyway", name, number, exc_info=True)
    return observed
