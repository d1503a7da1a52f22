"""Shadows: a share of a model's requests mirrored to a candidate, off the request path.

**Shadows**: after the primary answered, ``percent`` % of a shadowed model's requests are put on
a bounded queue (a deque: full → dropped and counted, never waited on). A collector takes what
queued 20 ms after the first job (at once when 64 rows wait; at most 64 rows, since a batch
blocks an inline event loop while it predicts) and runs it as *one* batch of the candidate
through the pool and batcher (no prediction log, no cache; at most ``shadow_workers`` batches at
once): one predict of many rows costs the primary far less than many predicts of one (measured
in process: a 100 % shadow of a 100-tree GBM adds ~5 µs of server CPU per request; see
benchmarks/shadow.py for the served latency). Then each request's answers are compared: equal
elementwise for integer, boolean and string outputs; mean absolute difference for floats (agree
when under 1e-6).

A shadow call is counted for its subject and variant through the traffic recorder (latency,
errors, agreement) and in Prometheus (``modelplane_shadow_calls``, ``modelplane_shadow_dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from modelplane.errors import ModelplaneError
from modelplane.serving.ports import Shadow, TrafficRecorder

__all__ = ["FLOAT_TOLERANCE", "ShadowRunner", "compare_outputs"]

log = logging.getLogger("modelplane.serving.delivery")  # the server's log reads as before

Array = np.ndarray[Any, Any]
#: Runs ``model/version`` on named inputs off the log and cache; returns its prediction output.
Runner = Callable[[str, dict[str, Array]], Awaitable[Array]]

#: a worker waits this long after a job for others to join its batch: one predict of many rows
#: costs the primary far less than many predicts of one (measured: benchmarks/shadow.py)
SHADOW_LINGER_S = 0.02
SHADOW_MAX_ROWS = 64
FLOAT_TOLERANCE = 1e-6


def compare_outputs(primary: Array | None, candidate: Array) -> tuple[bool | None, float | None]:
    """``(agree, absdiff)`` of two predictions of the same rows (None: nothing to compare)."""
    if primary is None:
        return None, None
    a, b = np.asarray(primary), np.asarray(candidate)
    if a.shape != b.shape:
        return False, None
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            diff = float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        except (TypeError, ValueError):
            return False, None
        if a.size == 0:
            diff = 0.0
        return (diff < FLOAT_TOLERANCE if math.isfinite(diff) else False), diff
    return bool(np.array_equal(a, b)), None


@dataclass(slots=True)
class _ShadowJob:
    shadow: Shadow
    inputs: dict[str, Array]
    primary: Array | None
    rows: int


class ShadowRunner:
    """The shadow queue, its collector and the comparisons."""

    def __init__(
        self,
        run: Runner,
        recorder: TrafficRecorder,
        *,
        queue_size: int = 1000,
        workers: int = 2,
        registry: Any = None,
    ) -> None:
        self._run = run
        self.live = recorder
        # Shadow jobs wait in a plain deque (an asyncio.Queue costs ~4 µs a put); one collector
        # task takes them in batches and runs up to ``workers`` batches at once.
        self._pending: deque[tuple[Shadow, dict[str, Array], Array | None]] = deque()
        self._queue_size = max(1, queue_size)
        self._waiter: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(max(1, workers))
        self._batches: set[asyncio.Task[None]] = set()
        self._running_jobs = 0
        self._task: asyncio.Task[None] | None = None
        self._dropped = Counter(
            "modelplane_shadow_dropped",
            "Shadow calls dropped because the shadow queue was full.",
            ("model",),
            registry=registry,
        )
        self._shadow_calls = Counter(
            "modelplane_shadow_calls",
            "Shadow calls run against a candidate, by outcome (agree, differ, error).",
            ("model", "outcome"),
            registry=registry,
        )
        self.shadow_dropped = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._shadow_collector(), name="modelplane-shadow")

    async def stop(self) -> None:
        """Stop the collector and the batches running; what is queued is dropped."""
        tasks = [*([self._task] if self._task is not None else []), *self._batches]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._pending.clear()

    def mirror(self, shadow: Shadow, inputs: dict[str, Array], primary: Array | None) -> None:
        """Queue a shadow call of these inputs; never waits (full: dropped and counted)."""
        pending = self._pending
        if len(pending) >= self._queue_size:
            self.shadow_dropped += 1
            self.live.shadow_dropped(shadow.subject, shadow.variant)
            self._dropped.labels(shadow.model).inc()
            return
        pending.append((shadow, inputs, primary))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def shadow_pending(self) -> int:
        """Shadow calls queued or running."""
        return len(self._pending) + self._running_jobs

    async def _shadow_collector(self) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending
        while True:
            if not pending:
                self._waiter = loop.create_future()
                await self._waiter
            if len(pending) < SHADOW_MAX_ROWS:  # a full batch waiting goes at once
                await asyncio.sleep(SHADOW_LINGER_S)
            await self._slots.acquire()
            jobs: list[_ShadowJob] = []
            rows = 0
            while pending and rows < SHADOW_MAX_ROWS:
                shadow, inputs, primary = pending.popleft()
                first = next(iter(inputs.values()), None)
                n = len(first) if first is not None and first.ndim else 1
                jobs.append(_ShadowJob(shadow, inputs, primary, n))
                rows += n
            if not jobs:
                self._slots.release()
                continue
            self._running_jobs += len(jobs)
            task = asyncio.create_task(self._shadow_batch(jobs))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _shadow_batch(self, jobs: list[_ShadowJob]) -> None:
        try:
            await self.run_shadows(jobs)
        except Exception:  # one batch's failure never stops the shadows
            log.exception("shadow calls failed")
        finally:
            self._running_jobs -= len(jobs)
            self._slots.release()

    async def run_shadows(self, jobs: list[_ShadowJob]) -> None:
        """Run queued shadow jobs: those of one candidate with alike inputs as one batch."""
        groups: dict[tuple[Any, ...], list[_ShadowJob]] = {}
        for job in jobs:
            shape: tuple[Any, ...] = tuple(
                (k, v.shape[1:], v.dtype.kind) for k, v in sorted(job.inputs.items()) if v.ndim
            )
            if len(shape) != len(job.inputs):
                shape = (id(job),)  # scalars: alone
            groups.setdefault((job.shadow.model, job.shadow.candidate, shape), []).append(job)
        for group in groups.values():
            await self._run_group(group)

    async def _run_group(self, jobs: list[_ShadowJob]) -> None:
        shadow = jobs[0].shadow
        ref = f"{shadow.model}/{shadow.candidate}"
        if len(jobs) == 1:
            inputs = jobs[0].inputs
        else:
            inputs = {k: np.concatenate([j.inputs[k] for j in jobs]) for k in jobs[0].inputs}
        started = time.perf_counter()
        try:
            predicted = await self._run(ref, inputs)
            if len(jobs) > 1 and (
                predicted.ndim == 0 or len(predicted) != sum(j.rows for j in jobs)
            ):
                raise ValueError("the candidate returned another number of rows")
        except Exception as exc:
            if len(jobs) > 1:  # one bad job must not fail the others: each alone
                for job in jobs:
                    await self._run_group([job])
                return
            if not isinstance(exc, ModelplaneError):
                log.warning("shadow call of %s failed", ref, exc_info=True)
            self.live.shadow(shadow.subject, shadow.variant, 0.0, ok=False)
            self._shadow_calls.labels(shadow.model, "error").inc()
            return
        latency_ms = (time.perf_counter() - started) * 1000
        compared = _compare_batch(jobs, predicted) if len(jobs) > 1 else None
        if compared is None:
            compared = []
            offset = 0
            for job in jobs:
                part = predicted if len(jobs) == 1 else predicted[offset : offset + job.rows]
                offset += job.rows
                compared.append(compare_outputs(job.primary, part))
        live, subject, variant = self.live, shadow.subject, shadow.variant
        agreed = 0
        for agree, absdiff in compared:
            agreed += bool(agree)
            live.shadow(subject, variant, latency_ms, ok=True, agree=agree, absdiff=absdiff)
        if agreed:
            self._shadow_calls.labels(shadow.model, "agree").inc(agreed)
        if len(jobs) > agreed:
            self._shadow_calls.labels(shadow.model, "differ").inc(len(jobs) - agreed)


def _compare_batch(
    jobs: list[_ShadowJob], predicted: Array
) -> list[tuple[bool | None, float | None]] | None:
    """:func:`compare_outputs` of every job at once (None: not alike enough, compare each)."""
    primaries: list[Array] = []
    rows = [job.rows for job in jobs]
    for job in jobs:
        p = job.primary
        if p is None or p.ndim == 0 or len(p) != job.rows or job.rows < 1:
            return None
        primaries.append(p)
    try:
        primary: Array = np.concatenate(primaries)
    except ValueError:
        return None
    if primary.shape != predicted.shape:
        return None
    starts = np.cumsum([0, *rows[:-1]])
    width = max(1, int(np.prod(primary.shape[1:])))
    if primary.dtype.kind in "fc" or predicted.dtype.kind in "fc":
        try:
            diff = np.abs(primary.astype(np.float64) - predicted.astype(np.float64))
        except (TypeError, ValueError):
            return None
        means = np.add.reduceat(diff.reshape(len(primary), -1).sum(axis=1), starts) / (
            np.asarray(rows) * width
        )
        return [
            (bool(m < FLOAT_TOLERANCE) if math.isfinite(m) else False, float(m))
            for m in means.tolist()
        ]
    differs = np.asarray(primary != predicted)
    if differs.shape != primary.shape:
        return None
    bad = np.add.reduceat(differs.reshape(len(primary), -1).any(axis=1).astype(np.int64), starts)
    return [(n == 0, None) for n in bad.tolist()]
