"""Safe delivery on the serving side: experiments and rollouts route traffic, shadows mirror it.

:class:`TrafficRouter` holds the :class:`~modelplane.traffic.routing.RoutingTable` the replica
follows. A background task re-reads it every poll interval (a new experiment, a rollout's next
step or a deploy is followed within seconds, without a restart); before a new table is swapped
in, every version it routes to, mirrors to or keeps is loaded and warmed, so a new route never
makes a request wait on a cold load. A route whose version cannot be loaded keeps its previous
form (or none) until the next refresh.

On the request path (``InferenceService.infer``) a bare-name request of a routed model costs a
dict lookup and a bucket: ``route.pick(unit_id)`` names the arm, its version answers, and
:class:`~modelplane.traffic.live.LiveStats` counts the request (latency; an error when the
server failed it — client input errors are not counted). Requests of other models pay one dict
lookup. Every ``stats_flush_s`` the counters are added to the totals shared by all replicas
(``traffic_stats``), in a thread; a failed write puts the deltas back for the next one.

**Feedback**: the router remembers the last 100 000 routed requests (request id → subject,
variant, the single-row prediction as a number). ``POST /feedback`` turns a label into an
outcome (1 when the prediction equals it, else 0) or takes a reward as is, stores the row
(subject and variant unknown when another replica served it: the report joins those with the
prediction log by request id, and counts apart the ones it cannot match) and counts it for the
request's variant. Values are bounded (:data:`LABEL_LIMIT`, :data:`REWARD_LIMIT`, finite); a
request has one outcome — a second is a 409 unless it asks to overwrite, which is recorded.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from modelplane.bootstrap import Platform
from modelplane.errors import ModelplaneError
from modelplane.serving.pool import ModelPool
from modelplane.traffic.live import LiveStats
from modelplane.traffic.model import Arm
from modelplane.traffic.routing import Route, RoutingTable, ShadowRoute

__all__ = [
    "LABEL_LIMIT",
    "REWARD_LIMIT",
    "TrafficRouter",
    "compare_outputs",
    "run_controller",
    "server_side",
]

#: A label is a finite number with ``|label| <= LABEL_LIMIT`` (class ids, 0/1, a target value).
LABEL_LIMIT = 1e9
#: A reward is a finite number in ``[-REWARD_LIMIT, REWARD_LIMIT]``: large enough for any
#: business metric, small enough that no single outcome swamps a bandit's or a test's sums.
REWARD_LIMIT = 1e6

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
#: Runs ``model/version`` on named inputs off the log and cache; returns its prediction output.
Runner = Callable[[str, dict[str, Array]], Awaitable[Array]]

RECENT_REQUESTS = 100_000
#: a worker waits this long after a job for others to join its batch: one predict of many rows
#: costs the primary far less than many predicts of one (measured: benchmarks/shadow.py)
SHADOW_LINGER_S = 0.02
SHADOW_MAX_ROWS = 64
FLOAT_TOLERANCE = 1e-6


def server_side(exc: BaseException) -> bool:
    """Whether a failure is the server's (counted as an arm's error) rather than the caller's."""
    if isinstance(exc, ModelplaneError):
        return exc.status >= 500
    return isinstance(exc, Exception)


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
class _Recent:
    subject: str
    variant: str
    predicted: float | None
    scored: bool = False


@dataclass(slots=True)
class _ShadowJob:
    shadow: ShadowRoute
    inputs: dict[str, Array]
    primary: Array | None
    rows: int


class TrafficRouter:
    """The routing table of this replica, its live counters, feedback memory and shadows."""

    def __init__(
        self,
        platform: Platform,
        pool: ModelPool,
        run: Runner,
        *,
        poll_interval_s: float = 2.0,
        flush_interval_s: float = 1.0,
        shadow_queue: int = 1000,
        shadow_workers: int = 2,
        registry: Any = None,
    ) -> None:
        self._views = platform.traffic
        self._store = platform.traffic.store
        self._pool = pool
        self._run = run
        self._poll_interval_s = poll_interval_s
        self._flush_interval_s = flush_interval_s
        self._shadow_workers = max(1, shadow_workers)
        self.table = RoutingTable()
        #: the table's parts the request path reads (one attribute lookup less each)
        self.routes: dict[str, Route] = {}
        self.shadows: dict[str, ShadowRoute] = {}
        self.live = LiveStats()
        self._recent: OrderedDict[str, _Recent] = OrderedDict()
        # Shadow jobs wait in a plain deque (an asyncio.Queue costs ~4 µs a put); one collector
        # task takes them in batches and runs up to ``shadow_workers`` batches at once.
        self._pending: deque[tuple[ShadowRoute, dict[str, Array], Array | None]] = deque()
        self._queue_size = max(1, shadow_queue)
        self._waiter: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(self._shadow_workers)
        self._batches: set[asyncio.Task[None]] = set()
        self._running_jobs = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_lock = asyncio.Lock()
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

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Read (and preload) the routing table once, then poll, flush and run shadows."""
        try:
            await self.refresh()
        except Exception:
            log.exception("could not read the routing table; serving without routes for now")
        self._tasks = [
            asyncio.create_task(self._poll(), name="modelplane-routing-poll"),
            asyncio.create_task(self._flush_loop(), name="modelplane-stats-flush"),
            asyncio.create_task(self._shadow_collector(), name="modelplane-shadow"),
        ]

    async def close(self) -> None:
        """Stop the tasks and write the counters once more."""
        tasks = [*self._tasks, *self._batches]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._pending.clear()
        await self.flush()

    # -- the routing table -------------------------------------------------------------------
    async def refresh(self) -> RoutingTable:
        """Read the table, load and warm what it needs, then swap it in."""
        async with self._refresh_lock:
            table = await asyncio.to_thread(self._views.routing_table)
            old = self.table
            routes = dict(table.routes)
            for model, route in table.routes.items():
                if not await self._ready(model, [arm.version for arm in route.arms]):
                    previous = old.routes.get(model)
                    if previous is not None:
                        routes[model] = previous
                    else:
                        del routes[model]
            shadows = {
                model: shadow
                for model, shadow in table.shadows.items()
                if await self._ready(model, [shadow.candidate])
            }
            now = time.time()
            protect: dict[tuple[str, int], float] = {}
            for keep in table.keep:
                if keep.until > now:
                    await self._ready(keep.model, [keep.version])  # kept for a quick rollback
                    protect[(keep.model, keep.version)] = keep.until
            for route in routes.values():
                for arm in route.arms:
                    protect[(route.model, arm.version)] = math.inf
            for shadow in shadows.values():
                protect[(shadow.model, shadow.candidate)] = math.inf
            # A route that ends (a promotion, a rollback, a stopped experiment) hands the bare
            # name back to the model's aliases: read them first, or a promoted candidate's
            # traffic would go back to the old champion until the pool's own next poll.
            ended = [
                m for m, r in old.routes.items() if m not in routes or routes[m].name != r.name
            ]
            if ended:
                await self._pool.refresh(only=ended)
            self._pool.protect(protect)
            self.table = RoutingTable(routes=routes, shadows=shadows, keep=table.keep)
            self.routes, self.shadows = routes, shadows
            return self.table

    async def _ready(self, model: str, versions: list[int]) -> bool:
        for version in versions:
            if self._pool.has(model, version):
                continue
            try:
                await self._pool.preload(model, version)
            except Exception:
                log.exception(
                    "could not load %s/%s for its route; not routing to it", model, version
                )
                return False
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("routing table refresh failed; keeping the current one")

    # -- live counters -----------------------------------------------------------------------
    def record(self, route: Route, arm: Arm, latency_ms: float, *, ok: bool) -> None:
        self.live.request(route.subject, arm.name, latency_ms, ok=ok)

    async def flush(self) -> None:
        """Add what was counted since the last flush to the shared totals (in a thread)."""
        deltas = self.live.drain()
        if not deltas:
            return
        try:
            await asyncio.to_thread(self._store.add_counters, deltas)
        except Exception:
            log.warning("could not write traffic counters; retrying with the next flush",
                        exc_info=True)  # fmt: skip
            self.live.restore(deltas)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()

    # -- feedback ----------------------------------------------------------------------------
    def remember(self, request_id: str, route: Route, arm: Arm, prediction: Array | None) -> None:
        """Keep what a later label or reward of this routed request needs."""
        predicted: float | None = None
        if prediction is not None and prediction.size == 1:
            try:
                predicted = float(prediction.reshape(-1)[0])
            except (TypeError, ValueError):
                predicted = None
        recent = self._recent
        recent[request_id] = _Recent(route.subject, arm.name, predicted)
        if len(recent) > RECENT_REQUESTS:
            recent.popitem(last=False)

    async def feedback(
        self,
        request_id: str,
        *,
        label: float | None = None,
        reward: float | None = None,
        overwrite: bool = False,
    ) -> tuple[str | None, int]:
        """Store one outcome, then count it for the request's variant when this replica knows
        the request; returns (that variant or None, the stored revision).

        A second outcome for a request raises Conflict (409) unless ``overwrite``; the live
        counters count a request's first outcome only (the stored row, which the report reads,
        holds the latest and what it replaced).
        """
        known = self._recent.get(request_id)
        subject = variant = None
        if known is not None:
            subject, variant = known.subject, known.variant
        revision = await asyncio.to_thread(
            self._store.add_feedback,
            request_id,
            label=label,
            reward=reward,
            subject=subject,
            variant=variant,
            overwrite=overwrite,
        )
        if known is not None and not known.scored:
            value: float | None = None
            if reward is not None:
                value = reward
            elif label is not None and known.predicted is not None:
                value = 1.0 if known.predicted == label else 0.0
            if value is not None:
                known.scored = True
                self.live.outcome(known.subject, known.variant, value)
        return variant, revision

    # -- shadows -----------------------------------------------------------------------------
    def mirror(self, shadow: ShadowRoute, inputs: dict[str, Array], primary: Array | None) -> None:
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


async def run_controller(platform: Platform, interval_s: float) -> None:
    """Judge and move every running canary every ``interval_s`` (DB work in a thread).

    Several replicas may run it at once: the rollout aggregate refuses a second decision on a
    step (``expected_step``), so a double move cannot happen. Errors are logged, never raised.
    """
    try:
        from modelplane.traffic.controller import RolloutController
    except ImportError:  # pragma: no cover - the controller ships with the traffic package
        log.warning("modelplane.traffic.controller is missing; canaries are not driven here")
        return
    controller = RolloutController(platform.bus, platform.traffic)
    while True:
        await asyncio.sleep(interval_s)
        try:
            decisions = await asyncio.to_thread(controller.tick)
        except Exception:
            log.exception("canary controller tick failed")
            continue
        for decision in decisions:
            if decision.action != "hold":
                log.info("canary: %s", decision.line())
