"""One loaded, warmed version: its signature checks, batchers, breaker and bulkhead.

:meth:`ServedModel.predict` is the only way a batch reaches the model: breaker ``allow()``
(open → :class:`~modelplane.errors.CircuitOpen`), bulkhead slot (full → 503 + Retry-After), the
timeout (504), then the batcher of the requested outputs. It counts its own requests in flight
(the pool never evicts a busy version) and records each outcome in its breaker.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelplane.core.signature import Signature, validate_columns
from modelplane.errors import (
    CircuitOpen,
    DeadlineExceeded,
    InvalidInput,
    ModelplaneError,
    ModelRejectedInput,
    PredictionFailed,
)
from modelplane.serving import tracing
from modelplane.serving.batcher import Batcher
from modelplane.serving.options import ModelOptions
from modelplane.serving.ports import LoadedVersion, LoaderFactory
from modelplane.serving.resilience import Bulkhead, CircuitBreaker, with_timeout

__all__ = ["PREDICT", "PROBA", "ServedModel", "predict_in_process", "warmup_input"]

PREDICT = "predict"
PROBA = "predict_proba"
Array = np.ndarray[Any, Any]
_NO_SPAN = contextlib.nullcontext()


@dataclass
class ServedModel:
    """One loaded, warmed version with its batchers, breaker and bulkhead."""

    loaded: LoadedVersion
    options: ModelOptions
    breaker: CircuitBreaker
    bulkhead: Bulkhead
    nbytes: int
    load_seconds: float
    batchers: dict[tuple[str, ...], Batcher] = field(default_factory=dict)
    #: dtype and shape of each output as the warm-up saw them (for metadata without a signature)
    observed_outputs: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    executor: Executor | None = None
    #: a process pool's workers load the version themselves: (loader factory, its config)
    worker: tuple[LoaderFactory, str] | None = None
    #: builds a new batcher's callback (metrics), given this model
    on_batch: Callable[[ServedModel], Callable[[int, int], None] | None] | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> int:
        return self.loaded.version

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

    def prepare(self, inputs: dict[str, Array]) -> Any:
        """Check request tensors against the signature; return what the model takes."""
        sig = self.signature
        if sig is None:
            if len(inputs) == 1:
                return next(iter(inputs.values()))
            return {k: _column(v) for k, v in inputs.items()}
        if sig.is_columnar:
            return validate_columns(sig, {k: _column(v) for k, v in inputs.items()})
        return sig.validate(inputs)

    # -- predicting ------------------------------------------------------------------------------
    async def predict(
        self, batch: Any, outputs: tuple[str, ...], sole: bool = False
    ) -> dict[str, Array]:
        """``batch``'s outputs through breaker, bulkhead, timeout and batcher (no closures and
        no extra coroutine per request). ``sole``: the edge knows no other request is in flight
        (``InferRequest.sole``). Failures are sorted: the caller's input (422), the model's
        (500, counted by the breaker), too slow (504, counted)."""
        batcher = self.batchers.get(outputs)
        if batcher is None:
            batcher = self.batcher_for(outputs)
        timeout = self.options.timeout_ms / 1000 if self.options.timeout_ms > 0 else None
        # Asked here, after the cache: a hit never reaches the model, so it is no probe.
        if not self.breaker.allow():
            raise CircuitOpen(
                f"{self.name}/{self.version} is failing and has no fallback; retry later"
            )
        self.in_flight += 1
        try:
            async with self.bulkhead.slot():
                with tracing.span("predict", rows=_rows(batch)) if tracing.enabled() else _NO_SPAN:
                    try:
                        out: dict[str, Array]
                        if batcher.inline:
                            # A prediction on the event loop cannot be interrupted: the deadline
                            # is checked when its batch would start (no timer per request).
                            out = await batcher.submit(batch, timeout=timeout, sole=sole)
                        else:
                            out = await with_timeout(
                                batcher.submit(batch), timeout, what=f"prediction of {self.ref}"
                            )
                    except DeadlineExceeded:
                        self.breaker.record(False)
                        raise
                    except ModelplaneError:
                        raise
                    except (ValueError, TypeError) as exc:
                        # The model's own input checks (scikit-learn raises ValueError on NaN,
                        # say): the caller's input, not a failing model.
                        raise ModelRejectedInput(f"{self.ref} rejected the input: {exc}") from exc
                    except Exception as exc:
                        self.breaker.record(False)
                        raise PredictionFailed(
                            f"{self.ref} failed to predict: {type(exc).__name__}: {exc}"
                        ) from exc
                    self.breaker.record(True)
                    return out
        finally:
            self.in_flight -= 1

    @property
    def ref(self) -> str:
        """``name/version``, as messages name it."""
        return f"{self.name}/{self.version}"

    def batcher_for(self, outputs: tuple[str, ...]) -> Batcher:
        """The batcher of this output set: inline (no executor), threads, or processes."""
        batcher = self.batchers.get(outputs)
        if batcher is not None:
            return batcher
        executor = self.executor
        predict: Callable[[Any], dict[str, Array]]
        concurrency = 1
        if isinstance(executor, ProcessPoolExecutor) and self.worker is not None:
            # GIL-bound models: each worker process loads the version itself (a closure over
            # the loaded model cannot be pickled); the batch and a small reference travel.
            factory, config = self.worker
            predict = functools.partial(
                predict_in_process,
                factory,
                config,
                (self.name, self.version),
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
            on_batch=self.on_batch(self) if self.on_batch is not None else None,
            max_concurrency=concurrency,
            inline=executor is None,
        )
        self.batchers[outputs] = batcher
        return batcher

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()


def _rows(batch: Any) -> int:
    if isinstance(batch, dict):
        first = next(iter(batch.values()), None)
        return len(first) if first is not None else 0
    return len(batch)


def _column(value: Array) -> Array:
    """A column sent as a [n, 1] tensor is the same column as a [n] one."""
    return value.reshape(-1) if value.ndim == 2 and value.shape[1] == 1 else value


def _predictor(
    loaded: Any, outputs: tuple[str, ...], predict_name: str
) -> Callable[[Any], dict[str, Array]]:
    """The batch function of a batcher: where every runtime output enters serving.

    ``loaded`` has a ``runtime`` and a ``signature`` (a :class:`LoadedVersion`). Outputs leave
    it C-contiguous and native-endian (XGBoost's ``predict_proba`` is a transposed view, which
    orjson refuses); an array that already is one is not copied.
    """
    runtime = loaded.runtime
    sig: Signature | None = loaded.signature
    columnar = sig is not None and sig.is_columnar

    def predict(batch: Any) -> dict[str, Array]:
        if columnar and isinstance(batch, dict):
            assert sig is not None
            batch = sig.frame(batch)  # one frame per batch, not per request
        result: dict[str, Array] = {}
        for name in outputs:
            if name == PROBA:
                result[name] = _plain(runtime.predict_proba(batch))
            else:
                result[predict_name] = _plain(runtime.predict(batch))
        return result

    return predict


def _plain(output: Any) -> Array:
    """An output as every encoder takes it: C-contiguous, native byte order (no copy if so)."""
    array = np.ascontiguousarray(output)
    if not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    return array


_PROCESS_MODELS: dict[tuple[str, str, int], Callable[[Any], dict[str, Array]]] = {}


def predict_in_process(
    factory: LoaderFactory,
    config: str,
    key: tuple[str, int],
    outputs: tuple[str, ...],
    predict_name: str,
    batch: Any,
) -> dict[str, Array]:
    """Run in a worker process: load ``key`` once per process (through the loader ``factory``
    builds from ``config``), then predict on the batch."""
    cache_key = (config, *key)
    predictor = _PROCESS_MODELS.get(cache_key)
    if predictor is None:
        loaded = factory(config)(*key)
        predictor = _predictor(loaded, outputs, predict_name)
        _PROCESS_MODELS[cache_key] = predictor
    return predictor(batch)


def warmup_input(signature: Signature | None) -> Any:
    """A one-row input of the right shape and dtypes, or None when the model has no signature."""
    if signature is None or not signature.inputs:
        return None

    def one(dtype: str, shape: tuple[int, ...]) -> Array:
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
