"""Serving metrics: each call moves its metric; /metrics aggregates workers in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelplane.serving.metrics import ServingMetrics, is_multiprocess


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ServingMetrics:
    return ServingMetrics(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class TestEachCallMovesItsMetric:
    def test_observe_request_counts_and_times(
        self, metrics: ServingMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.observe_request("fraud", 3, "/predict", 200, 0.002)
        metrics.observe_request("fraud", 3, "/predict", 200, 0.004)
        metrics.observe_request("fraud", 3, "/predict", 422, 0.001)

        ok = {"model": "fraud", "version": "3", "route": "/predict", "status": "200"}
        assert value(registry, "modelplane_requests_total", **ok) == 2
        assert value(registry, "modelplane_requests_total", **{**ok, "status": "422"}) == 1
        timed = {"model": "fraud", "route": "/predict"}
        assert value(registry, "modelplane_request_duration_seconds_count", **timed) == 3
        assert value(registry, "modelplane_request_duration_seconds_sum", **timed) == (
            pytest.approx(0.007)
        )
        assert (
            value(registry, "modelplane_request_duration_seconds_bucket", **timed, le="0.0025") == 2
        )

    def test_in_flight_goes_up_and_down(
        self, metrics: ServingMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.request_started()
        metrics.request_started()
        metrics.request_finished()
        assert value(registry, "modelplane_requests_in_flight") == 1

    def test_batch_size_and_queue_depth(
        self, metrics: ServingMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.observe_batch("fraud", 32)
        metrics.set_queue_depth("fraud", 7)
        assert value(registry, "modelplane_batch_size_rows_count", model="fraud") == 1
        assert value(registry, "modelplane_batch_size_rows_sum", model="fraud") == 32
        assert value(registry, "modelplane_batch_size_rows_bucket", model="fraud", le="16.0") == 0
        assert value(registry, "modelplane_queue_depth", model="fraud") == 7

    def test_counted_between_scrapes_and_labels_that_print_alike_share_a_series(
        self, metrics: ServingMetrics, registry: CollectorRegistry
    ) -> None:
        # One process: totals kept in plain dicts, copied in at each collection.
        metrics.observe_request("fraud", 3, "/predict", 200, 0.002)
        metrics.observe_batch("fraud", 2000)
        ok = {"model": "fraud", "version": "3", "route": "/predict", "status": "200"}
        assert value(registry, "modelplane_requests_total", **ok) == 1
        metrics.observe_request("fraud", "3", "/predict", 200, 7.0)
        metrics.observe_batch("fraud", 1)
        for _ in range(2):  # a collection copies totals in; it never adds them twice
            assert value(registry, "modelplane_requests_total", **ok) == 2
            timed = {"model": "fraud", "route": "/predict"}
            assert value(registry, "modelplane_request_duration_seconds_count", **timed) == 2
            assert value(registry, "modelplane_request_duration_seconds_sum", **timed) == 7.002
            assert (
                value(registry, "modelplane_request_duration_seconds_bucket", **timed, le="5.0")
                == 1
            )
            batch = {"model": "fraud"}
            assert value(registry, "modelplane_batch_size_rows_bucket", **batch, le="1.0") == 1
            assert value(registry, "modelplane_batch_size_rows_bucket", **batch, le="+Inf") == 2
            assert value(registry, "modelplane_batch_size_rows_sum", **batch) == 2001

    def test_cache_events(self, metrics: ServingMetrics, registry: CollectorRegistry) -> None:
        metrics.cache_event("l1", "hit")
        metrics.cache_event("l1", "hit")
        metrics.cache_event("l2", "error")
        assert value(registry, "modelplane_cache_events_total", tier="l1", outcome="hit") == 2
        assert value(registry, "modelplane_cache_events_total", tier="l2", outcome="error") == 1

    def test_model_loaded_then_unloaded(
        self, metrics: ServingMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.model_loaded("fraud", 3, 0.8, 1_000_000)
        metrics.breaker_state("fraud", 3, "open")
        assert value(registry, "modelplane_model_load_seconds_count", model="fraud") == 1
        assert value(registry, "modelplane_model_load_seconds_sum", model="fraud") == 0.8
        assert value(registry, "modelplane_model_loaded_bytes", model="fraud", version="3") == 1e6

        metrics.model_unloaded("fraud", 3)
        assert value(registry, "modelplane_model_loaded_bytes", model="fraud", version="3") is None
        assert value(registry, "modelplane_breaker_state", model="fraud", version="3") is None

        metrics.breaker_state("fraud", 3, "closed")  # the cached child was forgotten too
        assert value(registry, "modelplane_breaker_state", model="fraud", version="3") == 0

    @pytest.mark.parametrize(
        ("state", "expected"), [("closed", 0), ("half_open", 1), ("half-open", 1), ("open", 2)]
    )
    def test_breaker_state_is_a_number(
        self, metrics: ServingMetrics, registry: CollectorRegistry, state: str, expected: int
    ) -> None:
        metrics.breaker_state("fraud", "3", state)
        assert value(registry, "modelplane_breaker_state", model="fraud", version="3") == expected

    def test_an_unknown_breaker_state_is_refused(self, metrics: ServingMetrics) -> None:
        with pytest.raises(ValueError, match="unknown breaker state"):
            metrics.breaker_state("fraud", 3, "ajar")

    def test_log_dropped(self, metrics: ServingMetrics, registry: CollectorRegistry) -> None:
        metrics.log_dropped()
        metrics.log_dropped(4)
        assert value(registry, "modelplane_prediction_log_dropped_total") == 5


class TestRender:
    def test_render_in_one_process_lists_every_metric(self) -> None:
        metrics = ServingMetrics()  # its own registry, with process metrics
        metrics.observe_request("fraud", 1, "/predict", 200, 0.01)
        assert not is_multiprocess()

        body, content_type = metrics.render()

        assert content_type.startswith("text/plain")
        text = body.decode()
        for name in (
            "modelplane_requests_total",
            "modelplane_request_duration_seconds",
            "modelplane_batch_size_rows",
            "modelplane_queue_depth",
            "modelplane_cache_events_total",
            "modelplane_model_load_seconds",
            "modelplane_model_loaded_bytes",
            "modelplane_breaker_state",
            "modelplane_prediction_log_dropped_total",
            "modelplane_requests_in_flight",
            "process_resident_memory_bytes",
        ):
            assert name in text, name

    def test_two_instances_do_not_collide(self) -> None:
        """Each server (a test may build several in one process) has its own registry: the
        second one is not refused as a duplicate, and counts apart from the first."""
        first, second = ServingMetrics(), ServingMetrics()
        assert first.registry is not second.registry
        first.observe_batch("fraud", 3)
        first_text = first.render()[0].decode()
        second_text = second.render()[0].decode()
        assert "modelplane_batch_size_rows_count" in first_text
        assert 'modelplane_batch_size_rows_count{model="fraud"} 1.0' in first_text
        assert 'model="fraud"' not in second_text


WORKER = """
import os
from modelplane.serving.metrics import ServingMetrics
m = ServingMetrics()
m.observe_request("fraud", 1, "/predict", 200, 0.01)
m.set_queue_depth("fraud", 3)
m.breaker_state("fraud", 1, "{state}")
print(os.getpid())
"""

RENDER = """
import sys
from modelplane.serving.metrics import ServingMetrics, is_multiprocess, mark_process_dead
assert is_multiprocess()
m = ServingMetrics()
mark_process_dead(int(sys.argv[1]))
sys.stdout.write(m.render()[0].decode())
"""


def test_render_aggregates_every_worker_in_multiprocess_mode(tmp_path: Path) -> None:
    # prometheus_client picks its value storage at import time: only fresh processes that see
    # PROMETHEUS_MULTIPROC_DIR from the start behave like `modelplane serve --workers N`.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    first = python(WORKER.format(state="open")).strip()
    python(WORKER.format(state="closed"))
    text = python(RENDER, first)  # the first worker has exited and is marked dead

    lines = text.splitlines()
    assert (
        'modelplane_requests_total{model="fraud",route="/predict",status="200",version="1"} 2.0'
        in lines
    )
    assert 'modelplane_request_duration_seconds_count{model="fraud",route="/predict"} 2.0' in lines
    assert 'modelplane_queue_depth{model="fraud"} 3.0' in lines  # live workers only
    assert 'modelplane_breaker_state{model="fraud",version="1"} 0.0' in lines
