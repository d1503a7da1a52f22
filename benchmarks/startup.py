"""Start-up benchmark: ``modelplane serve`` to ready, against the floor to its first answer.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--quick] [--no-floor-venv] [--json PATH|-]

Issue 13, item 7: the time from launching ``modelplane serve --model bench@champion`` (the REST
benchmark's scikit-learn model, registered in a temporary ``MODELPLANE_HOME``) to its first 200
on ``/v2/health/ready`` — with the model loaded: ``/v2/models/bench/ready`` is asked right after
and must answer 200 too — against the floor's time from launch to its first answered request.
The floor is ``_floor_server.py`` (a bare Starlette app on uvicorn that unpickles the model at
start), in its own minimal venv (``benchmarks/.floor-venv``) unless ``--no-floor-venv`` or
that venv cannot be built. Also reported: the time to modelplane's first successful inference
(a 1-row ``POST /v2/models/bench/infer``), and each server's RSS once it answers.

Each run starts a fresh process (floor and modelplane alternate, so a noisy moment hits both),
pinned to the first allowed CPU; the poller (this script) runs on the second and asks every
``POLL_S`` (5 ms; connection refused is immediate). Reported per measure: median, min, max and
spread ((max − min) / median) over ``--runs`` runs (default 7; ``--quick``: 3).

Target: modelplane's median time to ready ≤ the floor's median time to its first answer.
Exit status 1 when it fails or a server does not start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

HERE = Path(__file__).resolve().parent
MODEL = "bench"
N_FEATURES = 20
POLL_S = 0.005
START_TIMEOUT_S = 120.0
READY = "/v2/health/ready"
MODEL_READY = f"/v2/models/{MODEL}/ready"
INFER = f"/v2/models/{MODEL}/infer"
BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "input-0",
                "shape": [1, N_FEATURES],
                "datatype": "FP64",
                "data": [0.1] * N_FEATURES,
            }
        ],
        "outputs": [{"name": "predict"}],
    }
)


# -- bookkeeping (pure) -------------------------------------------------------------------------


@dataclass
class Summary:
    """Seconds over runs."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples, default=math.nan)

    @property
    def max(self) -> float:
        return max(self.samples, default=math.nan)

    @property
    def spread(self) -> float:
        """(max − min) / median."""
        m = self.median
        return (self.max - self.min) / m if m else math.nan


def rows(results: dict[str, Summary]) -> list[tuple[str, str, str, str, str, str]]:
    """The table's rows: measure, n, median, min, max (ms) and spread."""
    out = []
    for name, s in results.items():
        out.append(
            (
                name,
                str(len(s.samples)),
                f"{s.median * 1e3:,.0f}",
                f"{s.min * 1e3:,.0f}",
                f"{s.max * 1e3:,.0f}",
                f"{s.spread:.0%}" if not math.isnan(s.spread) else "–",
            )
        )
    return out


def verdict(floor: Summary, ready: Summary) -> dict[str, Any]:
    """The target: modelplane's median to ready ≤ the floor's median to its first answer."""
    value = ready.median / floor.median if floor.median else math.nan
    return {"target": "ready ≤ floor's first answer", "value": value, "pass": value <= 1.0}


def render(
    results: dict[str, Summary], target: dict[str, Any], console: Console, notes: list[str]
) -> None:
    from rich.table import Table

    table = Table(title="start-up: launch to ready / first answer (fresh process each run)")
    for name in ("measure", "runs", "median ms", "min ms", "max ms", "spread"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    mark = "[green]pass[/]" if target["pass"] else "[bold red]FAIL[/]"
    console.print(f"target: {target['target']}: {target['value']:.2f}× the floor's — {mark}")
    for note in notes:
        console.print(note)


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port (the serving benchmark's; imported here on use, since the tests load
    this file without ``benchmarks/`` on ``sys.path``)."""
    from _serving_servers import free_port as free

    return free()


def status(port: int, path: str, body: str | None = None) -> int:
    """The HTTP status of one request, 0 when the server does not answer (yet)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return int(resp.status)
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def launch(
    cmd: list[str], env: dict[str, str], cpu: int | None, log: Path
) -> subprocess.Popen[bytes]:
    taskset = shutil.which("taskset")
    if cpu is not None and taskset:
        cmd = [taskset, "-c", str(cpu), *cmd]
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,  # not benchmarks/: its grpc.py would shadow grpc
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(
    proc: subprocess.Popen[bytes], port: int, path: str, t0: float, body: str | None = None
) -> float:
    """Seconds from ``t0`` to the first 200 on ``path``."""
    while True:
        if status(port, path, body) == 200:
            return time.perf_counter() - t0
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before answering {path}")
        if time.perf_counter() - t0 > START_TIMEOUT_S:
            raise RuntimeError(f"no 200 on {path} in {START_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def run_floor(floor_py: str, model_path: Path, cpu: int | None, tmp: Path) -> tuple[float, float]:
    """Launch to the first answered inference; RSS then."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    cmd = [
        floor_py,
        str(HERE / "_floor_server.py"),
        str(model_path),
        "--port",
        str(port),
        "--model-name",
        MODEL,
    ]
    t0 = time.perf_counter()
    proc = launch(cmd, env, cpu, tmp / "floor.log")
    try:
        first = wait_for(proc, port, INFER, t0, BODY)
        return first, rss_mb(proc.pid)
    except RuntimeError as exc:
        raise RuntimeError(f"floor: {exc}\n{(tmp / 'floor.log').read_text()[-2000:]}") from exc
    finally:
        stop(proc)


def run_modelplane(home: Path, cpu: int | None, tmp: Path) -> tuple[float, bool, float, float]:
    """Launch to the first 200 on /v2/health/ready; whether the model answered ready right
    then; launch to the first successful inference; RSS then."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(home)
    cmd = [
        sys.executable,
        "-m",
        "modelplane.cli.main",
        "serve",
        "--model",
        f"{MODEL}@champion",
        "--port",
        str(port),
    ]
    log = tmp / "modelplane.log"
    t0 = time.perf_counter()
    proc = launch(cmd, env, cpu, log)
    try:
        ready = wait_for(proc, port, READY, t0)
        model_ready = status(port, MODEL_READY) == 200
        first = wait_for(proc, port, INFER, t0, BODY)
        return ready, model_ready, first, rss_mb(proc.pid)
    except RuntimeError as exc:
        raise RuntimeError(f"modelplane: {exc}\n{log.read_text()[-2000:]}") from exc
    finally:
        stop(proc)


def prepare(tmp: Path, seed: int) -> tuple[Path, Path]:
    """The REST benchmark's model, registered as bench@champion and pickled for the floor."""
    import numpy as np
    from _bench_model import fit_and_register

    rng = np.random.default_rng(seed)
    home, model_path = fit_and_register(tmp, rng, name=MODEL, n_features=N_FEATURES)
    return home, model_path


# -- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, help="fresh starts of each server (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument(
        "--no-floor-venv", action="store_true", help="run the floor in modelplane's venv"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (-: stdout)")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 7)

    from rich.console import Console

    console = Console(stderr=args.json == "-")
    if not console.is_terminal:
        console.width = max(console.width, 160)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu: int | None = cpus[0]
    poll_cpu = cpus[1] if len(cpus) > 1 else None
    if poll_cpu is None:
        server_cpu = None
    else:
        os.sched_setaffinity(0, {poll_cpu})
    notes = [
        f"server pinned to CPU {server_cpu}, poller to CPU {poll_cpu}, polling every "
        f"{POLL_S * 1e3:.0f} ms; floor and modelplane alternate, {runs} runs each"
    ]
    floor_py = sys.executable
    if args.no_floor_venv:
        notes.append("[yellow]floor in modelplane's venv (--no-floor-venv)[/]")
    else:
        sys.path.append(str(HERE))
        from _floor_venv import floor_python

        with console.status("the floor's venv (built once)…"):
            built, why = floor_python()
        floor_py = built or sys.executable
        notes.append(f"floor: {why}" if built else f"[yellow]{why}; floor in modelplane's venv[/]")

    results = {
        "floor (Starlette): launch → first answer": Summary(),
        "modelplane serve: launch → /v2/health/ready 200": Summary(),
        "modelplane serve: launch → first inference": Summary(),
    }
    floor_s, ready_s, infer_s = results.values()
    model_ready: list[bool] = []
    rss: dict[str, list[float]] = {"floor": [], "modelplane": []}
    with tempfile.TemporaryDirectory(prefix="mp-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        with console.status("fitting and registering the model…"):
            home, model_path = prepare(tmp, args.seed)
        try:
            for i in range(runs):
                with console.status(f"run {i + 1}/{runs}…"):
                    order = ("floor", "modelplane") if i % 2 == 0 else ("modelplane", "floor")
                    for which in order:
                        if which == "floor":
                            first, mb = run_floor(floor_py, model_path, server_cpu, tmp)
                            floor_s.samples.append(first)
                        else:
                            ready, loaded, first, mb = run_modelplane(home, server_cpu, tmp)
                            ready_s.samples.append(ready)
                            model_ready.append(loaded)
                            infer_s.samples.append(first)
                        rss[which].append(mb)
        except RuntimeError as exc:
            console.print(f"[bold red]{exc}[/]")
            return 1
    target = verdict(floor_s, ready_s)
    ok = bool(target["pass"]) and all(model_ready)
    notes.append(
        f"/v2/models/{MODEL}/ready answered 200 right after /v2/health/ready in "
        f"{sum(model_ready)} of {len(model_ready)} runs"
    )
    notes.append(
        "RSS when answering (MiB, median): "
        + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in rss.items() if v)
    )
    render(results, target, console, notes)
    if args.json:
        data = {
            "results": {k: v.samples for k, v in results.items()},
            "medians_s": {k: v.median for k, v in results.items()},
            "target": target,
            "model_ready_at_health_ready": model_ready,
            "rss_mb": rss,
            "_meta": {
                "runs": runs,
                "server_cpu": server_cpu,
                "poll_cpu": poll_cpu,
                "poll_s": POLL_S,
                "floor_python": floor_py,
                "all_pass": ok,
            },
        }
        text = json.dumps(data, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
