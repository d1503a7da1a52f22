"""The inference core both edges call: resolve → validate → breaker → cache → bulkhead → batch.

One request's path, in order (each step a span when tracing is on):

1. **route**: the serving view resolves the reference (and, for a routed bare name, the unit's
   arm) against its in-memory view, once per request (no database).
2. **validate**: tensors are checked against the version's signature (422 naming the field).
3. **breaker**: while a version's breaker is open its configured fallback answers, else 503.
4. **cache**: when on for the model, (model, version, hash of the input) → stored outputs;
   concurrent identical misses compute once.
5. **queue/predict**: ``ServedModel.predict``: the bulkhead bounds concurrency (503 +
   Retry-After when full), the timeout bounds waiting (504), the batcher runs the model off the
   event loop on a batch.

Then the prediction log and the metrics take the result through bounded queues.

With a :class:`~modelplane.serving.delivery.TrafficRouter` attached, a routed request (the view
set its route and arm) is counted for its arm by the traffic recorder and remembered for its
feedback (the response names variant and experiment), and a shadowed model's requests are
mirrored to the candidate after the answer (see ``delivery.py``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelplane.cache import PredictionCache
from modelplane.cache.codec import decode_outputs, encode_outputs
from modelplane.cache.keys import prediction_key
from modelplane.core.signature import Signature
from modelplane.errors import CircuitOpen, ModelplaneError, NotReady
from modelplane.predlog import PredictionLog, PredictionRecord
from modelplane.serving import tracing
from modelplane.serving.delivery import TrafficRouter, server_side
from modelplane.serving.feedback import FeedbackMemory
from modelplane.serving.metrics import ServingMetrics
from modelplane.serving.oip import oip_datatype, signature_dtype_to_oip
from modelplane.serving.ports import TrafficRecorder
from modelplane.serving.served import PREDICT, PROBA, ServedModel
from modelplane.serving.shadow import ShadowRunner
from modelplane.serving.types import InferRequest, InferResult, ModelInfo, TensorMeta
from modelplane.serving.view import ServingView

__all__ = ["InferenceService"]


class InferenceService:
    """Implements :class:`~modelplane.serving.types.InferenceCore` over the serving view."""

    def __init__(
        self,
        view: ServingView,
        *,
        cache: PredictionCache | None = None,
        metrics: ServingMetrics | None = None,
        predlog: PredictionLog | None = None,
    ) -> None:
        self.view = view
        self._cache = cache
        self._metrics = metrics
        self._predlog = predlog
        self._ready = False
        self._draining = False
        self.in_flight = 0
        self.router: TrafficRouter | None = None
        self._recorder: TrafficRecorder | None = None
        self._shadows: ShadowRunner | None = None
        self._memory: FeedbackMemory | None = None

    def attach(self, router: TrafficRouter) -> None:
        """Count routed requests, remember them for feedback and mirror shadowed ones."""
        self.router = router
        self._recorder, self._shadows, self._memory = (
            router.live,
            router.shadow_runner,
            router.memory,
        )

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
            served = await self.view.get(model, version)
        except ModelplaneError:
            return False
        return self.ready() and served is not None

    async def model_info(self, model: str, version: str | None = None) -> ModelInfo:
        served = await self.view.get(model, version)
        return model_info(served)

    # -- inference ---------------------------------------------------------------------------
    async def infer(self, request: InferRequest, served: ServedModel | None = None) -> InferResult:
        """Answer ``request``; ``served``: the edge already resolved it (``/predict`` needs the
        version's signature to decode its inputs), so it is not resolved again."""
        if self._draining:
            raise NotReady("the server is shutting down")
        started = time.perf_counter()
        self.in_flight += 1
        try:
            if served is None:
                if tracing.enabled():
                    with tracing.span("route", model=request.model):
                        served = await self.view.resolve(request)
                else:  # no span arguments built when tracing is off
                    served = await self.view.resolve(request)
            result = await self._infer_on(served, request)
        except BaseException as exc:
            route, arm, recorder = request.route, request.arm, self._recorder
            if route is not None and arm is not None and recorder is not None and server_side(exc):
                recorder.request(route.subject, arm.name, (time.perf_counter() - started) * 1000,
                                 ok=False)  # fmt: skip
            raise
        finally:
            self.in_flight -= 1
        latency_ms = (time.perf_counter() - started) * 1000
        if self._recorder is not None:  # no route and no shadow: nothing more than two tests
            self._delivered(served, request, result, latency_ms)
        if self._predlog is not None:
            self._log(request, result, latency_ms)
        return result

    def _delivered(
        self, served: ServedModel, request: InferRequest, result: InferResult, latency_ms: float
    ) -> None:
        """Count a routed request for its arm (and remember it for feedback); mirror a
        shadowed model's request to its candidate."""
        route, arm = request.route, request.arm
        if route is not None and arm is not None:
            result.parameters["variant"] = arm.name
            result.parameters["experiment"] = route.name
            assert self._recorder is not None
            assert self._memory is not None
            self._recorder.request(route.subject, arm.name, latency_ms, ok=not result.fallback)
            if result.id:
                prediction = result.outputs.get(served.predict_output)
                self._memory.remember(result.id, route.subject, arm.name, prediction)
        shadows = self.view.shadows
        if shadows and self._shadows is not None:
            shadow = shadows.get(served.name)
            if shadow is not None and shadow.candidate != served.version and shadow.sample():
                prediction = result.outputs.get(served.predict_output)
                self._shadows.mirror(shadow, request.inputs, prediction)

    def _log(self, request: InferRequest, result: InferResult, latency_ms: float) -> None:
        route, arm = request.route, request.arm
        assert self._predlog is not None
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

    async def predict_unlogged(
        self, ref: str, inputs: dict[str, np.ndarray[Any, Any]]
    ) -> np.ndarray[Any, Any]:
        """``ref``'s prediction output for ``inputs`` through breaker, bulkhead and batcher,
        with no cache and no prediction log (shadow calls)."""
        served = await self.view.get(ref)
        batch = served.prepare(inputs)
        out = await served.predict(batch, (served.predict_output,))
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
                        lambda: _encoded(served.predict(batch, outputs, request.sole)),
                        bypass=request.no_cache,
                    )
                result_outputs = decode_outputs(raw)
            else:
                result_outputs = await served.predict(batch, outputs, request.sole)
        except CircuitOpen:
            ref = served.options.fallback
            if not ref or fallback:
                raise
            backup = await self.view.get(ref)
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


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def _request_id() -> str:
    """Unique across processes and restarts (random prefix) and cheap (a counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


async def _encoded(outputs: Awaitable[dict[str, np.ndarray[Any, Any]]]) -> bytes:
    return encode_outputs(await outputs)


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
