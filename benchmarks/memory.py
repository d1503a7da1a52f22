"""Memory benchmark: where ``modelplane serve``'s resident memory goes, against a bare floor.

    .venv/bin/python benchmarks/memory.py [--requests 2000] [--clients 8] [--no-breakdown]
                                          [--variants default,no-predlog,no-grpc] [--json PATH|-]

The model is the serving benchmark's: a scikit-learn GradientBoostingClassifier (100 trees,
depth 3, 20 float features) fitted here, registered as ``bench@champion`` in a temporary
``MODELPLANE_HOME`` (skops, no trust needed) and pickled for the floor. Servers, one at a time:

* **floor** — a bare Starlette endpoint on uvicorn (uvloop, httptools, no access log) that
  loads the same pickled model and answers the same OIP v2 body. It runs **in modelplane's own
  venv** (``sys.executable``): scikit-learn imports pandas and pyarrow when they are installed,
  so this floor carries them — a floor in a venv holding only Starlette, uvicorn and
  scikit-learn is smaller by about their size (see the breakdown's "alone" column);
* **default** — ``modelplane serve --model bench@champion`` with its defaults (prediction log,
  access log — to a file —, controller, gRPC on a free port);
* **no-predlog** — the same with ``--no-prediction-log``; **no-grpc** — with ``--grpc-port 0``
  (what each costs, by difference).

For each: RSS (``VmRSS`` of ``/proc/<pid>/status``) once ``/v2/health/ready`` answers 200
("idle"), after ``--requests`` requests from ``--clients`` keep-alive connections (half 1-row,
half 32-row bodies, ``outputs: predict``; "after N"), and the peak (``VmHWM``).

**Breakdown**: each heavy import is measured in a fresh interpreter, as its RSS over a bare
interpreter ("alone") and over an interpreter that already holds what serving *any* scikit-learn
model needs — scikit-learn's estimators and ``skops.io`` imported as modelplane imports it
("over sklearn": what serving could save by not importing it). "in serve" says whether the
running ``modelplane serve`` holds it: a second ``modelplane serve`` is started with a watcher
thread (no new endpoint) that, once ``/v2/health/ready`` answers, writes ``sorted(sys.modules)``
to a file. The whole run takes ~2 minutes (``--no-breakdown``: ~40 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _serving_servers import free_port

MODEL = "bench"
N_FEATURES = 20
INFER_PATH = f"/v2/models/{MODEL}/infer"
READY_PATH = "/v2/health/ready"

#: The imports the breakdown measures (a module path each).
HEAVY = (
    "numpy", "scipy.stats", "pandas", "pyarrow", "sklearn", "sklearn.ensemble", "skops.io",
    "torch", "fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "alembic", "grpc",
    "opentelemetry.trace", "opentelemetry.sdk.trace", "prometheus_client", "orjson", "rich",
    "modelplane.predlog", "modelplane.bootstrap", "modelplane.api.app", "modelplane.api.server",
)  # fmt: skip
#: What serving a scikit-learn model needs whatever else it does: the "over sklearn" base.
#: skops.io as modelplane imports it (runtimes/sklearn.py: without its scan of every estimator).
SKLEARN_BASE = (
    "import sklearn.ensemble\nfrom modelplane.runtimes.sklearn import _skops_io\n_skops_io()\n"
)
RSS_LINE = (
    "\nimport re as _re\n"
    "print(_re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
)

#: Runs ``modelplane serve`` (argv) with a thread that, once ready, dumps ``sys.modules``.
WATCHER = """
import json, os, socket, sys, threading, time
port, out = int(os.environ["WATCH_PORT"]), os.environ["WATCH_OUT"]
def ready():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /v2/health/ready HTTP/1.1\\r\\nHost: x\\r\\n"
                      b"Connection: close\\r\\n\\r\\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
def watch():
    while not ready():
        time.sleep(0.1)
    with open(out + ".tmp", "w") as fh:
        json.dump(sorted(sys.modules), fh)
    os.replace(out + ".tmp", out)
threading.Thread(target=watch, daemon=True).start()
from modelplane.cli.main import run
run(sys.argv[1:])
"""


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    args: tuple[str, ...] = ()


FLOOR = Variant("floor", "floor (Starlette + uvicorn, same venv)")
VARIANTS = [
    FLOOR,
    Variant("default", "modelplane serve (defaults)"),
    Variant("no-predlog", "modelplane serve --no-prediction-log", ("--no-prediction-log",)),
    Variant("no-grpc", "modelplane serve --grpc-port 0", ("--grpc-port", "0")),
]


@dataclass
class Reading:
    variant: str
    label: str
    idle_mib: float = float("nan")
    after_mib: float = float("nan")
    peak_mib: float = float("nan")
    start_s: float = float("nan")
    requests: int = 0
    errors: int = 0
    error: str | None = None


@dataclass
class Breakdown:
    module: str
    alone_mib: float
    over_sklearn_mib: float
    in_serve: bool | None
    note: str = ""


@dataclass
class Result:
    readings: list[Reading] = field(default_factory=list)
    breakdown: list[Breakdown] = field(default_factory=list)
    bare_mib: float = float("nan")
    sklearn_base_mib: float = float("nan")
    serve_modules: list[str] = field(default_factory=list)


# -- helpers --------------------------------------------------------------------------------


def status_mib(pid: int, key: str) -> float:
    """``VmRSS`` or ``VmHWM`` of ``pid`` in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", READY_PATH)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError("not ready in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def send_load(port: int, bodies: list[bytes], requests: int, clients: int) -> tuple[int, int]:
    """``requests`` POSTs over ``clients`` keep-alive connections; (sent, failed)."""
    counts = [0, 0]
    lock = threading.Lock()
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(index: int, n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        ok = failed = 0
        try:
            for i in range(n):
                body = bodies[(index + i * clients) % len(bodies)]
                try:
                    conn.request("POST", INFER_PATH, body,
                                 {"Content-Type": "application/json"})  # fmt: skip
                    resp = conn.getresponse()
                    resp.read()
                    ok, failed = (ok + 1, failed) if resp.status == 200 else (ok, failed + 1)
                except (OSError, http.client.HTTPException):
                    failed += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        finally:
            conn.close()
            with lock:
                counts[0] += ok + failed
                counts[1] += failed

    threads = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(per_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts[0], counts[1]


# -- set-up ---------------------------------------------------------------------------------


def prepare(tmp: Path, seed: int) -> tuple[Path, Path, list[bytes]]:
    """Fit and register the model; write the floor's pickle; the request bodies."""
    from _bench_model import fit_and_register, oip_body

    rng = np.random.default_rng(seed)
    home, model_path = fit_and_register(tmp, rng, name=MODEL, n_features=N_FEATURES)
    bodies = []
    for rows in (1, 32):
        bodies.extend(oip_body(rng, rows, N_FEATURES).encode() for _ in range(32))
    return home, model_path, bodies


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(home)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def serve_command(variant: Variant, port: int, model_path: Path) -> list[str]:
    if variant is FLOOR:
        # The same floor as the other benchmarks', here in modelplane's own venv.
        floor = Path(__file__).resolve().parent / "_floor_server.py"
        return [sys.executable, str(floor), str(model_path), "--port", str(port),
                "--model-name", MODEL]  # fmt: skip
    grpc = ("--grpc-port", str(free_port()))
    return [sys.executable, "-m", "modelplane.cli.main", "serve", "--port", str(port), *grpc,
            "--model", f"{MODEL}@champion", *variant.args]  # fmt: skip


def measure_server(variant: Variant, tmp: Path, home: Path, model_path: Path,
                   bodies: list[bytes], args: argparse.Namespace) -> Reading:  # fmt: skip
    reading = Reading(variant.key, variant.label)
    port = free_port()
    log = tmp / f"{variant.key}.log"
    started = time.monotonic()
    with log.open("wb") as out:  # the access log (stderr) goes here, as a file would
        proc = subprocess.Popen(serve_command(variant, port, model_path), env=server_env(home),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_ready(proc, port)
        reading.start_s = time.monotonic() - started
        time.sleep(args.settle)
        reading.idle_mib = status_mib(proc.pid, "VmRSS")
        sent, failed = send_load(port, bodies, args.requests, args.clients)
        reading.requests, reading.errors = sent, failed
        time.sleep(args.settle)
        reading.after_mib = status_mib(proc.pid, "VmRSS")
        reading.peak_mib = status_mib(proc.pid, "VmHWM")
    except (RuntimeError, OSError) as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        reading.error = f"{exc}\n{tail}"
    finally:
        stop(proc)
    return reading


def serve_modules(tmp: Path, home: Path) -> list[str]:
    """``sorted(sys.modules)`` of a ready ``modelplane serve`` (defaults, the model loaded)."""
    port, out = free_port(), tmp / "modules.json"
    env = {**server_env(home), "WATCH_PORT": str(port), "WATCH_OUT": str(out)}
    cmd = [sys.executable, "-c", WATCHER, "serve", "--port", str(port), "--grpc-port",
           str(free_port()), "--model", f"{MODEL}@champion"]  # fmt: skip
    with (tmp / "watch.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the watched server did not become ready")
            time.sleep(0.1)
        modules: list[str] = json.loads(out.read_text())
        return modules
    finally:
        stop(proc)


def rss_of(code: str) -> float:
    """RSS (MiB) of a fresh interpreter after running ``code``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-c", code + RSS_LINE], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return int(done.stdout.split()[-1]) / 1024


def breakdown(result: Result) -> None:
    result.bare_mib = rss_of("pass")
    result.sklearn_base_mib = rss_of(SKLEARN_BASE)
    loaded = set(result.serve_modules)
    for module in HEAVY:
        try:
            alone = rss_of(f"import {module}") - result.bare_mib
            over = rss_of(f"{SKLEARN_BASE}import {module}") - result.sklearn_base_mib
            note = ""
        except RuntimeError as exc:  # not installed
            alone = over = float("nan")
            note = str(exc)[:60]
        result.breakdown.append(
            Breakdown(module, alone, over, module in loaded if loaded else None, note)
        )


# -- report ---------------------------------------------------------------------------------


def report(result: Result, args: argparse.Namespace, console: Any) -> None:
    from rich.table import Table

    floor = next((r for r in result.readings if r.variant == FLOOR.key), None)
    table = Table(title="resident memory (MiB) — GradientBoosting 100×d3, 20 features; one "
                  "process, one worker")  # fmt: skip
    for name in ("server", "start s", "idle RSS", f"after {args.requests} req", "peak (HWM)",
                 "idle × floor", "after × floor", "errors"):  # fmt: skip
        table.add_column(name, justify="left" if name == "server" else "right")
    for r in result.readings:
        if r.error:
            table.add_row(r.label, "", "", "", "", "", "", f"[bold red]{r.error.splitlines()[0]}")
            continue
        is_floor = floor is None or r is floor
        table.add_row(
            r.label, f"{r.start_s:.1f}", f"{r.idle_mib:.0f}", f"{r.after_mib:.0f}",
            f"{r.peak_mib:.0f}",
            "" if is_floor or floor is None else f"{r.idle_mib / floor.idle_mib:.2f}×",
            "" if is_floor or floor is None else f"{r.after_mib / floor.after_mib:.2f}×",
            f"[bold red]{r.errors}[/]" if r.errors else "0",
        )  # fmt: skip
    console.print(table)
    if result.breakdown:
        bd = Table(title=f"imports, each in a fresh interpreter (MiB): alone = over a bare "
                   f"interpreter ({result.bare_mib:.0f}); over sklearn = over one that imported "
                   f"scikit-learn's estimators and skops.io as modelplane does "
                   f"({result.sklearn_base_mib:.0f})")  # fmt: skip
        for name in ("module", "alone", "over sklearn", "in serve"):
            bd.add_column(name, justify="left" if name == "module" else "right")
        for b in result.breakdown:
            seen = "?" if b.in_serve is None else ("yes" if b.in_serve else "no")
            if b.note:
                bd.add_row(b.module, "—", "—", f"{seen} ({b.note})")
                continue
            bd.add_row(b.module, f"{b.alone_mib:+.1f}", f"{b.over_sklearn_mib:+.1f}", seen)
        console.print(bd)
    if result.serve_modules:
        tops = sorted({m.split(".")[0] for m in result.serve_modules if not m.startswith("_")})
        console.print(f"modelplane serve holds {len(result.serve_modules)} modules; top-level "
                      f"packages: {', '.join(tops)}")  # fmt: skip
    console.print("The floor runs in modelplane's venv (sys.executable): scikit-learn imports "
                  "pandas and pyarrow there, as it does in modelplane serve.")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests after idle")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive connections")
    parser.add_argument(
        "--settle", type=float, default=3.0,
        help="seconds to wait before each RSS reading (default: longer than the prediction "
        "log's 2 s flush interval, so its last write is in)",
    )  # fmt: skip
    parser.add_argument(
        "--variants", default="default,no-predlog,no-grpc",
        help="modelplane servers beside the floor: default, no-predlog, no-grpc",
    )  # fmt: skip
    parser.add_argument("--no-breakdown", action="store_true", help="skip the import breakdown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (- : stdout)"
    )
    args = parser.parse_args(argv)
    wanted = {v.strip() for v in args.variants.split(",") if v.strip()}
    known = {v.key for v in VARIANTS if v is not FLOOR}
    if wanted - known:
        parser.error(f"unknown --variants {sorted(wanted - known)}; known: {sorted(known)}")
    if args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients must be at least 1")

    from rich.console import Console

    console = Console(stderr=args.json == "-")
    if not console.is_terminal:
        console.width = max(console.width, 150)
    result = Result()
    with tempfile.TemporaryDirectory(prefix="mp-bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        with console.status("fitting and registering the model…"):
            home, model_path, bodies = prepare(tmp, args.seed)
        for variant in VARIANTS:
            if variant is FLOOR or variant.key in wanted:
                with console.status(f"measuring {variant.label}…"):
                    result.readings.append(
                        measure_server(variant, tmp, home, model_path, bodies, args)
                    )
        if not args.no_breakdown:
            with console.status("reading what modelplane serve imports…"):
                result.serve_modules = serve_modules(tmp, home)
            with console.status("measuring each import in a fresh interpreter…"):
                breakdown(result)
    report(result, args, console)
    if args.json:
        data = {
            "servers": [asdict(r) for r in result.readings],
            "breakdown": [asdict(b) for b in result.breakdown],
            "bare_interpreter_mib": result.bare_mib,
            "sklearn_base_mib": result.sklearn_base_mib,
            "serve_modules": result.serve_modules,
            "_meta": {
                "requests": args.requests,
                "clients": args.clients,
                "floor_venv": "modelplane's own (sys.executable)",
            },
        }
        text = json.dumps(data, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    failed = any(r.error or r.errors for r in result.readings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
