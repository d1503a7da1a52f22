"""What ``benchmarks/serving.py`` measures and how it reads it: servers, cells, targets, tables.

Pure bookkeeping (no processes, no sockets): the variants and cells, one :class:`Cell` per
server and cell pooled over rounds, the targets and their verdicts (:func:`evaluate`), and the
rich tables (:func:`render`). ``tests/unit/test_serving_harness.py`` runs it on synthetic cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _loadgen import LoadResult
    from rich.console import Console

__all__ = [
    "ALIASES",
    "BY_KEY",
    "CELLS",
    "FLOOR",
    "GRANIAN",
    "QUICK_CELLS",
    "TARGETS",
    "VARIANTS",
    "Cell",
    "ServerStats",
    "Target",
    "Variant",
    "describe_noisiest",
    "evaluate",
    "noisiest",
    "ratio",
    "render",
]

Key = tuple[str, int, int]  # (variant, rows, clients)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    args: tuple[str, ...] = ()  # extra ``modelplane serve`` arguments; floor: none
    require_auth: bool = False  # MODELPLANE_REQUIRE_AUTH=true, every request bears a token
    default: bool = True  # run when --variants is not given


#: ``serve`` has no switch for the view's poll of the registry and routing table; an interval
#: of a year means it never runs during a benchmark.
NO_POLLING = ("--poll-interval", str(365 * 24 * 3600))
FLOOR = Variant("floor", "floor (Starlette)")
GRANIAN = Variant(
    "granian", "unbatched on granian", ("--max-batch-size", "1"), default=False
)  # the unbatched app under granian (Rust HTTP) instead of uvicorn; no target
VARIANTS = [
    FLOOR,
    # ``modelplane serve`` as a user runs it: batching (default max batch 256, 2 ms window),
    # prediction log, access log (to a pipe), canary controller, view polling, gRPC port open.
    Variant("default", "modelplane serve, defaults"),
    # Attribution: the defaults with one background job switched off each.
    Variant("no-predlog", "defaults, no prediction log", ("--no-prediction-log",)),
    Variant("no-accesslog", "defaults, no access log", ("--no-access-log",)),
    Variant("no-controller", "defaults, no controller", ("--no-controller",)),
    Variant("no-polling", "defaults, no polling", NO_POLLING),
    Variant("unbatched", "defaults, no batching", ("--max-batch-size", "1")),
    Variant("cache", "defaults, cache hits", ("--cache",)),
    Variant(
        "auth",
        "no batching, token required",
        ("--max-batch-size", "1"),
        require_auth=True,
        default=False,
    ),
    Variant(
        "quiet",
        "no background work at all",
        ("--no-prediction-log", "--no-access-log", "--no-controller", *NO_POLLING),
        default=False,
    ),
    GRANIAN,
]
#: Older names: "batched" was ``serve``'s default batching, which is now the "default" variant.
ALIASES = {"batched": "default"}
BY_KEY = {v.key: v for v in VARIANTS}
CELLS: list[tuple[int, int]] = [(1, 1), (1, 8), (1, 64), (32, 1), (32, 8), (32, 64)]
QUICK_CELLS: list[tuple[int, int]] = [(1, 1), (32, 8)]
TAILED = tuple(v.key for v in VARIANTS if v not in (FLOOR, GRANIAN))


@dataclass(frozen=True)
class Target:
    label: str
    variants: tuple[str, ...]
    cells: tuple[tuple[int, int], ...]
    kind: str  # "rate": req/s ≥ goal × floor's; "p99" / "p999": ≤ goal × floor's
    goal: float


TARGETS = [
    Target("p99 ≤ 1.3× floor", TAILED, tuple(CELLS), "p99", 1.3),
    Target("p99.9 ≤ 2× floor", TAILED, tuple(CELLS), "p999", 2.0),
    Target("1 client, default batching req/s", ("default",), ((1, 1),), "rate", 0.95),
    Target("unbatched 1-row req/s", ("unbatched", "auth"), ((1, 1), (1, 8), (1, 64)), "rate", 0.9),
    Target("batched 1-row req/s at c=64", ("default",), ((1, 64),), "rate", 1.5),
    Target("32-row req/s", ("unbatched", "default"), ((32, 8), (32, 64)), "rate", 1.2),
    Target("cache-hit req/s", ("cache",), tuple(CELLS), "rate", 1.8),
]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _spread(values: list[float]) -> float:
    """(max − min) / mean over rounds; NaN with fewer than two rounds."""
    if len(values) < 2:
        return math.nan
    mean = _mean(values)
    return (max(values) - min(values)) / mean if mean else math.nan


@dataclass
class Cell:
    """One server in one cell, pooled over rounds: throughput from all requests over all measured
    time; p50, p99 and p99.9 the mean of the rounds', max the largest; per-round figures kept
    for the spread."""

    variant: str
    rows: int
    clients: int
    requests: int = 0
    duration_s: float = 0.0
    cpu_s: float = 0.0
    rates: list[float] = field(default_factory=list)
    p50s_ms: list[float] = field(default_factory=list)
    p99s_ms: list[float] = field(default_factory=list)
    p999s_ms: list[float] = field(default_factory=list)
    maxes_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mb: float = 0.0  # after the last round's measured run
    peak_mb: float = 0.0  # VmHWM during the measured runs (the largest over rounds)
    predicts: float = 0.0  # model calls (batches) in the measured windows, from /metrics
    predict_rows: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    predlog_dropped: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def p50(self) -> float:
        return _mean(self.p50s_ms)

    @property
    def p99(self) -> float:
        return _mean(self.p99s_ms)

    @property
    def p999(self) -> float:
        return _mean(self.p999s_ms)

    @property
    def max_ms(self) -> float:
        return max(self.maxes_ms) if self.maxes_ms else math.nan

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else math.nan

    @property
    def rate_spread(self) -> float:
        return _spread(self.rates)

    @property
    def p99_spread(self) -> float:
        return _spread(self.p99s_ms)

    def add(
        self,
        load: LoadResult,
        cpu_s: float,
        rss_mb: float,
        peak_mb: float,
        metrics: dict[str, float],
    ) -> None:
        self.requests += load.requests
        self.duration_s += load.duration_s
        self.cpu_s += cpu_s
        self.rates.append(load.rate)
        self.p50s_ms.append(load.p50_ms)
        self.p99s_ms.append(load.p99_ms)
        self.p999s_ms.append(load.p999_ms)
        self.maxes_ms.append(load.max_ms)
        self.errors += load.errors
        self.rss_mb = rss_mb
        self.peak_mb = max(self.peak_mb, peak_mb)
        self.predicts += metrics.get("batch_count", 0.0)
        self.predict_rows += metrics.get("batch_rows", 0.0)
        self.cache_hits += metrics.get("cache_hit", 0.0)
        self.cache_misses += metrics.get("cache_miss", 0.0)
        self.predlog_dropped += metrics.get("predlog_dropped", 0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "rows": self.rows,
            "clients": self.clients,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "errors": self.errors,
            "req_per_s": self.rate,
            "rows_per_s": self.rate * self.rows,
            "p50_ms": self.p50,
            "p99_ms": self.p99,
            "p999_ms": self.p999,
            "max_ms": self.max_ms,
            "cpu_us_per_req": self.cpu_us,
            "rss_mib": self.rss_mb,
            "peak_rss_mib": self.peak_mb,
            "rounds": {
                "req_per_s": self.rates,
                "p50_ms": self.p50s_ms,
                "p99_ms": self.p99s_ms,
                "p999_ms": self.p999s_ms,
                "max_ms": self.maxes_ms,
            },
            "spread": {"req_per_s": self.rate_spread, "p99": self.p99_spread},
            "rows_per_predict": self.predict_rows / self.predicts if self.predicts else None,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "predlog_dropped": self.predlog_dropped,
        }


@dataclass
class ServerStats:
    """One server over the whole run (MiB): before its first request, at the end, the peaks."""

    idle_rss_mb: float = math.nan  # VmRSS once ready, before any request
    start_peak_mb: float = math.nan  # VmHWM once ready: loading the model included
    end_rss_mb: float = math.nan  # VmRSS after the last cell
    output_mb: float = 0.0  # standard output and error (the access log) written
    predlog_mb: float = 0.0  # Parquet the prediction log wrote


def ratio(cells: dict[Key, Cell], variant: str, rows: int, clients: int, kind: str) -> float | None:
    """``variant``'s figure over the floor's in one cell: req/s (``rate``), p99 or p99.9."""
    ours, floor = cells.get((variant, rows, clients)), cells.get((FLOOR.key, rows, clients))
    if ours is None or floor is None or not ours.requests or not floor.requests:
        return None
    if kind == "rate":
        return ours.rate / floor.rate if floor.rate else None
    mine, theirs = (ours.p99, floor.p99) if kind == "p99" else (ours.p999, floor.p999)
    if not theirs or math.isnan(mine) or math.isnan(theirs):
        return None
    return mine / theirs


def evaluate(
    cells: dict[Key, Cell], measured: list[tuple[int, int]], variants: list[str]
) -> list[dict[str, Any]]:
    """One verdict per target, server and cell run; a missing figure fails."""
    verdicts: list[dict[str, Any]] = []
    for target in TARGETS:
        for key in target.variants:
            if key not in variants:
                continue
            for rows, clients in target.cells:
                if (rows, clients) not in measured:
                    continue
                value = ratio(cells, key, rows, clients, target.kind)
                ok = value is not None and (
                    value >= target.goal if target.kind == "rate" else value <= target.goal
                )
                verdicts.append(
                    {
                        "target": target.label,
                        "variant": key,
                        "rows": rows,
                        "clients": clients,
                        "kind": target.kind,
                        "goal": target.goal,
                        "ratio": value,
                        "pass": ok,
                    }
                )
    return verdicts


def noisiest(cells: dict[Key, Cell]) -> Cell | None:
    """The cell whose rounds differ most (relative min–max of req/s or p99); None with one
    round."""
    scored = [
        (max(c.rate_spread, c.p99_spread), c)
        for c in cells.values()
        if not (math.isnan(c.rate_spread) or math.isnan(c.p99_spread))
    ]
    return max(scored, key=lambda sc: sc[0])[1] if scored else None


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _vs(mine: float, theirs: float | None) -> str:
    if not theirs or math.isnan(theirs) or math.isnan(mine):
        return ""
    return f"{mine / theirs:.2f}×"


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 100:.0f} %"


def _cell_name(rows: int, clients: int) -> str:
    return f"{rows}-row c={clients}"


def render(
    cells: dict[Key, Cell],
    measured: list[tuple[int, int]],
    variants: list[str],
    stats: dict[str, ServerStats],
    verdicts: list[dict[str, Any]],
    console: Console,
) -> None:
    """The cell table, the targets (one column per cell) and the servers' memory."""
    from rich.table import Table

    table = Table(
        title="modelplane serve vs bare Starlette (the floor) — GradientBoosting 100×d3, "
        "20 features; server on 1 core, 1 worker"
    )
    for name in (
        "request", "server", "req/s", "p50\nms", "p99\nms", "p99.9\nms", "max\nms",
        "CPU\nµs/req", "peak\nRSS MiB", "req/s\n× floor", "p99\n× floor", "p99.9\n× floor",
        "rows/predict\n· cache hits", "spread\nreq/s · p99", "errors",
    ):  # fmt: skip
        table.add_column(name, justify="left" if name in ("request", "server") else "right")
    order = [v for v in VARIANTS if v.key in variants]
    for index, (rows, clients) in enumerate(measured):
        for variant in order:
            cell = cells.get((variant.key, rows, clients))
            if cell is None:
                continue
            extra = f"{cell.predict_rows / cell.predicts:.1f}" if cell.predicts else ""
            if cell.cache_hits + cell.cache_misses:
                hits = cell.cache_hits / (cell.cache_hits + cell.cache_misses) * 100
                extra = f"{extra} · {hits:.0f} %" if extra else f"{hits:.0f} % hits"
            floor = variant is FLOOR
            table.add_row(
                _cell_name(rows, clients) if floor else "",
                variant.label,
                f"{cell.rate:,.0f}",
                f"{cell.p50:.2f}",
                f"{cell.p99:.2f}",
                f"{cell.p999:.2f}",
                f"{cell.max_ms:.1f}",
                f"{cell.cpu_us:,.0f}",
                f"{cell.peak_mb:.0f}",
                "" if floor else _x(ratio(cells, variant.key, rows, clients, "rate")),
                "" if floor else _x(ratio(cells, variant.key, rows, clients, "p99")),
                "" if floor else _x(ratio(cells, variant.key, rows, clients, "p999")),
                extra,
                f"{_pct(cell.rate_spread)} · {_pct(cell.p99_spread)}",
                f"[bold red]{cell.errors}[/]" if cell.errors else "0",
                end_section=index < len(measured) - 1 and variant is order[-1],
            )
    console.print(table)

    passed = sum(v["pass"] for v in verdicts)
    targets = Table(
        title=f"targets (ratios to the floor, same run): {passed} of {len(verdicts)} pass"
    )
    targets.add_column("target")
    targets.add_column("server")
    targets.add_column("goal", justify="right")
    for rows, clients in measured:
        targets.add_column(_cell_name(rows, clients), justify="right")
    rows_of: dict[tuple[str, str], dict[tuple[int, int], dict[str, Any]]] = {}
    goals: dict[tuple[str, str], str] = {}
    for verdict in verdicts:
        key = (verdict["target"], verdict["variant"])
        rows_of.setdefault(key, {})[(verdict["rows"], verdict["clients"])] = verdict
        sign = "≥" if verdict["kind"] == "rate" else "≤"
        goals[key] = f"{sign} {verdict['goal']:.2f}×"
    for (label, server), by_cell in rows_of.items():
        entries = []
        for cell_key in measured:
            found = by_cell.get(cell_key)
            if found is None:
                entries.append("")
            elif found["pass"]:
                entries.append(f"{_x(found['ratio'])} [green]pass[/]")
            else:
                entries.append(f"{_x(found['ratio']) or '—'} [bold red]FAIL[/]")
        targets.add_row(label, server, goals[(label, server)], *entries)
    console.print(targets)

    memory = Table(title="memory (MiB) and output per server")
    for name in (
        "server", "idle RSS\n(ready, no request)", "start-up peak\n(VmHWM when ready)",
        "largest cell peak\n(VmHWM)", "RSS after\nthe run", "idle\n× floor", "after\n× floor",
        "stdout+stderr\nMiB", "prediction log\nMiB written",
    ):  # fmt: skip
        memory.add_column(name, justify="left" if name == "server" else "right")
    floor_stats = stats.get(FLOOR.key)
    floor_idle = floor_stats.idle_rss_mb if floor_stats else None
    floor_end = floor_stats.end_rss_mb if floor_stats else None
    for variant in order:
        s = stats.get(variant.key)
        if s is None:
            continue
        peaks = [c.peak_mb for c in cells.values() if c.variant == variant.key]

        memory.add_row(
            variant.label,
            f"{s.idle_rss_mb:.0f}",
            f"{s.start_peak_mb:.0f}",
            f"{max(peaks):.0f}" if peaks else "—",
            f"{s.end_rss_mb:.0f}",
            "" if variant is FLOOR else _vs(s.idle_rss_mb, floor_idle),
            "" if variant is FLOOR else _vs(s.end_rss_mb, floor_end),
            f"{s.output_mb:.1f}",
            f"{s.predlog_mb:.1f}",
        )
    console.print(memory)


def describe_noisiest(cells: dict[Key, Cell]) -> str:
    """One line naming the cell whose rounds differ most, with its min–max."""
    cell = noisiest(cells)
    if cell is None:
        return "run-to-run spread: one round, none to show (--rounds 2 or more)"
    label = BY_KEY[cell.variant].label if cell.variant in BY_KEY else cell.variant
    return (
        f"noisiest cell: {_cell_name(cell.rows, cell.clients)} {label}: req/s "
        f"{min(cell.rates):,.0f}–{max(cell.rates):,.0f} ({_pct(cell.rate_spread)}), p99 "
        f"{min(cell.p99s_ms):.2f}–{max(cell.p99s_ms):.2f} ms ({_pct(cell.p99_spread)}) over "
        f"{len(cell.rates)} rounds"
    )
