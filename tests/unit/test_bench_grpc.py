"""A smoke test of the gRPC benchmark's harness (``benchmarks/grpc.py``), not of serving.

Nothing here times anything or asserts a speed: the floor's servicer answers one request in
process (raw and typed contents), the load generator's percentiles and summary come from
synthetic samples, the targets and the table from synthetic cells.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str, file: str) -> ModuleType:
    """A benchmark module by path, under ``name`` (``grpc.py`` must not become ``grpc``);
    sys.path as it was afterwards."""
    saved = list(sys.path)
    sys.path.append(str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / file)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


floor = _load("_grpc_floor", "_grpc_floor.py")
loadgen = _load("_grpc_loadgen", "_grpc_loadgen.py")
bench = _load("bench_grpc", "grpc.py")


class SignModel:
    """predict: 1 where a row's sum is positive."""

    n_features_in_ = 3

    def predict(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return (X.sum(axis=1) > 0).astype(np.int64)


X = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, 0.5], [0.0, 0.25, -0.5]])
WANT = [1, 0, 0]


def test_the_floor_process_imports_none_of_modelplane() -> None:
    code = (
        "import runpy, sys\n"
        "ns = runpy.run_path(sys.argv[1], run_name='floor')\n"
        "ns['load_pb2'](); import grpc, numpy, pickle\n"
        "print(sorted(m for m in sys.modules if m.startswith('modelplane')))"
    )
    floor_file = str(BENCHMARKS / "_grpc_floor.py")
    out = subprocess.run(
        [sys.executable, "-c", code, floor_file],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_the_floor_decodes_predicts_and_encodes(raw: bool) -> None:
    pb2, _ = floor.load_pb2()
    request = pb2.ModelInferRequest.FromString(bench.request_bytes(X, raw=raw))
    response = floor.infer(SignModel(), "bench", pb2, request)
    assert response.model_name == "bench"
    assert bool(response.raw_output_contents) is raw
    assert bench.predictions(response) == WANT


def test_the_floor_servicer_answers_one_call_over_grpc() -> None:
    pb2, pb2_grpc = floor.load_pb2()

    async def call() -> tuple[list[int], bool]:
        server = grpc.aio.server()
        pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            floor.make_servicer(SignModel(), "bench", pb2, pb2_grpc), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb2_grpc.GRPCInferenceServiceStub(channel)
                ready = await stub.ModelReady(pb2.ModelReadyRequest(name="bench"), timeout=10)
                out = await channel.unary_unary(floor.MODEL_INFER)(
                    bench.request_bytes(X, raw=True), timeout=10
                )
                return bench.predictions(pb2.ModelInferResponse.FromString(out)), ready.ready
        finally:
            await server.stop(None)

    predicted, ready = asyncio.run(call())
    assert predicted == WANT
    assert ready


def test_percentiles_are_nearest_rank() -> None:
    samples = list(range(1, 1001))  # 1..1000
    assert loadgen.percentile(samples, 50) == 501
    assert loadgen.percentile(samples, 99) == 991
    assert loadgen.percentile(samples, 99.9) == 1000
    assert loadgen.percentile(samples, 100) == 1000
    assert loadgen.percentile([], 99) == 0.0
    assert loadgen.percentile([7], 99.9) == 7


def test_summary_in_milliseconds_and_its_json_round_trip() -> None:
    ns = [1_000_000 * k for k in range(100, 0, -1)]  # 1..100 ms, unsorted
    result = loadgen.summarize(ns, 2.0, {"UNAVAILABLE": 2})
    assert (result.requests, result.rate, result.failed) == (100, 50.0, 2)
    assert result.p50_ms == 51.0
    assert result.p99_ms == 100.0
    assert result.max_ms == 100.0
    assert result.mean_ms == pytest.approx(50.5)
    import json
    from dataclasses import asdict

    again = loadgen.parse_result("noise\n" + json.dumps(asdict(result)) + "\n")
    assert again == result
    assert loadgen.channels_for(1) == 1
    assert loadgen.channels_for(16) == 1
    assert loadgen.channels_for(64) == 4


def _cell(server: str, rows: int, clients: int, rate: float, p99: float) -> Any:
    cell = bench.Cell(server, rows, clients)
    load = loadgen.summarize([], 10.0)
    load.requests, load.p50_ms, load.p99_ms = int(rate * 10), p99 / 2, p99
    load.p999_ms, load.max_ms, load.client_cpu_s = p99 * 1.5, p99 * 2, 3.0
    cell.add(load, cpu_s=1.0, rss_mb=100.0, peak_mb=120.0)
    return cell


def test_targets_and_table_on_synthetic_cells() -> None:
    cells = {}
    for rows, clients in bench.CELLS:
        for server, rate, p99 in (
            ("floor", 1000, 10.0),
            ("unbatched", 950, 12.0),
            ("batched", 1400, 14.0),
        ):
            cells[(server, rows, clients)] = _cell(server, rows, clients, rate, p99)
    verdicts = bench.evaluate(cells, bench.CELLS)
    # unbatched rate at 6 cells, batched rate at 1-row c=64, p99 of both at 6 cells
    assert len(verdicts) == 6 + 1 + 12
    failed = {(v["target"], v["server"]) for v in verdicts if not v["pass"]}
    assert failed == {("req/s ≥ 1.5× floor", "batched"), ("p99 ≤ 1.3× floor", "batched")}
    assert bench.ratio(cells, "unbatched", 1, 1, "rate") == pytest.approx(0.95)
    assert math.isnan(bench.ratio(cells, "unbatched", 2, 1, "rate"))
    assert cells[("floor", 1, 1)].cpu_us == pytest.approx(100.0)
    assert cells[("floor", 1, 1)].client_busy == pytest.approx(0.3)
    from rich.console import Console

    out = io.StringIO()
    bench.render(cells, bench.CELLS, verdicts, Console(file=out, width=220))
    text = out.getvalue()
    assert "gRPC floor" in text
    assert "FAIL" in text
    assert "1-row c=64" in text


def test_options() -> None:
    args = bench.parse_args(["--quick"])
    assert (args.duration, args.warmup, args.rounds) == (3, 1, 1)
    assert args.cell_list == bench.CELLS
    args = bench.parse_args(["--cells", "32x64,1x1", "--duration", "5"])
    assert args.cell_list == [(1, 1), (32, 64)]
    assert args.duration == 5
    assert args.rounds == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--cells", "2x2"])
