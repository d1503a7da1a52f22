"""A smoke test of the start-up benchmark's bookkeeping (``benchmarks/startup.py``).

No process is started and nothing is timed: summaries, the target and the table on synthetic
samples.
"""

from __future__ import annotations

import importlib.util
import io
import math
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("bench_startup", BENCHMARKS / "startup.py")
assert _spec is not None
assert _spec.loader is not None
startup = importlib.util.module_from_spec(_spec)
sys.modules["bench_startup"] = startup
_spec.loader.exec_module(startup)


def test_summary_median_range_and_spread() -> None:
    s = startup.Summary([1.2, 1.0, 2.0, 1.1])
    assert s.median == 1.15
    assert s.min == 1.0
    assert s.max == 2.0
    assert s.spread == (2.0 - 1.0) / 1.15
    empty = startup.Summary()
    assert math.isnan(empty.median)
    assert math.isnan(empty.spread)


def test_target_compares_medians() -> None:
    floor = startup.Summary([1.0, 1.2, 1.1])
    assert startup.verdict(floor, startup.Summary([0.9, 1.0, 1.05]))["pass"]
    slow = startup.verdict(floor, startup.Summary([2.2, 2.3, 2.1]))
    assert not slow["pass"]
    assert slow["value"] == 2.0


def test_rows_and_table_formatting() -> None:
    results = {
        "floor": startup.Summary([1.331, 1.128, 3.05]),
        "ready": startup.Summary([4.645]),
        "none yet": startup.Summary(),
    }
    assert startup.rows(results)[0] == ("floor", "3", "1,331", "1,128", "3,050", "144%")
    assert startup.rows(results)[1][-1] == "0%"
    assert startup.rows(results)[2][-1] == "–"
    from rich.console import Console

    out = io.StringIO()
    target = startup.verdict(results["floor"], results["ready"])
    startup.render(results, target, Console(file=out, width=160), ["a note"])
    text = out.getvalue()
    assert "FAIL" in text
    assert "3.49×" in text
    assert "a note" in text
    assert "1,331" in text
