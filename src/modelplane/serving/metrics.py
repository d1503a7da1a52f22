"""Prometheus metrics of the inference server, exposed at ``/metrics``.

One :class:`ServingMetrics` per process holds every metric; the server calls its methods on the
request path, so each call costs a dict lookup for the pre-bound label child plus the
increment. Names::

    modelplane_requests_total{model,version,route,status}   counter
    modelplane_request_duration_seconds{model,route}        histogram (0.5 ms … 5 s)
    modelplane_batch_size_rows{model}                       histogram (1 … 1024 rows)
    modelplane_queue_depth{model}                           gauge
    modelplane_cache_events_total{tier,outcome}             counter
    modelplane_cache_bytes                                  gauge: memory the L1 cache holds
    modelplane_model_load_seconds{model}                    histogram
    modelplane_model_loaded_bytes{model,version}            gauge
    modelplane_breaker_state{model,version}                 gauge: 0 closed, 1 half-open, 2 open
    modelplane_prediction_log_dropped_total                 counter
    modelplane_requests_in_flight                           gauge

**Several workers** (``modelplane serve --workers N``): the parent sets
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder *before* the workers import prometheus_client
(the library picks its storage at import time). Each worker then writes its values to
memory-mapped files there, :meth:`ServingMetrics.render` aggregates the files of every worker,
and each worker calls :func:`mark_process_dead` for itself as it shuts down. Gauges aggregate as the
sum over live workers (queue depth, bytes, in-flight) or their maximum (breaker state: the
worst worker's view).

**One process**: the per-request metrics (requests, latency, batch size) count in plain dicts
of ints and bucket lists; :class:`_Deferred`, the collector that holds those three metrics,
copies the totals into them when the registry is collected (a scrape, ``get_sample_value``).
The exposition is the prometheus_client one, unchanged; the request path saves ~5 locked
increments and a Python loop over the buckets. The totals only grow and are *set*, never
added, so a scrape in another thread loses nothing.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

__all__ = ["BREAKER_STATES", "ServingMetrics", "is_multiprocess", "mark_process_dead"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def is_multiprocess() -> bool:
    """Whether metric values live in ``PROMETHEUS_MULTIPROC_DIR`` files, shared by workers.

    True only when the variable was set before prometheus_client was imported: that is when
    the library chose memory-mapped values.
    """
    return bool(os.environ.get(MULTIPROC_ENV)) and values.ValueClass is not values.MutexValue


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges of worker ``pid`` (call it when the worker exits)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _Deferred:
    """Collector of the hot metrics, registered in their place: totals copied in, then collected."""

    def __init__(self, owner: ServingMetrics, metrics: tuple[Any, ...]) -> None:
        self._owner = owner
        self._metrics = metrics

    def describe(self) -> Iterator[Any]:
        for metric in self._metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Any]:
        self._owner._flush()
        for metric in self._metrics:
            yield from metric.collect()


class ServingMetrics:
    """Every serving metric, registered on ``registry`` (a fresh one when not given).

    A fresh registry of our own also gets process and garbage-collector metrics in
    single-process mode (in multiprocess mode those are per process and not aggregated).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            if not is_multiprocess():
                ProcessCollector(registry=registry)
                GCCollector(registry=registry)
        self.registry = registry
        r = registry
        # One process: the three per-request metrics are registered through one _Deferred.
        self._fast = not is_multiprocess()
        hot = None if self._fast else r
        self.requests = Counter(
            "modelplane_requests",
            "Requests answered, by model, version, route and HTTP status.",
            ("model", "version", "route", "status"),
            registry=hot,
        )
        self.latency = Histogram(
            "modelplane_request_duration_seconds",
            "Time from request received to response ready.",
            ("model", "route"),
            buckets=LATENCY_BUCKETS,
            registry=hot,
        )
        self.batch_size = Histogram(
            "modelplane_batch_size_rows",
            "Rows in each batch handed to a model.",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=hot,
        )
        if self._fast:
            r.register(_Deferred(self, (self.requests, self.latency, self.batch_size)))
        self._model_metrics(r)
        # Requests in flight: one process counts in a plain int the gauge reads when scraped
        # (two locked gauge updates per request saved); several workers need the shared file.
        self._in_flight = 0
        self._shared_in_flight = is_multiprocess()
        if not self._shared_in_flight:
            self.in_flight.set_function(lambda: self._in_flight)
        # Pre-bound label children: ``.labels()`` takes a lock and converts every value to
        # str on each call; a plain dict lookup keyed by the raw tuple does not.
        self._children: dict[Hashable, Any] = {}
        self._depths: dict[str, int] = {}
        # One process: totals by raw label tuple, and the label child each one is copied into.
        # A histogram's list: the count of each bucket (+Inf last), then the sum.
        self._counts: dict[tuple[Any, ...], int] = {}
        self._latencies: dict[Hashable, list[float]] = {}
        self._batches: dict[str, list[float]] = {}
        self._targets: dict[Hashable, Any] = {}

    def _model_metrics(self, r: CollectorRegistry) -> None:
        """The metrics of models, cache, log and load (updated off the per-request path)."""
        self.queue_depth = Gauge(
            "modelplane_queue_depth",
            "Requests waiting in a model's batching queue.",
            ("model",),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.cache_events = Counter(
            "modelplane_cache_events",
            "Prediction cache lookups by tier (l1, l2) and outcome (hit, miss, error…).",
            ("tier", "outcome"),
            registry=r,
        )
        self.cache_bytes = Gauge(
            "modelplane_cache_bytes",
            "Memory held by the in-process (L1) prediction cache, entries' real size "
            "(summed over workers).",
            multiprocess_mode="livesum",
            registry=r,
        )
        self._cache_bytes: Callable[[], int] | None = None
        self.load_seconds = Histogram(
            "modelplane_model_load_seconds",
            "Time to load and warm a model version.",
            ("model",),
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.loaded_bytes = Gauge(
            "modelplane_model_loaded_bytes",
            "Memory held by a loaded model version (summed over workers).",
            ("model", "version"),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.breaker = Gauge(
            "modelplane_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (worst worker).",
            ("model", "version"),
            multiprocess_mode="livemax",
            registry=r,
        )
        self.log_dropped_total = Counter(
            "modelplane_prediction_log_dropped",
            "Prediction log records dropped (queue full or write failed).",
            registry=r,
        )
        self.in_flight = Gauge(
            "modelplane_requests_in_flight",
            "Requests being handled now.",
            multiprocess_mode="livesum",
            registry=r,
        )

    def _child(self, metric: Any, *labels: object) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*(str(v) for v in labels))
        return child

    # -- the request path -------------------------------------------------------------------

    def observe_request(
        self, model: str, version: int | str, route: str, status: int, seconds: float
    ) -> None:
        """Count one answered request and observe its latency."""
        if not self._fast:
            self._child(self.requests, model, version, route, status).inc()
            self._child(self.latency, model, route).observe(seconds)
            return
        key = (model, version, route, status)
        counts = self._counts
        n = counts.get(key)
        if n is None:
            self._targets[(0, *key)] = self._child(self.requests, *key)
            n = 0
        counts[key] = n + 1
        timed = self._latencies.get((model, route))
        if timed is None:
            timed = self._new_histogram(
                self._latencies, self.latency, LATENCY_BUCKETS, model, route
            )
        timed[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        timed[-1] += seconds

    def _new_histogram(
        self, totals: dict[Any, list[float]], metric: Any, buckets: tuple[float, ...], *key: str
    ) -> list[float]:
        # The child now (its _created is the first observation's, as before).
        self._targets[(id(metric), *key)] = self._child(metric, *key)
        hist = totals[key if len(key) > 1 else key[0]] = [0] * (len(buckets) + 1) + [0.0]
        return hist

    def _flush(self) -> None:
        """Copy the totals into the prometheus_client children (summed where labels coincide)."""
        if not self._fast:
            return
        per_child: dict[Any, int] = {}
        for key, n in list(self._counts.items()):
            child = self._targets[(0, *key)]
            per_child[child] = per_child.get(child, 0) + n
        for child, n in per_child.items():
            child._value.set(float(n))
        hists: dict[Any, list[float]] = {}
        for metric, totals in ((self.latency, self._latencies), (self.batch_size, self._batches)):
            for hkey, hist in list(totals.items()):
                labels = hkey if isinstance(hkey, tuple) else (hkey,)
                child = self._targets[(id(metric), *labels)]
                snapshot = list(hist)
                acc = hists.get(child)
                if acc is not None:
                    snapshot = [a + b for a, b in zip(acc, snapshot, strict=True)]
                hists[child] = snapshot
        for child, hist in hists.items():
            for bucket, count in zip(child._buckets, hist, strict=False):  # hist[-1]: the sum
                bucket.set(float(count))
            child._sum.set(hist[-1])

    def request_started(self) -> None:
        if self._shared_in_flight:
            self.in_flight.inc()
        else:
            self._in_flight += 1

    def request_finished(self) -> None:
        if self._shared_in_flight:
            self.in_flight.dec()
        else:
            self._in_flight -= 1

    def observe_batch(self, model: str, rows: int) -> None:
        if not self._fast:
            self._child(self.batch_size, model).observe(rows)
            return
        hist = self._batches.get(model)
        if hist is None:
            hist = self._new_histogram(self._batches, self.batch_size, BATCH_BUCKETS, model)
        hist[bisect_left(BATCH_BUCKETS, rows)] += 1
        hist[-1] += rows

    def set_queue_depth(self, model: str, depth: int) -> None:
        # Set on every batch; unchanged (nearly always 0 at low load) it is not written again.
        if self._depths.get(model) != depth:
            self._depths[model] = depth
            self._child(self.queue_depth, model).set(depth)

    def cache_event(self, tier: str, outcome: str) -> None:
        """One cache lookup: ``tier`` ``l1``/``l2``, ``outcome`` ``hit``/``miss``/``error``…"""
        self._child(self.cache_events, tier, outcome).inc()
        # Several workers: the gauge lives in a shared file, written when L1 changes (a set
        # evicts, a miss may drop an expired entry); a hit changes nothing.
        if self._cache_bytes is not None and tier == "l1" and outcome != "hit":
            self.cache_bytes.set(self._cache_bytes())

    def watch_cache(self, bytes_used: Callable[[], int]) -> None:
        """Report ``bytes_used()`` (the L1 cache's real size) as ``modelplane_cache_bytes``.

        One process: read when scraped. Several workers: written on each L1 change, through
        :meth:`cache_event`.
        """
        if is_multiprocess():
            self._cache_bytes = bytes_used
            self.cache_bytes.set(bytes_used())
        else:
            self.cache_bytes.set_function(bytes_used)

    def log_dropped(self, n: int = 1) -> None:
        self.log_dropped_total.inc(n)

    # -- the model pool ---------------------------------------------------------------------

    def model_loaded(self, model: str, version: int | str, seconds: float, nbytes: int) -> None:
        self.load_seconds.labels(model).observe(seconds)
        self.loaded_bytes.labels(model, str(version)).set(nbytes)

    def model_unloaded(self, model: str, version: int | str) -> None:
        """Zero the version's gauges and, in one process, drop their series.

        In multiprocess mode the series stay at zero: prometheus_client cannot remove a
        label set from the workers' files.
        """
        for gauge in (self.loaded_bytes, self.breaker):
            gauge.labels(model, str(version)).set(0)
            if not is_multiprocess():
                gauge.remove(model, str(version))
                for v in {version, str(version)}:
                    self._children.pop((id(gauge), model, v), None)

    def breaker_state(self, model: str, version: int | str, state: str) -> None:
        """``state``: ``closed``, ``half_open`` (or ``half-open``) or ``open``."""
        try:
            value = BREAKER_STATES[state]
        except KeyError:
            raise ValueError(
                f"unknown breaker state {state!r}; expected closed, half_open or open"
            ) from None
        self._child(self.breaker, model, version).set(value)

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type; every worker's values when multiprocess."""
        if is_multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
