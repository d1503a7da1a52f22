"""Serving benchmark: ``modelplane serve`` as users run it against a bare Starlette floor.

    .venv/bin/python benchmarks/serving.py [--duration 20] [--warmup 2] [--rounds 2] [--quick]
        [--variants default,no-predlog,no-accesslog,no-controller,no-polling,unbatched,cache]
        [--cells 1x1,32x8] [--serve-arg=--max-wait-ms=1 …] [--python-loadgen]
        [--no-floor-venv] [--profile DIR] [--json PATH|-]

**How long**: servers × cells × rounds × (warm-up + measured + ~1.5 s). The default run is
8 servers × 6 cells × 2 rounds × (2 + 20 + 1.5) s ≈ 38 minutes, plus ~30 s of start-up (and
~40 s once to build the floor's venv). ``--quick`` (2 cells, 1 round, 1 s warm-up + 2 s
measured) takes about 1½ minutes. The machine should be quiet: the tail is the point.

The model is a scikit-learn GradientBoostingClassifier (100 trees, depth 3, 20 float features)
fitted here, registered as ``bench@champion`` in a temporary ``MODELPLANE_HOME`` and pickled for
the floor. Every server is one process with one worker, **pinned to the first allowed CPU**;
the load generator (and this script) to the second.

* **floor** — ``_floor_server.py``: a bare Starlette endpoint on uvicorn (uvloop, httptools, no
  access log): ``json.loads`` → ``np.asarray(data).reshape(shape)`` → ``model.predict`` (on the
  event loop) → ``json.dumps``. It runs in a venv of its own (``benchmarks/.floor-venv``, built
  once by ``_floor_venv.py`` with only Starlette, uvicorn[standard], scikit-learn and numpy,
  pinned from ``constraints.txt``), so its RSS is the floor's own; when that venv cannot be
  built (or with ``--no-floor-venv``) it runs in modelplane's venv and the output says so.
* **default** — ``modelplane serve --model bench@champion`` with its defaults, as a user runs it:
  batching (max batch 256, 2 ms window), the prediction log (Parquet under the home; the files
  are counted and deleted between cells), the access log (one JSON line per request on stderr,
  read from a pipe as a log collector would), the canary controller, the view's poll of the
  registry and routing table, the gRPC port open.
* attribution, the defaults with one background job off each: **no-predlog**
  (``--no-prediction-log``), **no-accesslog** (``--no-access-log``), **no-controller**
  (``--no-controller``), **no-polling** (``serve`` has no switch for the poll:
  ``--poll-interval`` of a year);
* **unbatched** (``--max-batch-size 1``) and **cache** (``--cache``; the bodies repeat, so after
  the warm-up every request is a cache hit), both otherwise with the defaults;
* not run unless named in ``--variants``: **auth** (unbatched, ``MODELPLANE_REQUIRE_AUTH``, every
  request bears a read token), **quiet** (every background job above off: the configuration
  earlier versions of this benchmark measured), **granian** (the unbatched app on granian);
  ``batched`` is accepted as the old name of ``default``.

The load generator is ``wrk`` (one thread, a Lua script POSTing the bodies in turn and printing
p50/p99/p99.9/max from its ``done`` hook), or a Python asyncio generator when wrk is missing
(or with ``--python-loadgen``). Each request is ``POST /v2/models/bench/infer`` with one FP64
tensor of 1 or 32 rows; 64 distinct bodies of each size are sent in turn.

Cells: 1, 8 and 64 clients × 1-row and 32-row requests. In each cell the servers take turns
(the order rotates every cell and round); **every other server is stopped (SIGSTOP) meanwhile**,
so their polls and flushes cannot run on the measured server's CPU. Each turn is ``--warmup``
seconds of load, then ``--duration`` seconds measured; ``--rounds`` repeats the sweep and the
rounds are pooled (req/s from all requests over all time; p50, p99, p99.9 the mean of the
rounds; max the largest). Each load-generator run opens its connections and waits 0.3 s before
sending (``_loadgen.RAMP_S``: otherwise the floor's late accepts alone set its p99 at c=64).

Reported per cell and server: req/s, p50/p99/p99.9/max latency, the server's CPU time per
request (``/proc/<pid>/stat``; survives a noisy machine), the peak RSS during the measured run
(VmHWM, reset before each run through ``/proc/<pid>/clear_refs``), ratios to the floor, rows
per ``predict`` and cache hits (``/metrics``), and the run-to-run spread ((max − min) / mean over
rounds of req/s and of p99; the noisiest cell is named with its min–max). Per server: RSS once
ready before any request (idle), VmHWM then (start-up peak), the largest cell peak, RSS after the
run, and the bytes of its output (the access log) and of its prediction log.

Targets, as ratios to the floor in the same run, at every cell measured:

* p99 ≤ 1.3× and p99.9 ≤ 2× the floor's (every modelplane variant but granian);
* 1 client, 1-row, default batching: req/s ≥ 0.95×;
* unbatched 1-row req/s ≥ 0.9× at every concurrency (and "auth", when run);
* default (batched) 1-row req/s at 64 clients ≥ 1.5×; 32-row req/s at 8 and 64 clients ≥ 1.2×
  (unbatched and default);
* cache hits ≥ 1.8× in every cell.

Exit status 1 when a target fails, a server fails to start, answers differently from the floor,
or any request fails. ``--profile DIR`` then records each modelplane server with ``py-spy
--gil`` under load at concurrency 64 (``_serving_profile.py``). ``--json PATH`` (``-``: stdout)
writes every figure, per round too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _floor_venv import floor_python
from _loadgen import LoadResult, run_load, wrk_path
from _serving_profile import Profile, print_profiles, profile
from _serving_report import (
    ALIASES,
    BY_KEY,
    CELLS,
    FLOOR,
    GRANIAN,
    QUICK_CELLS,
    VARIANTS,
    Cell,
    ServerStats,
    Variant,
    describe_noisiest,
    evaluate,
    ratio,
    render,
)
from _serving_servers import Server, free_port

if TYPE_CHECKING:
    from rich.console import Console

HERE = Path(__file__).resolve().parent
MODEL = "bench"
N_FEATURES = 20
N_BODIES = 64  # distinct request bodies of each size, sent in turn
INFER_PATH = f"/v2/models/{MODEL}/infer"
TURN_OVERHEAD_S = 1.5  # per server and cell: two ramps, process starts, /metrics reads
Key = tuple[str, int, int]


def estimate_s(servers: int, cells: int, rounds: int, warmup: int, duration: int) -> float:
    """Seconds the measurement takes (start-up and the floor venv's first build left out)."""
    return servers * cells * rounds * (warmup + duration + TURN_OVERHEAD_S)


def post(url: str, body: str, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + INFER_PATH, data=body.encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# -- set-up ---------------------------------------------------------------------------------


def prepare(
    tmp: Path, seed: int, cells: list[tuple[int, int]]
) -> tuple[Path, Path, dict[int, Path], dict[int, list[str]]]:
    """Fit and register the model; write the floor's pickle and the request bodies."""
    from _bench_model import fit_and_register, oip_body

    rng = np.random.default_rng(seed)
    home, model_path = fit_and_register(tmp, rng, name=MODEL, n_features=N_FEATURES)
    bodies: dict[int, list[str]] = {}
    files: dict[int, Path] = {}
    for rows in sorted({r for r, _ in cells}):
        bodies[rows] = [oip_body(rng, rows, N_FEATURES) for _ in range(N_BODIES)]
        files[rows] = tmp / f"bodies-{rows}.jsonl"
        files[rows].write_text("\n".join(bodies[rows]) + "\n", encoding="utf-8")
    return home, model_path, files, bodies


def start_servers(
    variants: list[Variant],
    tmp: Path,
    home: Path,
    model_path: Path,
    cpu: int | None,
    serve_args: list[str],
    floor_py: str,
) -> dict[str, Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(home)
    servers = {}
    for variant in variants:  # a variant's own arguments come last, so they win
        port = free_port()
        variant_env: dict[str, str] = {}
        predlog = tmp / f"predictions-{variant.key}"
        if variant is FLOOR:
            cmd = [floor_py, str(HERE / "_floor_server.py"), str(model_path),
                   "--port", str(port), "--model-name", MODEL]  # fmt: skip
            run_env = {k: v for k, v in env.items() if k != "MODELPLANE_HOME"}
        else:
            if variant is GRANIAN:
                cmd, variant_env = granian_command(port, serve_args)
            else:
                cmd = [sys.executable, "-m", "modelplane.cli.main", "serve", "--port", str(port),
                       "--grpc-port", str(free_port()), "--model", f"{MODEL}@champion",
                       *serve_args, *variant.args]  # fmt: skip
            variant_env["MODELPLANE_PREDICTION_LOG"] = str(predlog)
            if variant.require_auth:
                variant_env["MODELPLANE_REQUIRE_AUTH"] = "true"
            run_env = {**env, **variant_env}
        server = Server(
            variant.key,
            variant.label,
            cmd,
            run_env,
            cpu,
            port,
            has_metrics=variant is not FLOOR,
            predlog_dir=None if variant is FLOOR else predlog,
        )
        if variant.require_auth:
            server.token = read_token(home)
        servers[variant.key] = server
    return servers


def read_token(home: Path) -> str:
    """A new read-scope token in the benchmark's registry (what a client would present)."""
    from modelplane.auth.commands import CreateToken
    from modelplane.client import Client
    from modelplane.config import Settings

    client = Client(Settings(home=home))
    try:
        secret: str = client.platform.bus.handle(CreateToken(name="bench", scope="read")).secret
        return secret
    finally:
        client.close()


def granian_command(port: int, serve_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``modelplane serve --max-batch-size 1`` as granian runs it: the app factory ``serve``
    hands uvicorn, the same options (through ``MODELPLANE_SERVE_OPTIONS``; the defaults, with
    no gRPC), one worker, one Rust runtime thread, uvloop."""
    from modelplane.cli.serve import APP_FACTORY
    from modelplane.serving.options import ModelOptions, ServeOptions

    if serve_args:
        raise SystemExit("--serve-arg is not passed to the granian variant; run it without")
    options = ServeOptions(
        host="127.0.0.1", port=port, grpc_port=None, models=(f"{MODEL}@champion",),
        defaults=ModelOptions(max_batch_size=1),
    )  # fmt: skip
    cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--workers", "1", "--runtime-threads", "1",
           "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
           APP_FACTORY]  # fmt: skip
    env = {"MODELPLANE_SERVE_OPTIONS": options.to_json(), "OMP_NUM_THREADS": "1"}
    return cmd, env


def check_answers(servers: dict[str, Server], bodies: dict[int, list[str]]) -> None:
    """Every server must give the floor's predictions for a few bodies of each size."""
    floor = servers[FLOOR.key]
    for rows, texts in bodies.items():
        for body in texts[:4]:
            want = post(floor.url, body)["outputs"][0]["data"]
            for server in servers.values():
                if server is floor or server.error:
                    continue
                try:
                    got = post(server.url, body, server.token)["outputs"][0]["data"]
                except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
                    server.error = f"{rows}-row request failed: {exc}"
                    continue
                if [int(v) for v in got] != [int(v) for v in want]:
                    server.error = f"{rows}-row answer {got} differs from the floor's {want}"


# -- the measurement ------------------------------------------------------------------------


def measure(
    servers: dict[str, Server],
    files: dict[int, Path],
    args: argparse.Namespace,
    client_cpu: int | None,
    console: Console,
) -> tuple[dict[Key, Cell], bool]:
    """Every cell, every round, each server in turn with the others stopped; also whether
    VmHWM could be reset before each measured run."""
    cells: dict[Key, Cell] = {}
    live = [s for s in servers.values() if s.error is None]
    peaks_reset = True
    turn = 0
    try:
        for round_ in range(args.rounds):
            for rows, clients in args.cell_list:
                order = live[turn % len(live) :] + live[: turn % len(live)]
                turn += 1
                for server in order:
                    for other in live:
                        if other is not server:
                            other.pause()
                    server.resume()
                    key = (server.key, rows, clients)
                    cell = cells.setdefault(key, Cell(server.key, rows, clients))
                    what = f"round {round_ + 1}/{args.rounds}: {rows}-row c={clients}"
                    what += f" {server.label}"
                    with console.status(what):
                        drive(server, files[rows], clients, args.warmup, args, client_cpu)
                        before_metrics = server.metrics()
                        before_cpu = server.cpu_seconds()
                        peaks_reset = server.reset_peak() and peaks_reset
                        load = drive(server, files[rows], clients, args.duration, args, client_cpu)
                        cpu = server.cpu_seconds() - before_cpu
                        after = server.metrics()
                        delta = {k: v - before_metrics.get(k, 0.0) for k, v in after.items()}
                        rss, peak = server.memory_mb(), server.memory_mb("VmHWM")
                        cell.add(load, cpu, rss, peak, delta)
                        server.prune_predlog()
    finally:
        for server in live:
            server.resume()
    return cells, peaks_reset


def drive(
    server: Server,
    bodies: Path,
    clients: int,
    seconds: int,
    args: argparse.Namespace,
    client_cpu: int | None,
) -> LoadResult:
    return run_load(
        server.url + INFER_PATH,
        bodies,
        connections=clients,
        duration_s=seconds,
        cpu=client_cpu,
        use_wrk=not args.python_loadgen,
        token=server.token,
    )


# -- arguments and the run ------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked; adds ``cell_list`` ((rows, clients) to measure) and
    ``variant_keys`` (the floor first)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, help="measured seconds per cell (default 20)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--rounds", type=int, help="sweeps over every cell, pooled (default 2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development run: 1 s warm-up, 2 s measured, 1 round, cells 1x1 and 32x8 "
        "(explicit --duration/--warmup/--rounds/--cells win)",
    )
    known = [v.key for v in VARIANTS if v is not FLOOR]
    parser.add_argument(
        "--variants",
        default=",".join(v.key for v in VARIANTS if v.default and v is not FLOOR),
        help=f"servers to run besides the floor, among {', '.join(known)} (default: those "
        "without auth, quiet and granian)",
    )
    parser.add_argument(
        "--serve-arg", action="append", default=[], metavar="ARG",
        help="extra `modelplane serve` argument for every modelplane server (repeatable; "
        "write --serve-arg=--max-wait-ms=1)",
    )  # fmt: skip
    parser.add_argument(
        "--python-loadgen", action="store_true", help="use the Python load generator, not wrk"
    )
    parser.add_argument(
        "--cells",
        metavar="ROWSxCLIENTS,…",
        help="measure only these cells, e.g. --cells 1x1,32x8 (default: all six)",
    )
    parser.add_argument(
        "--no-floor-venv",
        action="store_true",
        help="run the floor in modelplane's venv, not in benchmarks/.floor-venv",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy each modelplane server at c=64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (- : stdout)"
    )
    args = parser.parse_args(argv)
    quick = {"duration": 2, "warmup": 1, "rounds": 1}
    full = {"duration": 20, "warmup": 2, "rounds": 2}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.duration < 1 or args.warmup < 1 or args.rounds < 1:
        parser.error("--duration, --warmup and --rounds must be at least 1")
    if args.cells:
        try:
            chosen = [tuple(int(n) for n in c.strip().split("x")) for c in args.cells.split(",")]
        except ValueError:
            chosen = []
        if not chosen or any(c not in CELLS for c in chosen):
            known_cells = ", ".join(f"{r}x{c}" for r, c in CELLS)
            parser.error(f"--cells takes ROWSxCLIENTS among {known_cells}")
        args.cell_list = [c for c in CELLS if c in chosen]
    else:
        args.cell_list = list(QUICK_CELLS if args.quick else CELLS)
    wanted = [ALIASES.get(v.strip(), v.strip()) for v in args.variants.split(",") if v.strip()]
    if set(wanted) - set(known):
        parser.error(f"unknown --variants {sorted(set(wanted) - set(known))}; known: {known}")
    if "granian" in wanted:
        try:
            import granian  # noqa: F401
        except ImportError:
            parser.error("--variants granian needs granian (make install puts it in .venv)")
    args.variant_keys = [v.key for v in VARIANTS if v is FLOOR or v.key in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [BY_KEY[k] for k in args.variant_keys]

    from rich.console import Console

    console = Console(stderr=args.json == "-")
    if not console.is_terminal:  # piped or captured: room for the whole table
        console.width = max(console.width, 200)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu: int | None = cpus[0]
    client_cpu = cpus[1] if len(cpus) > 1 else None
    notes = []
    if client_cpu is None:
        notes.append("[yellow]only one CPU available: server and load generator share it[/]")
        server_cpu = None
    else:
        os.sched_setaffinity(0, {client_cpu})
    loadgen = "wrk (1 thread, Lua POST bodies)" if wrk_path() else "Python asyncio generator"
    if args.python_loadgen:
        loadgen = "Python asyncio generator (--python-loadgen)"
    elif not wrk_path():
        console.print("[yellow]wrk not found (apt-get install wrk): using the Python load "
                      "generator, which may itself be the limit above ~10k req/s[/]")  # fmt: skip
    expected = estimate_s(
        len(variants), len(args.cell_list), args.rounds, args.warmup, args.duration
    )
    console.print(
        f"{len(variants)} servers × {len(args.cell_list)} cells × {args.rounds} round(s) × "
        f"({args.warmup} s warm-up + {args.duration} s measured): about {expected / 60:.0f} min"
    )
    notes.append(
        f"load generator: {loadgen}, pinned to CPU {client_cpu}; servers pinned to CPU "
        f"{server_cpu}, the others stopped (SIGSTOP) while one is measured; {args.rounds} "
        f"round(s) × ({args.warmup} s warm-up + {args.duration} s measured) per server and "
        f"cell; {N_BODIES} distinct bodies per size, sent in turn"
    )
    if args.serve_arg:
        notes.append(f"extra serve arguments: {' '.join(args.serve_arg)}")

    floor_py: str | None = None
    if args.no_floor_venv:
        floor_note = (
            "[yellow]floor in modelplane's venv (--no-floor-venv): its imports see that venv's "
            "packages, its RSS is not the floor's own[/]"
        )
    else:
        with console.status("the floor's venv (built once, ~40 s)…"):
            floor_py, why = floor_python()
        floor_note = (
            f"floor: {why}"
            if floor_py
            else f"[yellow]{why}; the floor runs in modelplane's venv instead (its RSS and "
            "imports are then not the floor's own)[/]"
        )
    notes.append(floor_note)

    started = time.monotonic()
    stats: dict[str, ServerStats] = {}
    with tempfile.TemporaryDirectory(prefix="mp-bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        with console.status("fitting and registering the model…"):
            home, model_path, files, bodies = prepare(tmp, args.seed, args.cell_list)
        servers = start_servers(
            variants, tmp, home, model_path, server_cpu, args.serve_arg,
            floor_py or sys.executable,
        )  # fmt: skip
        cells: dict[Key, Cell] = {}
        tops: dict[str, Profile] = {}
        peaks_reset = True
        try:
            with console.status("starting the servers…"):
                deadline = time.monotonic() + 180
                for server in servers.values():
                    server.wait_ready(deadline)
            for key, server in servers.items():
                if not server.error:  # before any request
                    stats[key] = ServerStats(server.memory_mb(), server.memory_mb("VmHWM"))
            floor = servers[FLOOR.key]
            if floor.error:
                console.print(f"[bold red]the floor server failed: {floor.error}[/]")
                return 1
            check_answers(servers, bodies)
            for server in servers.values():
                if server.error:
                    console.print(f"[bold red]{server.label}: {server.error}[/]")
            cells, peaks_reset = measure(servers, files, args, client_cpu, console)
            for key, s in stats.items():
                s.end_rss_mb = servers[key].memory_mb()
            if args.profile:
                mp = [s for s in servers.values() if s.key != FLOOR.key and not s.error]
                tops = profile(
                    mp,
                    Path(args.profile),
                    args.duration,
                    lambda s, rows, secs: drive(s, files[rows], 64, secs, args, client_cpu),
                    client_cpu,
                    console,
                )
        finally:
            for server in servers.values():
                server.stop()
            for key, s in stats.items():
                servers[key].prune_predlog()
                s.output_mb = servers[key].output.bytes / 2**20
                s.predlog_mb = servers[key].predlog_bytes / 2**20
    if not peaks_reset:
        notes.append(
            "[yellow]VmHWM could not be reset (/proc/PID/clear_refs): cell peaks are the peak "
            "since the server started[/]"
        )
    notes.append(describe_noisiest(cells))
    notes.append(f"total time {time.monotonic() - started:.0f} s")
    measured_keys = [k for k in args.variant_keys if k in servers and not servers[k].error]
    verdicts = evaluate(cells, args.cell_list, measured_keys)
    render(cells, args.cell_list, args.variant_keys, stats, verdicts, console)
    ok = all(v["pass"] for v in verdicts)
    for server in servers.values():
        if server.error:
            ok = False
            console.print(f"[bold red]{server.label}: {server.error}[/]")
    if any(cell.errors for cell in cells.values()):
        ok = False
        console.print("[bold red]some requests failed (non-2xx, socket errors or timeouts)[/]")
    for note in notes:
        console.print(note)
    print_profiles(tops, console)
    if args.json:
        write_json(args, cells, verdicts, stats, servers, tops, loadgen, floor_note, ok,
                   (server_cpu, client_cpu))  # fmt: skip
    return 0 if ok else 1


def write_json(
    args: argparse.Namespace,
    cells: dict[Key, Cell],
    verdicts: list[dict[str, Any]],
    stats: dict[str, ServerStats],
    servers: dict[str, Server],
    tops: dict[str, Profile],
    loadgen: str,
    floor_note: str,
    ok: bool,
    cpus: tuple[int | None, int | None],
) -> None:
    from dataclasses import asdict

    from _serving_report import noisiest

    worst = noisiest(cells)
    data = {
        "cells": [
            {
                **c.as_json(),
                "rate_vs_floor": ratio(cells, c.variant, c.rows, c.clients, "rate"),
                "p99_vs_floor": ratio(cells, c.variant, c.rows, c.clients, "p99"),
                "p999_vs_floor": ratio(cells, c.variant, c.rows, c.clients, "p999"),
            }
            for c in cells.values()
        ],
        "targets": verdicts,
        "servers": {k: asdict(s) for k, s in stats.items()},
        "noisiest_cell": None if worst is None else [worst.variant, worst.rows, worst.clients],
        "errors": {k: s.error for k, s in servers.items() if s.error},
        "profiles": tops,
        "_meta": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "cells": args.cell_list,
            "variants": args.variant_keys,
            "loadgen": loadgen,
            "floor": floor_note,
            "server_cpu": cpus[0],
            "client_cpu": cpus[1],
            "serve_args": args.serve_arg,
            "all_pass": ok,
        },
    }
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
