"""A smoke test of the serving benchmark's harness (``benchmarks/serving.py``), not of serving.

Nothing here times anything or asserts a speed: it parses a canned wrk output, runs the
targets and the report on synthetic cells, and checks the options.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# The benchmark's modules import each other by bare name; benchmarks/ leaves sys.path after
# the import, so its other scripts (registry.py, shadow.py, …) cannot shadow anything.
_saved_path = list(sys.path)
sys.path.insert(0, str(BENCHMARKS))
try:
    import _loadgen
    import _serving_report as report
    import serving
finally:
    sys.path[:] = _saved_path

# What wrk prints with the benchmark's Lua script: its own report, then the done() summary.
WRK_OUTPUT = """\
Running 20s test @ http://127.0.0.1:40123/v2/models/bench/infer
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.31ms    1.02ms  41.20ms   90.12%
    Req/Sec     2.41k   120.33     2.61k    71.00%
  48210 requests in 20.30s, 9.10MB read
Requests/sec:   2374.88
Transfer/sec:    458.99KB
{"requests": 48210, "duration_s": 20.300000, "p50_ms": 3.2610, "p99_ms": 7.5500, \
"p999_ms": 12.0100, "mean_ms": 3.3100, "max_ms": 41.2000, "socket_errors": 0, "non_2xx": 2, \
"timeouts": 0}
"""


def test_the_lua_summary_reports_the_tail() -> None:
    assert "latency:percentile(99.9)" in _loadgen.LUA
    assert "latency.max" in _loadgen.LUA


def test_a_wrk_summary_is_parsed_and_the_ramp_taken_out() -> None:
    result = _loadgen.parse_summary(WRK_OUTPUT, wrk=True)
    assert result.requests == 48210
    assert result.p99_ms == pytest.approx(7.55)
    assert result.p999_ms == pytest.approx(12.01)
    assert result.max_ms == pytest.approx(41.2)
    assert result.duration_s == pytest.approx(20.3 - _loadgen.RAMP_S)
    assert result.errors == 2


def test_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no summary"):
        _loadgen.parse_summary("Running 1s test @ http://127.0.0.1:1/\n", wrk=True)


def _load(rate: float, p99: float, p999: float, seconds: float = 20.0) -> _loadgen.LoadResult:
    return _loadgen.LoadResult(
        requests=round(rate * seconds),
        duration_s=seconds,
        p50_ms=p99 / 3,
        p99_ms=p99,
        p999_ms=p999,
        mean_ms=p99 / 3,
        max_ms=p999 * 2,
    )


def _cells(
    default_p99: float, rounds: int = 2
) -> tuple[dict[tuple[str, int, int], report.Cell], list[tuple[int, int]]]:
    measured = [(1, 1), (32, 8)]
    cells = {}
    for variant, rate, p99 in (("floor", 1000.0, 2.0), ("default", 990.0, default_p99)):
        for rows, clients in measured:
            cell = report.Cell(variant, rows, clients)
            for k in range(rounds):
                load = _load(rate * (1 + 0.1 * k), p99 * (1 + 0.2 * k), 2 * p99)
                cell.add(load, 1.0, 300.0, 320.0 + k, {"batch_count": 10, "batch_rows": 10})
            cells[(variant, rows, clients)] = cell
    return cells, measured


def test_a_cell_within_the_targets_passes() -> None:
    cells, measured = _cells(default_p99=2.2)
    verdicts = report.evaluate(cells, measured, ["floor", "default"])
    kinds = {(v["target"], v["rows"], v["clients"]): v["pass"] for v in verdicts}
    assert kinds[("p99 ≤ 1.3× floor", 1, 1)] is True
    assert kinds[("p99.9 ≤ 2× floor", 32, 8)] is True
    assert kinds[("1 client, default batching req/s", 1, 1)] is True
    # a target on a cell that was not measured (1-row c=64) gives no verdict
    assert not any(v["clients"] == 64 for v in verdicts)


def test_a_cell_over_a_target_reads_fail() -> None:
    cells, measured = _cells(default_p99=5.0)  # 2.5× the floor's p99
    verdicts = report.evaluate(cells, measured, ["floor", "default"])
    p99 = [v for v in verdicts if v["kind"] == "p99"]
    assert p99
    assert all(v["pass"] is False for v in p99)
    assert p99[0]["ratio"] == pytest.approx(2.5)

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=250, color_system=None)
    stats = {"floor": report.ServerStats(140.0, 150.0, 145.0), "default": report.ServerStats()}
    report.render(cells, measured, ["floor", "default"], stats, verdicts, console)
    text = out.getvalue()
    assert "FAIL" in text
    assert "p99.9" in text
    assert "spread" in text
    assert "1-row c=1" in text


def test_pooled_figures_and_the_spread() -> None:
    cells, _ = _cells(default_p99=2.0, rounds=2)
    cell = cells[("default", 1, 1)]
    assert cell.p99 == pytest.approx((2.0 + 2.4) / 2)
    assert cell.max_ms == pytest.approx(8.0)
    assert cell.peak_mb == 321.0
    assert cell.rate_spread == pytest.approx((1089 - 990) / ((1089 + 990) / 2), rel=1e-3)
    assert report.noisiest(cells) is not None
    assert "noisiest cell" in report.describe_noisiest(cells)
    single, _ = _cells(default_p99=2.0, rounds=1)
    assert math.isnan(single[("default", 1, 1)].p99_spread)
    assert report.noisiest(single) is None


def test_quick_is_short_and_explicit_options_win() -> None:
    args = serving.parse_args(["--quick"])
    assert (args.duration, args.warmup, args.rounds) == (2, 1, 1)
    assert args.cell_list == report.QUICK_CELLS
    args = serving.parse_args(["--quick", "--duration", "5", "--cells", "1x64"])
    assert args.duration == 5
    assert args.cell_list == [(1, 64)]


def test_the_default_run_measures_twenty_second_cells_of_every_attribution_variant() -> None:
    args = serving.parse_args([])
    assert args.duration >= 20
    assert args.rounds >= 2
    assert args.cell_list == report.CELLS
    assert len(report.CELLS) == 6
    assert args.variant_keys[0] == "floor"
    for key in ("default", "no-predlog", "no-accesslog", "no-controller", "no-polling"):
        assert key in args.variant_keys
    # what the docstring promises: about 38 minutes for the default run
    servers = len(args.variant_keys)
    cells = len(args.cell_list)
    minutes = serving.estimate_s(servers, cells, args.rounds, args.warmup, args.duration) / 60
    assert 30 < minutes < 45
    assert "38 minutes" in (serving.__doc__ or "")
    # the old name of the default batching still works
    assert serving.parse_args(["--variants", "batched"]).variant_keys == ["floor", "default"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(SystemExit):
        serving.parse_args(["--cells", "3x3"])
    with pytest.raises(SystemExit):
        serving.parse_args(["--variants", "nope"])


@pytest.mark.slow
def test_a_tiny_run_end_to_end(tmp_path: Path) -> None:
    """One 1-second cell, the floor and the defaults, the Python load generator: the harness
    runs and reports. No figure is checked (a target may fail on a busy machine: exit 1)."""
    import json
    import os
    import subprocess

    out = tmp_path / "run.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    proc = subprocess.run(
        [
            sys.executable, str(BENCHMARKS / "serving.py"), "--variants", "default",
            "--cells", "1x1", "--duration", "1", "--warmup", "1", "--rounds", "1",
            "--python-loadgen", "--no-floor-venv", "--json", str(out),
        ],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "p99.9" in proc.stdout
    assert "targets" in proc.stdout
    data = json.loads(out.read_text())
    assert data["errors"] == {}
    assert {c["variant"] for c in data["cells"]} == {"floor", "default"}
    assert all(c["requests"] > 0 for c in data["cells"])
    assert {"idle_rss_mb", "end_rss_mb"} <= set(data["servers"]["default"])


def test_the_floor_server_imports_neither_modelplane_nor_rich() -> None:
    """It runs in the floor's minimal venv, where neither is installed."""
    import ast

    tree = ast.parse((BENCHMARKS / "_floor_server.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "argparse", "json", "pickle", "pathlib", "typing", "numpy",
                        "uvicorn", "starlette"}  # fmt: skip
