"""The inference core both edges call: resolve → validate → breaker → cache → bulkhead → batch.

One request's path, in order (each step a span when tracing is on):

1. **route**: the pool resolves the reference against its in-memory view (no database).
2. **validate**: tensors are checked against the version's signature (422 naming the field).
3. **breaker**: while a version's breaker is open its configured fallback answers, else 503.
4. **cache**: when on for the model, (model, version, hash of the input) → stored outputs;
   concurrent identical misses compute once.
5. **queue/predict**: the bulkhead bounds concurrency (503 + Retry-After when full), the timeout
   bounds waiting (504), the batcher runs the model off the event loop on a batch.

Then the prediction log and the metrics take the result through bounded queues.

With a :class:`~modelplane.serving.delivery.TrafficRouter` (``router``), a bare-name request of
a model under an experiment or rollout is answered by the version of the arm its unit falls in
(the response names variant and experiment; live counters count it), and a shadowed model's
requests are mirrored to the candidate after the answer (see ``delivery.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelplane.cache import PredictionCache
from modelplane.cache.codec import decode_outputs, encode_outputs
from modelplane.cache.keys import prediction_key
from modelplane.core.signature import Signature
from modelplane.errors import (
    CircuitOpen,
    DeadlineExceeded,
    ModelplaneError,
    ModelRejectedInput,
    NotReady,
    PredictionFailed,
)
from modelplane.predlog import PredictionLog, PredictionRecord
from modelplane.serving import tracing
from modelplane.serving.delivery import TrafficRouter, server_side
from modelplane.serving.metrics import ServingMetrics
from modelplane.serving.oip import oip_datatype, signature_dtype_to_oip
from modelplane.serving.pool import PREDICT, PROBA, ModelPool, ServedModel
from modelplane.serving.resilience import with_timeout
from modelplane.serving.types import InferRequest, InferResult, ModelInfo, TensorMeta

__all__ = ["InferenceService"]

_NO_SPAN = contextlib.nullcontext()


class InferenceService:
    """Implements :class:`~modelplane.serving.types.InferenceCore` over a model pool."""

    def __init__(
        self,
        pool: ModelPool,
        *,
        executor: Executor | None,
        cache: PredictionCache | None = None,
        metrics: ServingMetrics | None = None,
        predlog: PredictionLog | None = None,
    ) -> None:
        self.pool = pool
        self._executor = executor
        self._cache = cache
        self._metrics = metrics
        self._predlog = predlog
        self._ready = False
        self._draining = False
        self.in_flight = 0
        self.router: TrafficRouter | None = None

    # -- health ------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self._ready and not self._draining

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    def drain(self) -> None:
        """Readiness goes false; requests in flight finish (graceful shutdown)."""
        self._draining = True

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        try:
            served = await self.pool.get(model, version)
        except ModelplaneError:
            return False
        return self.ready() and served is not None

    async def model_info(self, model: str, version: str | None = None) -> ModelInfo:
        served = await self.pool.get(model, version)
        return model_info(served)

    # -- inference ---------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResult:
        if self._draining:
            raise NotReady("the server is shutting down")
        started = time.perf_counter()
        router = self.router
        route, arm = request.route, request.arm
        ref = request.model
        if route is None and router is not None and request.version is None and not request.routed:
            route = router.routes.get(ref)  # only a bare name is a key: "m@a", "m/3" miss
            if route is not None:
                arm = route.pick(request.unit_id)
                ref = f"{ref}/{arm.version}"
        self.in_flight += 1
        try:
            if tracing.enabled():
                with tracing.span("route", model=request.model):
                    served = await self.pool.get(ref, request.version)
            else:  # no span arguments built when tracing is off
                served = await self.pool.get(ref, request.version)
            result = await self._infer_on(served, request)
        except BaseException as exc:
            if route is not None and arm is not None and router is not None and server_side(exc):
                router.record(route, arm, (time.perf_counter() - started) * 1000, ok=False)
            raise
        finally:
            self.in_flight -= 1
        latency_ms = (time.perf_counter() - started) * 1000
        if router is not None:  # no route and no shadow: nothing more than two tests
            if route is not None and arm is not None:
                result.parameters["variant"] = arm.name
                result.parameters["experiment"] = route.name
                router.record(route, arm, latency_ms, ok=not result.fallback)
                if result.id:
                    prediction = result.outputs.get(served.predict_output)
                    router.remember(result.id, route, arm, prediction)
            if router.shadows:
                shadow = router.shadows.get(served.name)
                if shadow is not None and shadow.candidate != served.version and shadow.sample():
                    prediction = result.outputs.get(served.predict_output)
                    router.mirror(shadow, request.inputs, prediction)
        if self._predlog is not None:
            self._predlog.log(
                PredictionRecord(
                    request_id=result.id or "",
                    time=datetime.now(UTC),
                    model=result.model,
                    version=result.version,
                    inputs=request.inputs,
                    outputs=result.outputs,
                    latency_ms=latency_ms,
                    unit_id=request.unit_id,
                    experiment=route.name if route is not None else None,
                    variant=arm.name if arm is not None else None,
                )
            )
        return result

    async def predict_unlogged(
        self, ref: str, inputs: dict[str, np.ndarray[Any, Any]]
    ) -> np.ndarray[Any, Any]:
        """``ref``'s prediction output for ``inputs`` through pool, breaker, bulkhead and batcher,
        with no cache and no prediction log (shadow calls)."""
        served = await self.pool.get(ref)
        batch = served.prepare(inputs)
        outputs = (served.predict_output,)
        out = await self._compute(served, batch, outputs)
        return out[served.predict_output]

    async def _infer_on(
        self, served: ServedModel, request: InferRequest, *, fallback: bool = False
    ) -> InferResult:
        with tracing.span("validate"):
            outputs = served.check_outputs(request.outputs)
            batch = served.prepare(request.inputs)
        cached = False
        try:
            if self._cache is not None and served.options.cache:
                key = prediction_key(served.name, served.version, request.inputs, outputs)
                with tracing.span("cache"):
                    raw, cached = await self._cache.get_or_compute(
                        key,
                        lambda: _encoded(self._compute(served, batch, outputs, request.sole)),
                        bypass=request.no_cache,
                    )
                result_outputs = decode_outputs(raw)
            else:
                result_outputs = await self._compute(served, batch, outputs, request.sole)
        except CircuitOpen:
            ref = served.options.fallback
            if not ref or fallback:
                raise
            backup = await self.pool.get(ref)
            if (backup.name, backup.version) == (served.name, served.version):
                raise
            result = await self._infer_on(backup, request, fallback=True)
            result.fallback = True
            return result
        return InferResult(
            model=served.name,
            version=served.version,
            outputs=result_outputs,
            id=request.id or _request_id(),
            fallback=fallback,
            cached=cached,
        )

    def _on_batch(self, served: ServedModel) -> Callable[[int, int], None] | None:
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

    async def _compute(
        self, served: ServedModel, batch: Any, outputs: tuple[str, ...], sole: bool = False
    ) -> dict[str, np.ndarray[Any, Any]]:
        """``batch``'s outputs through breaker, bulkhead and batcher (no closures per request).
        ``sole``: the edge knows no other request is in flight (see ``InferRequest.sole``)."""
        batcher = served.batchers.get(outputs)
        if batcher is None:
            batcher = served.batcher_for(outputs, self._executor, self._on_batch(served))
        traced = tracing.enabled()
        timeout = served.options.timeout_ms / 1000 if served.options.timeout_ms > 0 else None
        # Asked here, after the cache: a hit never reaches the model, so it is no probe.
        if not served.breaker.allow():
            raise CircuitOpen(
                f"{served.name}/{served.version} is failing and has no fallback; retry later"
            )
        served.in_flight += 1
        try:
            async with served.bulkhead.slot():
                with tracing.span("predict", rows=_rows(batch)) if traced else _NO_SPAN:
                    try:
                        out: dict[str, np.ndarray[Any, Any]]
                        if batcher.inline:
                            # A prediction on the event loop cannot be interrupted: the
                            # deadline is checked when its batch would start (no timer
                            # per request: ~13 µs saved, measured).
                            out = await batcher.submit(batch, timeout=timeout, sole=sole)
                        else:
                            out = await with_timeout(
                                batcher.submit(batch),
                                timeout,
                                what=f"prediction of {served.name}/{served.version}",
                            )
                    except DeadlineExceeded:
                        served.breaker.record(False)
                        raise
                    except ModelplaneError:
                        raise
                    except (ValueError, TypeError) as exc:
                        # The model's own input checks (scikit-learn raises ValueError on
                        # NaN, say): the caller's input, not a failing model.
                        raise ModelRejectedInput(
                            f"{served.name}/{served.version} rejected the input: {exc}"
                        ) from exc
                    except Exception as exc:
                        served.breaker.record(False)
                        raise PredictionFailed(
                            f"{served.name}/{served.version} failed to predict: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    served.breaker.record(True)
                    return out
        finally:
            served.in_flight -= 1


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def _request_id() -> str:
    """Unique across processes and restarts (random prefix) and cheap (a counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


async def _encoded(outputs: Awaitable[dict[str, np.ndarray[Any, Any]]]) -> bytes:
    return encode_outputs(await outputs)


def _rows(batch: Any) -> int:
    if isinstance(batch, dict):
        first = next(iter(batch.values()), None)
        return len(first) if first is not None else 0
    return len(batch)


def model_info(served: ServedModel) -> ModelInfo:
    sig: Signature | None = served.signature
    inputs = tuple(
        TensorMeta(s.name, signature_dtype_to_oip(s.dtype), s.shape)
        for s in (sig.inputs if sig else ())
    )
    seen = served.observed_outputs
    if sig is not None and sig.outputs:
        first = TensorMeta(
            served.predict_output,
            signature_dtype_to_oip(sig.outputs[0].dtype),
            sig.outputs[0].shape,
        )
    else:  # no output signature: what the warm-up inference returned
        dtype, shape = seen.get(PREDICT, ("float64", (-1,)))
        first = TensorMeta(served.predict_output, oip_datatype(np.dtype(dtype)), shape)
    out_meta = [first]
    if served.loaded.runtime.has_proba:
        dtype, shape = seen.get(PROBA, ("float64", (-1, -1)))
        out_meta.append(TensorMeta(PROBA, oip_datatype(np.dtype(dtype)), shape))
    return ModelInfo(
        name=served.name,
        versions=(str(served.version),),
        platform=f"modelplane_{served.loaded.flavor}",
        inputs=inputs,
        outputs=tuple(out_meta),
    )
