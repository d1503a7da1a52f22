"""gRPC benchmark: ``modelplane serve --grpc-port`` against a bare ``grpc.aio`` floor (issue 13, 5).

    .venv/bin/python benchmarks/grpc.py [--duration 20] [--warmup 2] [--rounds 2] [--quick]
        [--cells 1x1,32x64] [--contents raw|typed] [--json PATH|-]

**How long**: 3 servers × cells × rounds × (warm-up + measured + ~1.5 s). The default run is
3 × 6 × 2 × (2 + 20 + 1.5) s ≈ 14 minutes; ``--quick`` (every cell, 1 round, 1 s warm-up + 3 s
measured) about 1½ minutes.

The model is the REST benchmark's (``benchmarks/serving.py``): a scikit-learn
GradientBoostingClassifier (100 trees, depth 3, 20 float features), fitted here, registered as
``bench@champion`` in a temporary ``MODELPLANE_HOME`` and pickled for the floor. Every server
is one process pinned to the first allowed CPU; the load generator (and this script) to the
second. While one server is measured, the others are stopped (SIGSTOP).

* **gRPC floor** — ``_grpc_floor.py``: ``grpc.aio`` servicer of the same OIP v2 proto (loaded
  by path, not through ``import modelplane``): decode the FP64 tensor, ``model.predict`` inline,
  answer. Runs on modelplane's interpreter but imports none of modelplane.
* **unbatched** — ``modelplane serve --model bench@champion --grpc-port P --max-batch-size 1``,
  otherwise its defaults (prediction log, access log, controller, polling).
* **batched** — ``modelplane serve --model bench@champion --grpc-port P`` (the defaults).

Load: ``_grpc_loadgen.py``, a closed-loop ``grpc.aio`` client in its own process: N callers over
one channel per 16 callers, ``ModelInfer`` with one FP64 input of 1 or 32 rows and ``predict``
asked for, 64 distinct bodies per size prepared in advance and sent in turn, in
``raw_input_contents`` (``--contents raw``, the default, as Triton's client sends) or in
``contents.fp64_contents`` (``--contents typed``). Before measuring, every server answers a few
bodies of each size in both forms and must give the floor's predictions.

Reported per cell and server: req/s, p50/p99/p99.9/max latency, ratios to the floor, rows per
``predict`` (modelplane's ``/metrics``: whether batches form over gRPC), the
server's CPU µs per request (``/proc``), peak RSS during the run (VmHWM, reset first) and RSS
after, and the load generator's own CPU use (near 100 % it is the limit, not the server).

Targets (issue 13, item 5), as ratios to the floor in the same run:

* unbatched req/s ≥ 0.9× the floor at every cell;
* batched req/s ≥ 1.5× the floor at 64 clients, 1-row;
* p99 ≤ 1.3× the floor's at every cell, unbatched and batched.

Exit status 1 when a target fails, a server fails to start or answers differently from the
floor, or a call fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named grpc.py: with benchmarks/ first on sys.path, ``import grpc`` (by
# modelplane, or here) would import this script again. Its siblings are found last instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))

import argparse  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import numpy as np  # noqa: E402
from _grpc_floor import MODEL_INFER, load_pb2  # noqa: E402
from _grpc_loadgen import GrpcLoad, run_grpc_load  # noqa: E402
from _serving_servers import free_port, pinned  # noqa: E402

if TYPE_CHECKING:
    from rich.console import Console

MODEL = "bench"
N_FEATURES = 20
N_BODIES = 64
CELLS = [(1, 1), (1, 8), (1, 64), (32, 1), (32, 8), (32, 64)]  # (rows, clients)
SERVERS = [
    ("floor", "gRPC floor (grpc.aio)", ()),
    ("unbatched", "modelplane, no batching", ("--max-batch-size", "1")),
    ("batched", "modelplane, defaults", ()),
]
LABELS = {key: label for key, label, _ in SERVERS}
TURN_OVERHEAD_S = 1.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
Key = tuple[str, int, int]


# -- bookkeeping (pure) -------------------------------------------------------------------------


@dataclass
class Cell:
    """One server in one cell, pooled over rounds."""

    server: str
    rows: int
    clients: int
    runs: list[GrpcLoad] = field(default_factory=list)
    cpu_s: float = 0.0
    peak_mb: float = 0.0
    rss_mb: float = 0.0
    batches: float = 0.0  # predict calls, from modelplane's /metrics (none for the floor)
    batch_rows: float = 0.0

    def add(
        self,
        load: GrpcLoad,
        cpu_s: float,
        rss_mb: float,
        peak_mb: float,
        batches: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.runs.append(load)
        self.cpu_s += cpu_s
        self.batches += batches[0]
        self.batch_rows += batches[1]
        self.rss_mb = rss_mb
        self.peak_mb = max(self.peak_mb, peak_mb)

    @property
    def rows_per_predict(self) -> float:
        return self.batch_rows / self.batches if self.batches else math.nan

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def rate(self) -> float:
        seconds = sum(r.duration_s for r in self.runs)
        return self.requests / seconds if seconds else 0.0

    def _mean(self, name: str) -> float:
        values = [getattr(r, name) for r in self.runs]
        return statistics.fmean(values) if values else math.nan

    @property
    def p50(self) -> float:
        return self._mean("p50_ms")

    @property
    def p99(self) -> float:
        return self._mean("p99_ms")

    @property
    def p999(self) -> float:
        return self._mean("p999_ms")

    @property
    def max(self) -> float:
        return max((r.max_ms for r in self.runs), default=math.nan)

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else math.nan

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.runs)

    @property
    def client_busy(self) -> float:
        """The load generator's CPU seconds per measured second (1.0: one core saturated)."""
        seconds = sum(r.duration_s for r in self.runs)
        return sum(r.client_cpu_s for r in self.runs) / seconds if seconds else math.nan


def ratio(cells: dict[Key, Cell], server: str, rows: int, clients: int, what: str) -> float:
    mine, floor = cells.get((server, rows, clients)), cells.get(("floor", rows, clients))
    if mine is None or floor is None:
        return math.nan
    a, b = getattr(mine, what), getattr(floor, what)
    return a / b if b else math.nan


def evaluate(cells: dict[Key, Cell], cell_list: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Every target the measured cells allow, with its measured ratio and verdict."""
    verdicts: list[dict[str, Any]] = []

    def check(
        name: str, server: str, rows: int, clients: int, what: str, bound: float, at_least: bool
    ) -> None:
        value = ratio(cells, server, rows, clients, what)
        if math.isnan(value):
            return
        ok = value >= bound if at_least else value <= bound
        verdicts.append(
            {
                "target": name,
                "server": server,
                "rows": rows,
                "clients": clients,
                "value": value,
                "bound": bound,
                "pass": ok,
            }
        )

    for rows, clients in cell_list:
        check("req/s ≥ 0.9× floor", "unbatched", rows, clients, "rate", 0.9, True)
        if rows == 1 and clients == 64:
            check("req/s ≥ 1.5× floor", "batched", rows, clients, "rate", 1.5, True)
        for server in ("unbatched", "batched"):
            check("p99 ≤ 1.3× floor", server, rows, clients, "p99", 1.3, False)
    return verdicts


def render(
    cells: dict[Key, Cell],
    cell_list: list[tuple[int, int]],
    verdicts: list[dict[str, Any]],
    console: Console,
) -> None:
    from rich.table import Table

    table = Table(title="gRPC ModelInfer: modelplane against the grpc.aio floor")
    for name in (
        "cell",
        "server",
        "req/s",
        "×floor",
        "p50 ms",
        "p99 ms",
        "p99 ×floor",
        "p99.9 ms",
        "max ms",
        "CPU µs/req",
        "rows/predict",
        "peak MiB",
        "RSS MiB",
        "loadgen CPU",
        "failed",
    ):
        table.add_column(name, justify="left" if name in ("cell", "server") else "right")
    for rows, clients in cell_list:
        for key, label, _ in SERVERS:
            cell = cells.get((key, rows, clients))
            if cell is None:
                continue
            floor = key == "floor"
            table.add_row(
                f"{rows}-row c={clients}" if floor else "",
                label,
                f"{cell.rate:,.0f}",
                "" if floor else f"{ratio(cells, key, rows, clients, 'rate'):.2f}",
                f"{cell.p50:.2f}",
                f"{cell.p99:.2f}",
                "" if floor else f"{ratio(cells, key, rows, clients, 'p99'):.2f}",
                f"{cell.p999:.2f}",
                f"{cell.max:.1f}",
                f"{cell.cpu_us:,.0f}",
                "" if math.isnan(cell.rows_per_predict) else f"{cell.rows_per_predict:.1f}",
                f"{cell.peak_mb:.0f}",
                f"{cell.rss_mb:.0f}",
                f"{cell.client_busy:.0%}",
                str(cell.failed) if cell.failed else "",
                end_section=key == SERVERS[-1][0],
            )
    console.print(table)
    targets = Table(title="targets (issue 13, item 5)")
    for name in ("target", "server", "cell", "measured", "verdict"):
        targets.add_column(name)
    for v in verdicts:
        verdict = "[green]pass[/]" if v["pass"] else "[bold red]FAIL[/]"
        targets.add_row(
            v["target"],
            LABELS[v["server"]],
            f"{v['rows']}-row c={v['clients']}",
            f"{v['value']:.2f}×",
            verdict,
        )
    console.print(targets)


# -- server processes ---------------------------------------------------------------------------


class Proc:
    """A server process in its own session, pinned to one CPU, its output in a file."""

    def __init__(
        self, key: str, cmd: list[str], env: dict[str, str], cpu: int | None, port: int, log: Path
    ) -> None:
        self.key = key
        self.port = port
        self.target = f"127.0.0.1:{port}"
        self.http_port: int | None = None  # modelplane's REST port (its /metrics)
        self.error: str | None = None
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(cmd, cpu),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=log.parent,  # not benchmarks/: its grpc.py would shadow grpc
            )

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def memory_mb(self, key: str = "VmRSS") -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        return total / 1024

    def reset_peak(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- set-up -------------------------------------------------------------------------------------


def prepare(
    tmp: Path, seed: int, rows_list: list[int], contents: str
) -> tuple[Path, Path, dict[int, Path], dict[int, list[np.ndarray[Any, Any]]]]:
    """Fit and register the REST benchmark's model; pickle it; write the request bodies."""
    from _bench_model import fit_and_register

    rng = np.random.default_rng(seed)
    home, model_path = fit_and_register(tmp, rng, name=MODEL, n_features=N_FEATURES)
    files: dict[int, Path] = {}
    arrays: dict[int, list[np.ndarray[Any, Any]]] = {}
    for rows in rows_list:
        arrays[rows] = [rng.normal(size=(rows, N_FEATURES)) for _ in range(N_BODIES)]
        lines = [
            base64.b64encode(request_bytes(a, raw=contents == "raw")).decode() for a in arrays[rows]
        ]
        files[rows] = tmp / f"bodies-{rows}.b64"
        files[rows].write_text("\n".join(lines) + "\n", encoding="ascii")
    return home, model_path, files, arrays


def request_bytes(data: np.ndarray[Any, Any], *, raw: bool) -> bytes:
    """A serialized ModelInferRequest: one FP64 input, ``predict`` asked for."""
    pb2, _ = load_pb2()
    request = pb2.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(data.shape))
    request.outputs.add(name="predict")
    if raw:
        request.raw_input_contents.append(np.ascontiguousarray(data, dtype="<f8").tobytes())
    else:
        tensor.contents.fp64_contents.extend(data.ravel().tolist())
    return bytes(request.SerializeToString())


def predictions(response: Any) -> list[int]:
    """The ``predict`` output of a ModelInferResponse, raw or typed."""
    for i, out in enumerate(response.outputs):
        if out.name != "predict":
            continue
        if response.raw_output_contents:
            dtype = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[out.datatype]
            return [int(v) for v in np.frombuffer(response.raw_output_contents[i], dtype=dtype)]
        for attr in ("int64_contents", "int_contents", "fp64_contents", "fp32_contents"):
            values = getattr(out.contents, attr)
            if len(values):
                return [int(v) for v in values]
    raise ValueError(f"no predict output in {response}")


def start(tmp: Path, home: Path, model_path: Path, cpu: int | None) -> dict[str, Proc]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    procs = {}
    for key, _, extra in SERVERS:
        port = free_port()
        if key == "floor":
            cmd = [
                sys.executable,
                str(HERE / "_grpc_floor.py"),
                str(model_path),
                "--port",
                str(port),
                "--model-name",
                MODEL,
            ]
            run_env = env
        else:
            cmd = [
                sys.executable,
                "-m",
                "modelplane.cli.main",
                "serve",
                "--port",
                str(free_port()),
                "--grpc-port",
                str(port),
                "--model",
                f"{MODEL}@champion",
                *extra,
            ]
            run_env = {
                **env,
                "MODELPLANE_HOME": str(home),
                "MODELPLANE_PREDICTION_LOG": str(tmp / f"predictions-{key}"),
            }
        procs[key] = Proc(key, cmd, run_env, cpu, port, tmp / f"{key}.log")
        if key != "floor":
            procs[key].http_port = int(cmd[cmd.index("--port") + 1])
    return procs


def wait_ready(procs: dict[str, Proc], timeout_s: float = 180) -> None:
    """Until every server answers ``ModelReady(bench)`` true over gRPC."""
    import grpc

    pb2, pb2_grpc = load_pb2()
    deadline = time.monotonic() + timeout_s
    for proc in procs.values():
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb2_grpc.GRPCInferenceServiceStub(channel)
            while True:
                if proc.proc.poll() is not None:
                    proc.error = f"exited with {proc.proc.returncode}:\n{proc.tail()}"
                    break
                if time.monotonic() > deadline:
                    proc.error = f"not ready in {timeout_s:.0f} s:\n{proc.tail()}"
                    break
                with contextlib.suppress(grpc.RpcError):
                    if stub.ModelReady(pb2.ModelReadyRequest(name=MODEL), timeout=1).ready:
                        break
                time.sleep(0.2)


def check_answers(procs: dict[str, Proc], arrays: dict[int, list[np.ndarray[Any, Any]]]) -> None:
    """A few bodies of each size, raw and typed: every server must answer as the floor does."""
    import grpc

    pb2, _ = load_pb2()
    for rows, samples in arrays.items():
        for data in samples[:3]:
            for raw in (True, False):
                body = request_bytes(data, raw=raw)
                answers = {}
                for key, proc in procs.items():
                    if proc.error:
                        continue
                    with grpc.insecure_channel(proc.target) as channel:
                        try:
                            out = channel.unary_unary(MODEL_INFER)(body, timeout=30)
                            answers[key] = predictions(pb2.ModelInferResponse.FromString(out))
                        except (grpc.RpcError, ValueError, KeyError) as exc:
                            proc.error = f"{rows}-row ModelInfer failed: {exc}"
                for key, got in answers.items():
                    if key != "floor" and got != answers.get("floor"):
                        form = "raw" if raw else "typed"
                        procs[key].error = (
                            f"{rows}-row {form} answer {got} differs from the "
                            f"floor's {answers.get('floor')}"
                        )


def measure(
    procs: dict[str, Proc],
    files: dict[int, Path],
    args: argparse.Namespace,
    client_cpu: int | None,
    console: Console,
) -> dict[Key, Cell]:
    cells: dict[Key, Cell] = {}
    live = [p for p in procs.values() if p.error is None]
    turn = 0
    try:
        for round_ in range(args.rounds):
            for rows, clients in args.cell_list:
                order = live[turn % len(live) :] + live[: turn % len(live)]
                turn += 1
                for proc in order:
                    for other in live:
                        if other is not proc:
                            other.signal(signal.SIGSTOP)
                    proc.signal(signal.SIGCONT)
                    cell = cells.setdefault(
                        (proc.key, rows, clients), Cell(proc.key, rows, clients)
                    )
                    what = (
                        f"round {round_ + 1}/{args.rounds}: {rows}-row c={clients} "
                        f"{LABELS[proc.key]}"
                    )
                    with console.status(what):
                        run_grpc_load(
                            proc.target,
                            files[rows],
                            clients=clients,
                            duration_s=args.warmup,
                            cpu=client_cpu,
                        )
                        metrics0 = batch_counters(proc)
                        cpu0 = proc.cpu_seconds()
                        proc.reset_peak()
                        load = run_grpc_load(
                            proc.target,
                            files[rows],
                            clients=clients,
                            duration_s=args.duration,
                            cpu=client_cpu,
                        )
                        cpu = proc.cpu_seconds() - cpu0
                        metrics1 = batch_counters(proc)
                        batches = (metrics1[0] - metrics0[0], metrics1[1] - metrics0[1])
                        cell.add(load, cpu, proc.memory_mb(), proc.memory_mb("VmHWM"), batches)
                    prune_predlog(args.tmp / f"predictions-{proc.key}")
    finally:
        for proc in live:
            proc.signal(signal.SIGCONT)
    return cells


def batch_counters(proc: Proc) -> tuple[float, float]:
    """(predict calls, rows predicted) so far, from modelplane's ``/metrics``; zeros for the
    floor or when unreadable."""
    if proc.http_port is None:
        return 0.0, 0.0
    import urllib.request

    count = rows = 0.0
    url = f"http://127.0.0.1:{proc.http_port}/metrics"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("modelplane_batch_size_rows_count"):
                count += float(value)
            elif name.startswith("modelplane_batch_size_rows_sum"):
                rows += float(value)
    return count, rows


def prune_predlog(folder: Path) -> None:
    if folder.exists():
        for part in folder.rglob("part-*.parquet"):
            with contextlib.suppress(OSError):
                part.unlink()


# -- arguments and the run ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=int, help="measured seconds per cell (default 20)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--rounds", type=int, help="sweeps over every cell, pooled (default 2)")
    parser.add_argument(
        "--quick", action="store_true", help="development run: 1 s warm-up, 3 s measured, 1 round"
    )
    parser.add_argument("--cells", metavar="ROWSxCLIENTS,…", help="e.g. 1x1,1x64 (default all)")
    parser.add_argument(
        "--contents",
        choices=("raw", "typed"),
        default="raw",
        help="where the load's tensors travel (default raw_input_contents)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (-: stdout)")
    args = parser.parse_args(argv)
    preset = (
        {"duration": 3, "warmup": 1, "rounds": 1}
        if args.quick
        else {"duration": 20, "warmup": 2, "rounds": 2}
    )
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.duration, args.warmup, args.rounds) < 1:
        parser.error("--duration, --warmup and --rounds must be at least 1")
    if args.cells:
        try:
            chosen = {tuple(int(n) for n in c.strip().split("x")) for c in args.cells.split(",")}
        except ValueError:
            chosen = set()
        if not chosen or chosen - set(CELLS):
            parser.error(
                f"--cells takes ROWSxCLIENTS among {', '.join(f'{r}x{c}' for r, c in CELLS)}"
            )
        args.cell_list = [c for c in CELLS if c in chosen]
    else:
        args.cell_list = list(CELLS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    console = Console(stderr=args.json == "-")
    if not console.is_terminal:
        console.width = max(console.width, 200)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu: int | None = cpus[0]
    client_cpu: int | None = cpus[1] if len(cpus) > 1 else None
    notes = []
    if client_cpu is None:
        server_cpu = None
        notes.append("[yellow]one CPU only: servers and load generator share it[/]")
    else:
        os.sched_setaffinity(0, {client_cpu})
    minutes = (
        len(SERVERS)
        * len(args.cell_list)
        * args.rounds
        * (args.warmup + args.duration + TURN_OVERHEAD_S)
        / 60
    )
    console.print(
        f"{len(SERVERS)} servers × {len(args.cell_list)} cells × {args.rounds} "
        f"round(s) × ({args.warmup} s + {args.duration} s): about {minutes:.0f} min"
    )
    notes.append(
        f"servers pinned to CPU {server_cpu} (the others SIGSTOPped meanwhile), load generator "
        f"(_grpc_loadgen.py: grpc.aio, one channel per 16 callers) to CPU {client_cpu}; "
        f"{args.contents} tensor contents; {args.rounds} round(s) × ({args.warmup} s warm-up + "
        f"{args.duration} s measured); {N_BODIES} bodies per size in turn"
    )
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory(prefix="mp-bench-grpc-") as tmp_name:
        args.tmp = Path(tmp_name)
        with console.status("fitting and registering the model…"):
            home, model_path, files, arrays = prepare(
                args.tmp, args.seed, sorted({r for r, _ in args.cell_list}), args.contents
            )
        procs = start(args.tmp, home, model_path, server_cpu)
        cells: dict[Key, Cell] = {}
        idle: dict[str, float] = {}
        try:
            with console.status("starting the servers…"):
                wait_ready(procs)
            idle = {k: p.memory_mb() for k, p in procs.items() if not p.error}
            check_answers(procs, arrays)
            for proc in procs.values():
                if proc.error:
                    ok = False
                    console.print(f"[bold red]{LABELS[proc.key]}: {proc.error}[/]")
            if procs["floor"].error:
                return 1
            cells = measure(procs, files, args, client_cpu, console)
        finally:
            for proc in procs.values():
                proc.stop()
    verdicts = evaluate(cells, args.cell_list)
    render(cells, args.cell_list, verdicts, console)
    ok = ok and all(v["pass"] for v in verdicts)
    if any(c.failed for c in cells.values()):
        ok = False
        console.print("[bold red]some calls failed[/]")
    busy = max((c.client_busy for c in cells.values()), default=0.0)
    if busy > 0.85:
        notes.append(
            f"[yellow]the load generator used up to {busy:.0%} of its CPU: at those "
            "cells it may be the limit[/]"
        )
    notes.append(
        "idle RSS (MiB, ready, before any call): "
        + ", ".join(f"{LABELS[k]} {v:.0f}" for k, v in idle.items())
    )
    notes.append(f"total time {time.monotonic() - started:.0f} s")
    for note in notes:
        console.print(note)
    if args.json:
        data = {
            "cells": [
                {
                    "server": c.server,
                    "rows": c.rows,
                    "clients": c.clients,
                    "rate": c.rate,
                    "p50_ms": c.p50,
                    "p99_ms": c.p99,
                    "p999_ms": c.p999,
                    "max_ms": c.max,
                    "cpu_us_per_request": c.cpu_us,
                    "peak_mb": c.peak_mb,
                    "rss_mb": c.rss_mb,
                    "failed": c.failed,
                    "rows_per_predict": c.rows_per_predict,
                    "loadgen_cpu": c.client_busy,
                    "rate_vs_floor": ratio(cells, c.server, c.rows, c.clients, "rate"),
                    "p99_vs_floor": ratio(cells, c.server, c.rows, c.clients, "p99"),
                    "rounds": [r.__dict__ for r in c.runs],
                }
                for c in cells.values()
            ],
            "targets": verdicts,
            "idle_rss_mb": idle,
            "_meta": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "cells": args.cell_list,
                "contents": args.contents,
                "server_cpu": server_cpu,
                "client_cpu": client_cpu,
                "all_pass": ok,
            },
        }
        text = json.dumps(_finite(data), indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
