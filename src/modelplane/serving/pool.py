"""The model pool: which versions are loaded, warmed and ready, and what a reference means now.

Requests never touch the database on the hot path. The pool keeps a *view* of each model it has
seen (its aliases, latest ready version and ``serving.*`` tags), refreshed by polling the
registry every few seconds. A reference (``fraud``, ``fraud@challenger``, ``fraud/3``) is
resolved against that view; the version it names is loaded once (concurrent first requests
share one load), warmed with one inference, then served until the pool evicts it (least recently
used, bounded by count and bytes).

When an alias moves, the refresh loads and warms the new version first and only then swaps the
view: requests keep going to the old version until the new one is ready, so a switch fails no
request. The old version stays loaded (and finishes what it has in flight) until evicted.

Delivery (``serving/delivery.py``) *protects* versions from eviction: the arms of running
experiments and rollouts, shadow candidates, and a blue-green deploy's blue version until its
keep time ends, so a rollback switches back to a version that is still warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelplane.bootstrap import Platform
from modelplane.client import Client, LoadedModel
from modelplane.core.names import Reference, parse_reference
from modelplane.core.signature import Signature, validate_columns
from modelplane.errors import AliasNotFound, InvalidInput, ModelNotFound, VersionNotFound
from modelplane.serving.batcher import Batcher
from modelplane.serving.options import ModelOptions, ServeOptions
from modelplane.serving.resilience import Bulkhead, CircuitBreaker

__all__ = ["ModelPool", "ModelView", "ServedModel"]

log = logging.getLogger(__name__)

PREDICT = "predict"
PROBA = "predict_proba"


@dataclass
class ModelView:
    """What the pool knows of a model without asking the database."""

    name: str
    aliases: dict[str, int]
    latest_ready: int | None
    options: ModelOptions

    def number_for(self, ref: Reference) -> int:
        if ref.version is not None:
            return ref.version
        if ref.alias is not None and ref.alias != "latest":
            if ref.alias not in self.aliases:
                raise AliasNotFound(
                    f"model {self.name!r} has no alias {ref.alias!r}", field="alias"
                )
            return self.aliases[ref.alias]
        if ref.alias is None and "champion" in self.aliases:
            return self.aliases["champion"]
        if self.latest_ready is None:
            raise VersionNotFound(f"model {self.name!r} has no ready version", field="version")
        return self.latest_ready


@dataclass
class ServedModel:
    """One loaded, warmed version with its batchers and breaker."""

    loaded: LoadedModel
    options: ModelOptions
    breaker: CircuitBreaker
    bulkhead: Bulkhead
    nbytes: int
    load_seconds: float
    batchers: dict[tuple[str, ...], Batcher] = field(default_factory=dict)
    #: dtype and shape of each output as the warm-up saw them (for metadata without a signature)
    observed_outputs: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    settings_json: str = "{}"
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.loaded.version.model

    @property
    def version(self) -> int:
        return self.loaded.version.version

    @property
    def signature(self) -> Signature | None:
        return self.loaded.signature

    @property
    def predict_output(self) -> str:
        sig = self.signature
        return sig.outputs[0].name if sig is not None and sig.outputs else PREDICT

    @property
    def output_names(self) -> tuple[str, ...]:
        names = (self.predict_output,)
        return (*names, PROBA) if self.loaded.runtime.has_proba else names

    def check_outputs(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """The outputs to compute: those requested (validated), else every output the model
        has (the prediction, and the probabilities when it has them), as OIP says."""
        if not requested:
            return self.output_names
        known = self.output_names
        for name in requested:
            if name not in known:
                raise InvalidInput(
                    f"model {self.name}/{self.version} has no output {name!r}; it has "
                    f"{', '.join(known)}",
                    field=name,
                )
        return tuple(dict.fromkeys(requested))

    def prepare(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Any:
        """Check request tensors against the signature; return what the model takes."""
        sig = self.signature
        if sig is None:
            if len(inputs) == 1:
                return next(iter(inputs.values()))
            return {k: _column(v) for k, v in inputs.items()}
        if sig.is_columnar:
            return validate_columns(sig, {k: _column(v) for k, v in inputs.items()})
        return sig.validate(inputs)

    def batcher_for(
        self,
        outputs: tuple[str, ...],
        executor: Executor | None,
        on_batch: Callable[[int, int], None] | None,
    ) -> Batcher:
        """The batcher of this output set: inline (no executor), threads, or processes."""
        batcher = self.batchers.get(outputs)
        if batcher is not None:
            return batcher
        predict: Callable[[Any], dict[str, np.ndarray[Any, Any]]]
        concurrency = 1
        if isinstance(executor, ProcessPoolExecutor):
            # GIL-bound models: each worker process loads the version itself (a closure over
            # the loaded model cannot be pickled); the batch and a small reference travel.
            predict = functools.partial(
                predict_in_process,
                self.settings_json,
                f"{self.name}/{self.version}",
                outputs,
                self.predict_output,
            )
            concurrency = getattr(executor, "_max_workers", 1)
        else:
            predict = _predictor(self.loaded, outputs, self.predict_output)
        batcher = Batcher(
            predict,
            max_batch_size=self.options.max_batch_size,
            max_wait_ms=self.options.max_wait_ms,
            executor=executor,
            name=f"{self.name}/{self.version}",
            on_batch=on_batch,
            max_concurrency=concurrency,
            inline=executor is None,
        )
        self.batchers[outputs] = batcher
        return batcher

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()


def _column(value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A column sent as a [n, 1] tensor is the same column as a [n] one."""
    return value.reshape(-1) if value.ndim == 2 and value.shape[1] == 1 else value


def _predictor(
    loaded: LoadedModel, outputs: tuple[str, ...], predict_name: str
) -> Callable[[Any], dict[str, np.ndarray[Any, Any]]]:
    """The batch function of a batcher: where every runtime output enters serving.

    Outputs leave it C-contiguous and native-endian (XGBoost's ``predict_proba`` is a
    transposed view, which orjson refuses); an array that already is one is not copied.
    """
    runtime = loaded.runtime
    sig = loaded.signature
    columnar = sig is not None and sig.is_columnar

    def predict(batch: Any) -> dict[str, np.ndarray[Any, Any]]:
        if columnar and isinstance(batch, dict):
            assert sig is not None
            batch = sig.frame(batch)  # one frame per batch, not per request
        result: dict[str, np.ndarray[Any, Any]] = {}
        for name in outputs:
            if name == PROBA:
                result[name] = _plain(runtime.predict_proba(batch))
            else:
                result[predict_name] = _plain(runtime.predict(batch))
        return result

    return predict


def _plain(output: Any) -> np.ndarray[Any, Any]:
    """An output as every encoder takes it: C-contiguous, native byte order (no copy if so)."""
    array = np.ascontiguousarray(output)
    if not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    return array


_PROCESS_MODELS: dict[tuple[str, str], Any] = {}


def predict_in_process(
    settings_json: str, ref: str, outputs: tuple[str, ...], predict_name: str, batch: Any
) -> dict[str, np.ndarray[Any, Any]]:
    """Run in a worker process: load ``ref`` once per process, then predict on the batch."""
    key = (settings_json, ref)
    predictor = _PROCESS_MODELS.get(key)
    if predictor is None:
        from modelplane.config import Settings

        client = Client(Settings.model_validate_json(settings_json))
        loaded = client.load_model(ref)
        predictor = _predictor(loaded, outputs, predict_name)
        _PROCESS_MODELS[key] = predictor
    result: dict[str, np.ndarray[Any, Any]] = predictor(batch)
    return result


def warmup_input(signature: Signature | None) -> Any:
    """A one-row input of the right shape and dtypes, or None when the model has no signature."""
    if signature is None or not signature.inputs:
        return None

    def one(dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
        dims = [1 if d == -1 else d for d in shape] or [1]
        dims[0] = 1
        if dtype == "string":
            return np.full(dims, "", dtype=object)
        return np.zeros(dims, dtype=np.dtype(dtype))

    if signature.is_columnar:
        return signature.frame(
            validate_columns(signature, {s.name: one(s.dtype, (1,)) for s in signature.inputs})
        )
    tensors = {s.name: one(s.dtype, s.shape) for s in signature.inputs}
    return signature.validate(tensors)


class ModelPool:
    def __init__(
        self,
        platform: Platform,
        options: ServeOptions,
        *,
        executor: Executor | None,
        on_batch: Callable[[str, int, int], None] | None = None,
        on_loaded: Callable[[ServedModel], None] | None = None,
        on_unloaded: Callable[[ServedModel], None] | None = None,
        on_breaker: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self._platform = platform
        self._client = Client(platform=platform)
        self._options = options
        self._executor = executor
        self._on_batch = on_batch
        self._on_loaded = on_loaded
        self._on_unloaded = on_unloaded
        self._on_breaker = on_breaker
        self._views: dict[str, ModelView] = {}
        self._references: dict[tuple[str, str | None], Reference] = {}
        self._missing: dict[str, float] = {}
        self._served: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[ServedModel]] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._pinned: set[tuple[str, int]] = set()
        self._protected: dict[tuple[str, int], float] = {}  # key → until (epoch seconds)
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load and warm every ``--model`` before readiness; then poll the registry."""
        for ref in self._options.models:
            served = await self.get(ref)
            self._pinned.add((served.name, served.version))
        self._poller = asyncio.create_task(self._poll(), name="modelplane-pool-poll")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for served in list(self._served.values()):
            await served.close()
        self._served.clear()

    # -- the hot path ------------------------------------------------------------------------
    async def get(self, ref: str, version: str | None = None) -> ServedModel:
        """The ready version a reference (and an optional URL version or alias) names."""
        reference = self._references.get((ref, version))
        if reference is None:  # parsing validates names with regexes: do it once per string
            reference = _reference(ref, version)
            if len(self._references) < 10_000:
                self._references[(ref, version)] = reference
        view = self._views.get(reference.name)
        if view is None:
            view = await self._fetch_unknown(reference.name)
        number = view.number_for(reference)
        key = (reference.name, number)
        served = self._served.get(key)
        if served is not None:
            self._served.move_to_end(key)
            served.last_used = time.monotonic()
            return served
        return await self._load(key, view.options)

    async def _fetch_unknown(self, name: str) -> ModelView:
        """First request for a model: read its view once. A model that does not exist is
        remembered for one poll interval, so a stream of requests for a wrong name costs no
        database query each (the registry is asked again after that)."""
        missing_until = self._missing.get(name)
        if missing_until is not None and time.monotonic() < missing_until:
            raise ModelNotFound(f"model {name!r} does not exist", field="name")
        try:
            view = await self._fetch_view(name)
        except ModelNotFound:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[name] = time.monotonic() + self._options.poll_interval_s
            raise
        self._missing.pop(name, None)
        self._views[name] = view
        return view

    def loaded(self) -> list[ServedModel]:
        return list(self._served.values())

    def has(self, name: str, version: int) -> bool:
        """Whether ``name/version`` is loaded and warm now."""
        return (name, version) in self._served

    async def preload(self, name: str, version: int) -> ServedModel:
        """Load and warm ``name/version`` now (before any request needs it)."""
        return await self.get(f"{name}/{version}")

    def protect(self, keys: dict[tuple[str, int], float]) -> None:
        """Never evict these versions before their time (epoch seconds; ``inf``: until the
        next call). Each call replaces the previous set."""
        self._protected = dict(keys)

    # -- loading -----------------------------------------------------------------------------
    async def _load(self, key: tuple[str, int], options: ModelOptions) -> ServedModel:
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            served = await asyncio.to_thread(self._load_blocking, key, options)
            self._served[key] = served
            self._evict()
            if self._on_loaded is not None:
                self._on_loaded(served)
            future.set_result(served)
            return served
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._loading[key]

    def _load_blocking(self, key: tuple[str, int], options: ModelOptions) -> ServedModel:
        started = time.perf_counter()
        name, number = key
        # trust as recorded on the version (docs/security.md)
        loaded = self._client.load_model(f"{name}/{number}")
        options = options.with_tags(loaded.version.tags)  # a version's own tags win
        sample = warmup_input(loaded.signature)
        observed: dict[str, tuple[str, tuple[int, ...]]] = {}
        if sample is not None:
            try:
                out = np.asarray(loaded.runtime.predict(sample))
                observed[PREDICT] = (out.dtype.name, (-1, *out.shape[1:]))
                if loaded.runtime.has_proba:
                    proba = np.asarray(loaded.runtime.predict_proba(sample))
                    observed[PROBA] = (proba.dtype.name, (-1, *proba.shape[1:]))
            except Exception:
                # A neutral row of zeros may be outside what a model accepts; that is the
                # model's business, not a reason to refuse serving it (the breaker watches).
                log.warning(
                    "warm-up of %s/%s failed; serving it anyway", name, number, exc_info=True
                )
        bulkhead = self._bulkheads.get(name)
        if bulkhead is None:
            bulkhead = Bulkhead(options.max_concurrency, options.max_queue)
            self._bulkheads[name] = bulkhead
        return ServedModel(
            loaded=loaded,
            options=options,
            breaker=CircuitBreaker(on_change=self._breaker_hook(name, number)),
            bulkhead=bulkhead,
            nbytes=loaded.version.size,
            observed_outputs=observed,
            settings_json=self._platform.settings.model_dump_json(),
            load_seconds=time.perf_counter() - started,
        )

    def _breaker_hook(self, name: str, number: int) -> Callable[[str], None] | None:
        hook = self._on_breaker
        if hook is None:
            return None
        return lambda state: hook(name, number, state)

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

    def _drop(self, key: tuple[str, int]) -> None:
        served = self._served.pop(key)
        asyncio.get_running_loop().create_task(served.close())
        if self._on_unloaded is not None:
            self._on_unloaded(served)

    async def load(self, ref: str) -> ServedModel:
        """Admin: load (and pin) a reference now."""
        served = await self.get(ref)
        self._pinned.add((served.name, served.version))
        return served

    async def unload(self, name: str, version: int | None = None) -> list[int]:
        """Admin: unload a model's versions (all, or one); they reload on their next request."""
        keys = [k for k in self._served if k[0] == name and (version is None or k[1] == version)]
        for key in keys:
            self._pinned.discard(key)
            self._drop(key)
        if version is None:
            self._views.pop(name, None)
        return [k[1] for k in keys]

    # -- the registry view -------------------------------------------------------------------
    async def _fetch_view(self, name: str) -> ModelView:
        return await asyncio.to_thread(self._fetch_view_blocking, name)

    def _fetch_view_blocking(self, name: str) -> ModelView:
        model = self._platform.registry.get_model(name)
        page = self._platform.registry.list_versions(name, status="ready", limit=1)
        latest = page.items[0].version if page.items else None
        return ModelView(
            name=name,
            aliases=dict(model.aliases),
            latest_ready=latest,
            options=self._options.defaults.with_tags(model.tags),
        )

    async def refresh(self, only: Collection[str] | None = None) -> None:
        """Re-read every known model (or those in ``only``); warm what an alias now points at,
        then switch to it."""
        for name, old in list(self._views.items()):
            if only is not None and name not in only:
                continue
            try:
                new = await self._fetch_view(name)
            except Exception:  # a model deleted or the database away: keep serving the old view
                log.warning("could not refresh model %s", name, exc_info=True)
                continue
            targets = set(new.aliases.values()) | ({new.latest_ready} - {None})
            in_use = {n for (m, n) in self._served if m == name}
            for number in targets:
                before = [a for a, v in old.aliases.items() if v != number]
                moved_here = [a for a, v in new.aliases.items() if v == number and a in before]
                newly_latest = number == new.latest_ready and old.latest_ready != number
                if (moved_here or newly_latest) and in_use and (name, number) not in self._served:
                    assert number is not None
                    try:
                        await self._load((name, number), new.options)
                    except Exception:
                        log.exception("could not warm %s/%s; keeping the old view", name, number)
                        new = old
                        break
            self._views[name] = new

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._options.poll_interval_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("registry poll failed")


def _reference(ref: str, version: str | None) -> Reference:
    reference = parse_reference(ref)
    if version is None or version == "":
        return reference
    if reference.alias is not None or reference.version is not None:
        raise InvalidInput(
            f"{ref!r} already names a version; do not also give one in the path",
            field="version",
        )
    if version.isdigit():
        return Reference(name=reference.name, version=int(version))
    return parse_reference(f"{reference.name}@{version}")
