"""Serving benchmark: ``modelplane serve`` against a bare Starlette floor, measured in one run.

    .venv/bin/python benchmarks/serving.py [--duration 5] [--warmup 1] [--rounds 2] [--quick]
                                           [--variants unbatched,batched,cache,auth]
                                           [--serve-arg=--max-wait-ms=1 …] [--python-loadgen]
                                           [--cells 1x1,32x8]
                                           [--profile DIR] [--json PATH|-]

The model is a scikit-learn GradientBoostingClassifier (100 trees, depth 3, 20 float features)
fitted here, registered as ``bench@champion`` in a temporary ``MODELPLANE_HOME`` and pickled for
the floor. Four servers are started, each a single process with one worker, all **pinned to the
first allowed CPU**:

* **floor** — a bare Starlette endpoint on uvicorn (uvloop, httptools, no access log):
  ``json.loads`` → ``np.asarray(data).reshape(shape)`` → ``model.predict`` (on the event loop)
  → ``json.dumps``, answering the same OIP v2 body with an OIP v2 response;
* **unbatched** — ``modelplane serve --max-batch-size 1``;
* **batched** — ``modelplane serve`` (default ``--max-batch-size 32``);
* **cache** — ``modelplane serve --cache``; the bodies repeat, so after the warm-up every
  request is a cache hit (the hit ratio is read from ``/metrics`` and shown).

All modelplane servers run with ``--grpc-port 0 --no-access-log --no-prediction-log --model
bench@champion``. The load generator is ``wrk`` (Debian's package; one thread, a Lua script
that POSTs the bodies in turn), or a Python asyncio generator when wrk is missing (or with
``--python-loadgen``), in a separate process **pinned to the second CPU**, as is this script.
Each request is ``POST /v2/models/bench/infer`` with one FP64 tensor of 1 or 32 rows; 64
distinct bodies of each size are sent in turn (the same bodies to every server).

Cells: 1-row requests at concurrency 1, 8 and 64; 32-row requests at 8 and 64. In each cell the
servers take turns (rotating the order every cell and round), each getting ``--warmup`` seconds
of load, then ``--duration`` seconds measured; ``--rounds`` repeats the whole sweep and the
rounds are pooled (throughput from all requests over all time, p50/p99 the mean of the rounds).
Each load-generator run opens its connections and waits 0.3 s before sending (``_loadgen.RAMP_S``):
a server that runs the model on its event loop (the floor) otherwise accepts new connections one
loop turn at a time under load, and the first requests of late connections (~0.8 s at c=64)
alone set the floor's p99 — an artefact of restarting the generator, which made the p99 target
meaningless (floor p99 190-700 ms at c=64 instead of ~25 ms).
Reported per cell: requests/s, rows/s, p50/p99 latency (the load generator's), the server's CPU
time per request (utime+stime from ``/proc/<pid>/stat`` over the measured window ÷ requests: a
figure that survives a noisy machine), its RSS after the cell, and the ratio to the floor. For
modelplane servers, the mean rows per ``predict`` (``/metrics`` batch-size histogram) and the
cache hit ratio over the window.

``--variants auth`` adds "unbatched" with authentication required (``MODELPLANE_REQUIRE_AUTH``):
every request bears a read token; the same target as unbatched (issue #11: the bearer check must
cost nothing measurable on the 1-row path — compare its row with unbatched's in the same run).

Targets (issue #4), as ratios to the floor in the same run:

* unbatched 1-row requests/s ≥ 0.9× the floor at every concurrency (and "auth", when run);
* batched 1-row requests/s at concurrency 64 ≥ 1.5×;
* 32-row requests/s ≥ 1.2× (unbatched and batched, at 8 and 64);
* cache hits ≥ 1.8× in every cell;
* p99 at concurrency 64 ≤ 1.2× the floor's (every modelplane variant, 1 and 32 rows).

Exit status 1 when a target fails, a server fails to start, answers differently from the floor,
or any request fails. ``--profile DIR`` then records each modelplane server with ``py-spy
--gil`` (if installed: ``pip install py-spy``) under load at concurrency 64, 1 and 32 rows, and
prints where its Python time goes (raw stacks stay in DIR). The machine is shared
and noisy: compare within one run; default run ~4½ minutes, ``--quick`` ~1 minute.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loadgen import LoadResult, run_load, wrk_path

if TYPE_CHECKING:
    from rich.console import Console

MODEL = "bench"
N_FEATURES = 20
N_BODIES = 64  # distinct request bodies of each size, sent in turn
INFER_PATH = f"/v2/models/{MODEL}/infer"
READY_PATH = "/v2/health/ready"
MP_ARGS = ("--grpc-port", "0", "--no-access-log", "--no-prediction-log", "--model",
           f"{MODEL}@champion")  # fmt: skip
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    args: tuple[str, ...] = ()  # extra ``modelplane serve`` arguments; floor: none
    require_auth: bool = False  # MODELPLANE_REQUIRE_AUTH=true, every request bears a token


FLOOR = Variant("floor", "floor (Starlette)")
# The same app as "unbatched", served by granian (Rust HTTP, ASGI) instead of uvicorn: the
# measurement behind the choice of HTTP stack (README "Serving"). Not run by default, no target.
GRANIAN = Variant("granian", "modelplane on granian, no batching", ("--max-batch-size", "1"))
VARIANTS = [
    FLOOR,
    Variant("unbatched", "modelplane, no batching", ("--max-batch-size", "1")),
    Variant("batched", "modelplane, batching"),  # the defaults: --max-batch-size 32
    Variant("cache", "modelplane, cache hits", ("--cache",)),
    # "unbatched" with authentication required: every request bears a read token (checked
    # against the token store, remembered 5 s). What the bearer check costs on the hot path.
    Variant("auth", "modelplane, no batching, token required", ("--max-batch-size", "1"),
            require_auth=True),
    GRANIAN,
]
Metrics = dict[str, float]  # counters read from /metrics
Profile = dict[str, list[tuple[str, float, float]]]  # "self"/"total" → (function, self %, total %)
CELLS: list[tuple[int, int]] = [(1, 1), (1, 8), (1, 64), (32, 8), (32, 64)]  # (rows, clients)


@dataclass(frozen=True)
class Target:
    label: str
    variants: tuple[str, ...]
    cells: tuple[tuple[int, int], ...]
    kind: str  # "rate": req/s ≥ goal × floor's; "p99": p99 ≤ goal × floor's
    goal: float


TARGETS = [
    Target("unbatched 1-row req/s", ("unbatched", "auth"), ((1, 1), (1, 8), (1, 64)), "rate",
           0.9),
    Target("batched 1-row req/s at c=64", ("batched",), ((1, 64),), "rate", 1.5),
    Target("32-row req/s", ("unbatched", "batched"), ((32, 8), (32, 64)), "rate", 1.2),
    Target("cache-hit req/s", ("cache",), tuple(CELLS), "rate", 1.8),
    Target("p99 at c=64", ("unbatched", "batched", "cache"), ((1, 64), (32, 64)), "p99", 1.2),
]


@dataclass
class Cell:
    """One variant in one cell, pooled over rounds."""

    variant: str
    rows: int
    clients: int
    requests: int = 0
    duration_s: float = 0.0
    cpu_s: float = 0.0
    p50s_ms: list[float] = field(default_factory=list)
    p99s_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mb: float = 0.0
    predicts: float = 0.0  # model calls (batches) in the measured windows, from /metrics
    predict_rows: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def p50(self) -> float:
        return float(np.mean(self.p50s_ms)) if self.p50s_ms else float("nan")

    @property
    def p99(self) -> float:
        return float(np.mean(self.p99s_ms)) if self.p99s_ms else float("nan")

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    def add(self, load: LoadResult, cpu_s: float, rss_mb: float, metrics: Metrics) -> None:
        self.requests += load.requests
        self.duration_s += load.duration_s
        self.cpu_s += cpu_s
        self.p50s_ms.append(load.p50_ms)
        self.p99s_ms.append(load.p99_ms)
        self.errors += load.errors
        self.rss_mb = rss_mb
        self.predicts += metrics.get("batch_count", 0.0)
        self.predict_rows += metrics.get("batch_rows", 0.0)
        self.cache_hits += metrics.get("cache_hit", 0.0)
        self.cache_misses += metrics.get("cache_miss", 0.0)


# -- the floor server (runs in its own process: ``serving.py --floor-server MODEL.pkl``) -------


def floor_server(model_path: Path, port: int) -> None:
    """Serve ``model_path`` (a pickled model) the plainest way: the floor."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    with model_path.open("rb") as fh:
        model = pickle.load(fh)  # written by this script a moment ago
    model.predict(np.zeros((1, N_FEATURES)))

    async def infer(request: Request) -> Response:
        body = json.loads(await request.body())
        tensor = body["inputs"][0]
        X = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        y = model.predict(X)
        out = {
            "model_name": MODEL,
            "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [len(y)], "data": y.tolist()}
            ],
        }
        return Response(json.dumps(out), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"", status_code=200)

    app = Starlette(routes=[Route(INFER_PATH, infer, methods=["POST"]), Route(READY_PATH, ready)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    taskset = shutil.which("taskset")
    if cpu is None or taskset is None:
        return cmd
    return [taskset, "-c", str(cpu), *cmd]


class Server:
    """One server process (pinned to ``cpu``), its port, log file and /proc readings."""

    def __init__(self, variant: Variant, cmd: list[str], env: dict[str, str], cpu: int | None,
                 log: Path, port: int) -> None:  # fmt: skip
        self.variant = variant
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token: str | None = None  # sent with every request when the variant needs it
        self.log = log
        self.error: str | None = None
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(cmd, cpu), env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if cpu is not None and shutil.which("taskset") is None:
            os.sched_setaffinity(self.proc.pid, {cpu})

    def wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.error = f"exited with {self.proc.returncode}:\n{self.log_tail()}"
                return False
            try:
                with urllib.request.urlopen(self.url + READY_PATH, timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.error = f"not ready in time:\n{self.log_tail()}"
        return False

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """The server and its descendants (a process pool, several workers)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
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
        """utime + stime of the server's processes (every thread), in seconds."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / CLK_TCK

    def memory_mb(self, key: str = "VmRSS") -> float:
        """``VmRSS`` (or ``VmHWM``, the peak) summed over the server's processes, in MiB."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def metrics(self) -> Metrics:
        """Batch and cache counters from ``/metrics`` (empty for the floor)."""
        found: Metrics = defaultdict(float)
        if self.variant is FLOOR:
            return found
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError):
            return found
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            if name.startswith("modelplane_batch_size_rows_count"):
                found["batch_count"] += float(value)
            elif name.startswith("modelplane_batch_size_rows_sum"):
                found["batch_rows"] += float(value)
            elif name.startswith("modelplane_cache_events_total"):
                if 'outcome="hit"' in name:
                    found["cache_hit"] += float(value)
                elif 'outcome="miss"' in name:
                    found["cache_miss"] += float(value)
        return found

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def post(url: str, body: str, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + INFER_PATH, data=body.encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# -- set-up ---------------------------------------------------------------------------------


def prepare(tmp: Path, seed: int) -> tuple[Path, Path, dict[int, Path], dict[int, list[str]]]:
    """Fit and register the model; write the floor's pickle and the request bodies."""
    from sklearn.ensemble import GradientBoostingClassifier

    from modelplane.client import Client
    from modelplane.config import Settings

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, N_FEATURES))
    y = (X[:, :3].sum(axis=1) + 0.5 * rng.normal(size=2000) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    home = tmp / "home"
    client = Client(Settings(home=home))
    try:
        client.log_model(model, name=MODEL, input_example=X[:5], alias="champion")
    finally:
        client.close()
    model_path = tmp / "model.pkl"
    with model_path.open("wb") as fh:
        pickle.dump(model, fh)
    bodies: dict[int, list[str]] = {}
    files: dict[int, Path] = {}
    for rows in sorted({r for r, _ in CELLS}):
        bodies[rows] = []
        for _ in range(N_BODIES):
            data = rng.normal(size=(rows, N_FEATURES))
            tensor = {"name": "input-0", "shape": [rows, N_FEATURES], "datatype": "FP64",
                      "data": data.ravel().tolist()}  # fmt: skip
            # The floor answers predict only; so do these requests (with no outputs named,
            # OIP asks for every output: predict_proba too, about twice the work).
            bodies[rows].append(json.dumps({"inputs": [tensor],
                                            "outputs": [{"name": "predict"}]}))
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
) -> dict[str, Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(home)
    servers = {}
    for variant in variants:  # a variant's own arguments come last, so they win
        port = free_port()
        variant_env: dict[str, str] = {}
        if variant is FLOOR:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--floor-server",
                   str(model_path), "--port", str(port)]  # fmt: skip
        elif variant is GRANIAN:
            cmd, variant_env = granian_command(port, serve_args)
        else:
            cmd = [sys.executable, "-m", "modelplane.cli.main", "serve", "--port", str(port),
                   *MP_ARGS, *serve_args, *variant.args]  # fmt: skip
        if variant.require_auth:
            variant_env["MODELPLANE_REQUIRE_AUTH"] = "true"
        servers[variant.key] = Server(variant, cmd, {**env, **variant_env}, cpu,
                                      tmp / f"{variant.key}.log", port)  # fmt: skip
        if variant.require_auth:
            servers[variant.key].token = read_token(home)
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
    hands uvicorn, the same options (through ``MODELPLANE_SERVE_OPTIONS``), one worker, one
    Rust runtime thread, uvloop."""
    from modelplane.cli.serve import APP_FACTORY
    from modelplane.serving.options import ModelOptions, ServeOptions

    if serve_args:
        raise SystemExit("--serve-arg is not passed to the granian variant; run it without")
    options = ServeOptions(
        host="127.0.0.1", port=port, grpc_port=None, models=(f"{MODEL}@champion",),
        defaults=ModelOptions(max_batch_size=1), prediction_log=False, access_log=False,
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
) -> dict[tuple[str, int, int], Cell]:
    cells: dict[tuple[str, int, int], Cell] = {}
    live = [s for s in servers.values() if s.error is None]
    turn = 0
    for round_ in range(args.rounds):
        for rows, clients in CELLS:
            order = live[turn % len(live) :] + live[: turn % len(live)]
            turn += 1
            for server in order:
                key = (server.variant.key, rows, clients)
                cell = cells.setdefault(key, Cell(server.variant.key, rows, clients))
                what = (
                    f"round {round_ + 1}/{args.rounds}: {rows}-row c={clients} "
                    f"{server.variant.label}"
                )
                with console.status(what):
                    url = server.url + INFER_PATH
                    # The warm-up, then the measured run: the readings kept are those taken
                    # just before the measured run.
                    for seconds in (args.warmup, args.duration):
                        before_metrics = server.metrics()
                        before_cpu = server.cpu_seconds()
                        load = run_load(url, files[rows], connections=clients,
                                        duration_s=seconds, cpu=client_cpu,
                                        use_wrk=not args.python_loadgen,
                                        token=server.token)  # fmt: skip
                    cpu = server.cpu_seconds() - before_cpu
                    after = server.metrics()
                    delta = {k: v - before_metrics.get(k, 0.0) for k, v in after.items()}
                    cell.add(load, cpu, server.memory_mb(), delta)
    return cells


def profile(
    servers: dict[str, Server],
    files: dict[int, Path],
    args: argparse.Namespace,
    client_cpu: int | None,
    console: Console,
) -> dict[str, Profile]:
    """py-spy each modelplane server under load at c=64; top functions by self/total share."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        console.print("[yellow]--profile: py-spy is not installed (pip install py-spy)[/]")
        return {}
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    tops: dict[str, Profile] = {}
    for server in servers.values():
        if server.variant is FLOOR or server.error:
            continue
        for rows in (1, 32):
            name = f"{server.variant.key}-{rows}row-c64"
            raw = out_dir / f"{name}.txt"
            duration = max(args.duration, 3)
            with console.status(f"profiling {name}…"):
                spy = subprocess.Popen(
                    pinned([pyspy, "record", "--pid", str(server.proc.pid), "--duration",
                            str(duration), "--rate", "250", "--gil", "--format", "raw", "--output",
                            str(raw), "--nonblocking"], client_cpu),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                run_load(server.url + INFER_PATH, files[rows], connections=64,
                         duration_s=duration, cpu=client_cpu,
                         use_wrk=not args.python_loadgen)  # fmt: skip
                _, err = spy.communicate(timeout=duration + 60)
            if not raw.exists():
                console.print(f"[yellow]py-spy failed on {name}: {err.decode()[-500:]}[/]")
                continue
            tops[name] = top_frames(raw)
    return tops


def top_frames(raw: Path, n: int = 12) -> Profile:
    """(function, self %, total %) of the ``n`` functions with the most samples of their own
    ("self"), and of the ``n`` others with the most in total below the entry frames ("total")."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {}
    by_self = [f for f, _ in own.most_common(n)]
    by_total = [
        f
        for f, c in inclusive.most_common()
        if c < 0.9 * total and f not in by_self and not any(e in f for e in ENTRY_FRAMES)
    ]
    return {
        kind: [(f, own[f] / total * 100, inclusive[f] / total * 100) for f in frames]
        for kind, frames in (("self", by_self), ("total", by_total[:n]))
    }


# Frames every sample of a thread passes through (process start-up, CLI, thread bootstrap).
ENTRY_FRAMES = (
    "(<frozen runpy>)", "(typer/", "(click/", "(typer/_click/", "(threading.py)",
    "(concurrent/futures/thread.py)", "(asyncio/runners.py)", "(uvicorn/main.py)",
    "(uvicorn/server.py)", "(uvicorn/_compat.py)", "(modelplane/cli/",
)  # fmt: skip


def _short(frame: str) -> str:
    """``func (/…/site-packages/pkg/mod/file.py:12)`` → ``func (pkg/mod/file.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    for anchor in ("site-packages", "src", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - 1 - parts[::-1].index(anchor) + 1 :]
            break
    return f"{name} ({'/'.join(parts[-3:])})"


# -- the report -----------------------------------------------------------------------------


def ratio(cells: dict[tuple[str, int, int], Cell], variant: str, rows: int, clients: int,
          kind: str) -> float | None:  # fmt: skip
    ours, floor = cells.get((variant, rows, clients)), cells.get((FLOOR.key, rows, clients))
    if ours is None or floor is None or not ours.requests or not floor.requests:
        return None
    if kind == "rate":
        return ours.rate / floor.rate
    return ours.p99 / floor.p99


def report(
    cells: dict[tuple[str, int, int], Cell],
    servers: dict[str, Server],
    peaks: dict[str, float],
    args: argparse.Namespace,
    notes: list[str],
    console: Console,
) -> tuple[bool, list[dict[str, Any]]]:
    from rich.table import Table

    table = Table(
        title="modelplane serve vs bare Starlette (the floor) — GradientBoosting 100×d3, "
        "20 features; server on 1 core, 1 worker"
    )
    for name, justify in [
        ("request", "left"), ("server", "left"), ("req/s", "right"), ("rows/s", "right"),
        ("p50 ms", "right"), ("p99 ms", "right"), ("CPU µs/req", "right"),
        ("RSS MiB", "right"), ("req/s\n× floor", "right"), ("p99\n× floor", "right"),
        ("rows/predict\n· cache hits", "right"), ("errors", "right"),
    ]:  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for index, (rows, clients) in enumerate(CELLS):
        for variant in VARIANTS:
            cell = cells.get((variant.key, rows, clients))
            if cell is None:
                continue
            rate = ratio(cells, variant.key, rows, clients, "rate")
            p99 = ratio(cells, variant.key, rows, clients, "p99")
            extra = ""
            if cell.predicts:
                extra = f"{cell.predict_rows / cell.predicts:.1f}"
            if cell.cache_hits + cell.cache_misses:
                hits = cell.cache_hits / (cell.cache_hits + cell.cache_misses) * 100
                extra = f"{extra} · {hits:.0f} %" if extra else f"{hits:.0f} % hits"
            table.add_row(
                f"{rows}-row c={clients}" if variant is FLOOR else "",
                variant.label,
                f"{cell.rate:,.0f}",
                f"{cell.rate * rows:,.0f}",
                f"{cell.p50:.2f}",
                f"{cell.p99:.2f}",
                f"{cell.cpu_us:,.0f}",
                f"{cell.rss_mb:.0f}",
                "" if variant is FLOOR or rate is None else f"{rate:.2f}×",
                "" if variant is FLOOR or p99 is None else f"{p99:.2f}×",
                extra,
                f"[bold red]{cell.errors}[/]" if cell.errors else "0",
                end_section=index < len(CELLS) - 1 and variant is VARIANTS[-1],
            )
    console.print(table)

    targets = Table(title="targets (ratios to the floor, same run)")
    for name in ("target", "server", "request", "measured", "goal", "pass"):
        targets.add_column(name, justify="left" if name in {"target", "server"} else "right")
    all_pass = True
    verdicts: list[dict[str, Any]] = []
    for target in TARGETS:
        for key in target.variants:
            if key not in servers:
                continue
            for rows, clients in target.cells:
                if (rows, clients) not in CELLS:  # --cells left this cell out
                    continue
                value = ratio(cells, key, rows, clients, target.kind)
                ok = value is not None and (
                    value >= target.goal if target.kind == "rate" else value <= target.goal
                )
                all_pass = all_pass and ok
                goal = f"{'≥' if target.kind == 'rate' else '≤'} {target.goal:.1f}×"
                targets.add_row(
                    target.label, key, f"{rows}-row c={clients}",
                    "—" if value is None else f"{value:.2f}×", goal,
                    "[green]pass[/]" if ok else "[bold red]FAIL[/]",
                )  # fmt: skip
                verdicts.append({"target": target.label, "variant": key, "rows": rows,
                                 "clients": clients, "kind": target.kind, "goal": target.goal,
                                 "ratio": value, "pass": ok})  # fmt: skip
    console.print(targets)

    for server in servers.values():
        if server.error:
            all_pass = False
            console.print(f"[bold red]{server.variant.label}: {server.error}[/]")
    if any(cell.errors for cell in cells.values()):
        all_pass = False
        console.print("[bold red]some requests failed (non-2xx, socket errors or timeouts)[/]")
    peak = ", ".join(f"{key} {mb:.0f}" for key, mb in peaks.items())
    notes.append(f"peak RSS (VmHWM, MiB): {peak}")
    for note in notes:
        console.print(note)
    return all_pass, verdicts


def print_profiles(tops: dict[str, Profile], console: Console) -> None:
    from rich.table import Table

    for name, kinds in tops.items():
        table = Table(
            title=f"py-spy --gil: {name} (share of the samples of whichever thread holds the "
            "GIL; model code running without the GIL is not sampled)"
        )
        table.add_column("function (where)")
        table.add_column("self %", justify="right")
        table.add_column("total %", justify="right")
        for kind, rows in kinds.items():
            for index, (frame, own, incl) in enumerate(rows):
                last = kind == "self" and index == len(rows) - 1
                table.add_row(frame, f"{own:.1f}", f"{incl:.1f}", end_section=last)
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per cell")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per cell")
    parser.add_argument("--rounds", type=int, default=2, help="sweeps over every cell, pooled")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s warm-up, 1 s measured, 1 round"
    )
    parser.add_argument(
        "--variants", default="unbatched,batched,cache",
        help="servers to run besides the floor: unbatched, batched, cache, granian (the "
        "unbatched app under granian instead of uvicorn; not run by default)",
    )  # fmt: skip
    parser.add_argument(
        "--serve-arg", action="append", default=[], metavar="ARG",
        help="extra `modelplane serve` argument for every modelplane server (repeatable; "
        "write --serve-arg=--max-wait-ms=1)",
    )  # fmt: skip
    parser.add_argument(
        "--python-loadgen", action="store_true", help="use the Python load generator, not wrk"
    )
    parser.add_argument(
        "--cells", metavar="ROWSxCLIENTS,…",
        help="measure only these cells, e.g. --cells 1x1,32x8 (default: all five)",
    )  # fmt: skip
    parser.add_argument("--profile", metavar="DIR", help="py-spy each modelplane server at c=64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (- : stdout)"
    )
    parser.add_argument("--floor-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server:
        floor_server(args.floor_server, args.port)
        return 0
    if args.quick:
        args.duration, args.warmup, args.rounds = 1, 1, 1
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
        CELLS[:] = [c for c in CELLS if c in chosen]
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = {v.key for v in VARIANTS if v is not FLOOR}
    if set(wanted) - known:
        parser.error(f"unknown --variants {sorted(set(wanted) - known)}; known: {sorted(known)}")
    if "granian" in wanted:
        try:
            import granian  # noqa: F401
        except ImportError:
            parser.error("--variants granian needs granian (make install puts it in .venv)")
    variants = [FLOOR, *(v for v in VARIANTS if v.key in wanted)]

    from rich.console import Console

    console = Console(stderr=args.json == "-")
    if not console.is_terminal:  # piped or captured: room for the whole table
        console.width = max(console.width, 150)
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
    notes.append(
        f"load generator: {loadgen}, pinned to CPU {client_cpu}; servers pinned to CPU "
        f"{server_cpu}; {args.rounds} round(s) × ({args.warmup} s warm-up + {args.duration} s "
        f"measured) per server and cell; {N_BODIES} distinct bodies per size, sent in turn"
    )
    if args.serve_arg:
        notes.append(f"extra serve arguments: {' '.join(args.serve_arg)}")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mp-bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        with console.status("fitting and registering the model…"):
            home, model_path, files, bodies = prepare(tmp, args.seed)
        servers = start_servers(variants, tmp, home, model_path, server_cpu, args.serve_arg)
        peaks: dict[str, float] = {}
        cells: dict[tuple[str, int, int], Cell] = {}
        tops: dict[str, Profile] = {}
        try:
            with console.status("starting the servers…"):
                deadline = time.monotonic() + 180
                for server in servers.values():
                    server.wait_ready(deadline)
            floor = servers[FLOOR.key]
            if floor.error:
                console.print(f"[bold red]the floor server failed: {floor.error}[/]")
                return 1
            check_answers(servers, bodies)
            for server in servers.values():
                if server.error:
                    console.print(f"[bold red]{server.variant.label}: {server.error}[/]")
            cells = measure(servers, files, args, client_cpu, console)
            peaks = {k: s.memory_mb("VmHWM") for k, s in servers.items() if not s.error}
            if args.profile:
                tops = profile(servers, files, args, client_cpu, console)
        finally:
            for server in servers.values():
                server.stop()
    notes.append(f"total time {time.monotonic() - started:.0f} s")
    ok, verdicts = report(cells, servers, peaks, args, notes, console)
    print_profiles(tops, console)
    if args.json:
        data = {
            "cells": [
                {
                    **{k: v for k, v in asdict(c).items() if not k.endswith("s_ms")},
                    "req_per_s": c.rate,
                    "rows_per_s": c.rate * c.rows,
                    "p50_ms": c.p50,
                    "p99_ms": c.p99,
                    "cpu_us_per_req": c.cpu_us,
                    "rate_vs_floor": ratio(cells, c.variant, c.rows, c.clients, "rate"),
                    "p99_vs_floor": ratio(cells, c.variant, c.rows, c.clients, "p99"),
                }
                for c in cells.values()
            ],
            "targets": verdicts,
            "peak_rss_mib": peaks,
            "errors": {k: s.error for k, s in servers.items() if s.error},
            "profiles": tops,
            "_meta": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "loadgen": loadgen,
                "server_cpu": server_cpu,
                "client_cpu": client_cpu,
                "serve_args": args.serve_arg,
                "all_pass": ok,
            },
        }
        text = json.dumps(data, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
