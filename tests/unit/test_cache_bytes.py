"""The cache's byte bound is what its entries really hold in memory, and it is a metric.

Measured with tracemalloc: a cache filled with many distinct entries (more than fit) holds
within 1.25x of its bound, whatever the size of the values — tiny values, where the per-entry
overhead dominates, were the case that grew RSS by 186 MB under a 64 MiB bound.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelplane.cache import MemoryCache, open_cache
from modelplane.cache.memory import entry_cost
from modelplane.serving.metrics import ServingMetrics

BOUND = 4 << 20


def held_by_a_full_cache(value_bytes: int) -> tuple[int, MemoryCache]:
    """Bytes tracemalloc sees held after filling a cache with twice what fits."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = MemoryCache(BOUND, 3600)
        for i in range(2 * BOUND // (value_bytes + 200) + 100):
            cache.set(f"{i:032x}", os.urandom(value_bytes))  # keys as prediction_key's
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held, cache


class TestByteBound:
    @pytest.mark.parametrize("value_bytes", [1, 8, 64, 300, 1000, 20_000])
    def test_memory_held_stays_within_a_quarter_over_the_bound(self, value_bytes: int) -> None:
        held, cache = held_by_a_full_cache(value_bytes)
        assert cache.bytes_used <= BOUND
        assert cache.bytes_used >= 0.9 * BOUND  # full: the bound is what limits it
        assert held <= 1.25 * BOUND, f"{held / BOUND:.2f}x the bound"

    def test_an_entry_costs_more_than_its_key_and_value(self) -> None:
        assert entry_cost("k" * 32, b"v") > 32 + 1 + 100

    def test_a_view_is_stored_as_its_own_bytes(self) -> None:
        big = bytearray(1 << 20)
        cache = MemoryCache(1 << 16, 60)
        cache.set("k", memoryview(big)[:10])  # type: ignore[arg-type]
        assert cache.get("k") == bytes(10)
        assert cache.bytes_used == entry_cost("k", bytes(10))


class TestCacheBytesMetric:
    def test_the_gauge_reads_the_cache_at_scrape_time(self) -> None:
        metrics = ServingMetrics(CollectorRegistry())
        cache = open_cache(l1_bytes=1 << 20, ttl_s=60, on_event=metrics.cache_event)
        metrics.watch_cache(cache.bytes_used)
        assert metrics.registry.get_sample_value("modelplane_cache_bytes") == 0
        assert cache.l1 is not None
        cache.l1.set("k", b"v" * 100)
        value: Any = metrics.registry.get_sample_value("modelplane_cache_bytes")
        assert value == entry_cost("k", b"v" * 100)

    def test_a_cache_without_l1_reports_zero(self) -> None:
        assert open_cache(l1_bytes=0).bytes_used() == 0


class TestServeFlag:
    def run_serve(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, *args: str) -> Any:
        import signal

        import uvicorn
        from typer.testing import CliRunner

        from modelplane.cli.main import app

        seen: dict[str, str] = {}
        for var in (
            "MODELPLANE_SERVE_OPTIONS",
            "MODELPLANE_HOME",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
        ):
            monkeypatch.delenv(var, raising=False)  # restored after the test
        monkeypatch.setattr(signal, "signal", lambda *a: None)
        monkeypatch.setattr(
            uvicorn,
            "run",
            lambda *a, **k: seen.update(options=os.environ["MODELPLANE_SERVE_OPTIONS"]),
        )
        result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", *args])
        return result, seen

    def test_cache_max_bytes_reaches_the_serve_options(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
    ) -> None:
        from modelplane.serving.options import ServeOptions

        result, seen = self.run_serve(monkeypatch, tmp_path, "--cache-max-bytes", "1048576")
        assert result.exit_code == 0, result.output
        assert ServeOptions.from_json(seen["options"]).cache_bytes == 1 << 20

    def test_a_negative_cache_max_bytes_exits_2(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
    ) -> None:
        result, seen = self.run_serve(monkeypatch, tmp_path, "--cache-max-bytes", "-1")
        assert result.exit_code == 2
        assert "--cache-max-bytes" in result.output
        assert seen == {}

    def test_with_several_workers_the_gauge_is_written_on_each_l1_change(
        self, tmp_path: Any
    ) -> None:
        import subprocess
        import sys

        # prometheus_client picks multiprocess storage at import: a fresh interpreter.
        code = """
import asyncio
from modelplane.cache import open_cache
from modelplane.cache.memory import entry_cost
from modelplane.serving.metrics import ServingMetrics

metrics = ServingMetrics()
cache = open_cache(l1_bytes=1 << 20, ttl_s=60, on_event=metrics.cache_event)
metrics.watch_cache(cache.bytes_used)

async def value() -> bytes:
    return b"v" * 100

asyncio.run(cache.get_or_compute("k" * 32, value))
body, _ = metrics.render()
line = next(l for l in body.decode().splitlines() if l.startswith("modelplane_cache_bytes"))
assert float(line.split()[-1]) == entry_cost("k" * 32, b"v" * 100), line
"""
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
