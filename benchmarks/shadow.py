"""Shadow-traffic benchmark: what mirroring every request to a candidate costs the primary.

    .venv/bin/python benchmarks/shadow.py [--duration 5] [--warmup 1] [--rounds 4] [--quick]
                                          [--python-loadgen] [--json PATH|-]

Two scikit-learn GradientBoostingClassifiers (100 trees, depth 3, 20 float features; the
candidate fitted with another seed) are registered as ``bench/1`` (champion) and ``bench/2`` in a
temporary ``MODELPLANE_HOME``, both with passed release gates. One ``modelplane serve`` process
(``--grpc-port 0 --no-access-log --no-prediction-log --no-controller --poll-interval 0.5
--model bench@champion``) is started **pinned to the first allowed CPU**; the load generator
(``benchmarks/_loadgen.py``: wrk, or its Python fallback) runs pinned to the second.

Load: closed loop, 8 connections, ``POST /predict`` by bare name (``{"model": "bench", "inputs":
[[20 floats]]}``), 64 distinct one-row bodies in turn. A shadow experiment mirroring 100 % of the
requests to ``bench/2`` is created once; each round measures the server **without** the shadow
(experiment paused) and **with** it (experiment running), in ABBA order (the shared machine's
speed drifts: alternating cancels a linear drift), each after
waiting until the server has followed the change (the shadow-call counter in ``/metrics`` moves,
or stays still) and ``--warmup`` seconds of load; p50/p99 are the means over the rounds,
requests/s pooled.

Target: p50 and p99 with the shadow within 10 % (or 0.2 ms) of without. Exit status 1 when a
target is missed, the server fails, any request fails, or the shadow compared nothing.
``--quick``: 1 round of 2 s (about 30 s in all); the default run takes about 1½ minutes.
The machine is shared and noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loadgen import LoadResult, run_load, wrk_path
from _serving_servers import Server, free_port

MODEL = "bench"
EXPERIMENT = "bench-shadow"
N_FEATURES = 20
N_BODIES = 64
CONNECTIONS = 8
POLL_S = 0.5
TARGET_RATIO = 1.10
TARGET_SLACK_MS = 0.2
SERVE_ARGS = (
    "--grpc-port",
    "0",
    "--no-access-log",
    "--no-prediction-log",
    "--no-controller",
    "--poll-interval",
    str(POLL_S),
    "--model",
    f"{MODEL}@champion",
)


@dataclass
class Phase:
    """One mode (shadow off or on) pooled over rounds."""

    label: str
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu_s: float = 0.0
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)

    def add(self, load: LoadResult, cpu_s: float) -> None:
        self.cpu_s += cpu_s
        self.requests += load.requests
        self.seconds += load.duration_s
        self.errors += load.errors
        self.p50s.append(load.p50_ms)
        self.p99s.append(load.p99_ms)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU time (every thread) per request, in microseconds."""
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def p50(self) -> float:
        return float(np.mean(self.p50s)) if self.p50s else float("nan")

    @property
    def p99(self) -> float:
        return float(np.mean(self.p99s)) if self.p99s else float("nan")


def prepare(tmp: Path, seed: int) -> tuple[Path, Path, list[str]]:
    """Fit and register champion and candidate (gated); write the request bodies."""
    from sklearn.ensemble import GradientBoostingClassifier

    from modelplane.client import Client
    from modelplane.config import Settings

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, N_FEATURES))
    y = (X[:, :3].sum(axis=1) + 0.5 * rng.normal(size=2000) > 0).astype(int)
    home = tmp / "home"
    client = Client(Settings(home=home))
    try:
        for version, random_state in ((1, 0), (2, 1)):
            model = GradientBoostingClassifier(
                n_estimators=100, max_depth=3, subsample=0.8, random_state=random_state
            ).fit(X, y)
            client.log_model(
                model, name=MODEL, input_example=X[:5], alias="champion" if version == 1 else None
            )
            client.record_gate_result(MODEL, version, passed=True)
        client.create_experiment(
            EXPERIMENT, MODEL, {"candidate": (2, 100.0)}, kind="shadow", shadow_percent=100.0
        )
    finally:
        client.close()
    bodies = [
        json.dumps({"model": MODEL, "inputs": rng.normal(size=(1, N_FEATURES)).tolist()})
        for _ in range(N_BODIES)
    ]
    path = tmp / "bodies.jsonl"
    path.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    return home, path, bodies


def experiment_action(home: Path, action: str) -> None:
    from modelplane.client import Client
    from modelplane.config import Settings

    client = Client(Settings(home=home))
    try:
        client.experiment_action(EXPERIMENT, action)
    finally:
        client.close()


def post(url: str, body: str) -> dict[str, Any]:
    req = urllib.request.Request(
        url + "/predict", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def shadow_metrics(url: str) -> dict[str, float]:
    """Shadow calls by outcome and drops, from ``/metrics``."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = {"agree": 0.0, "differ": 0.0, "error": 0.0, "dropped": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("modelplane_shadow_calls_total"):
            for outcome in ("agree", "differ", "error"):
                if f'outcome="{outcome}"' in name:
                    found[outcome] += float(value)
        elif name.startswith("modelplane_shadow_dropped_total"):
            found["dropped"] += float(value)
    return found


def shadow_calls(url: str) -> float:
    m = shadow_metrics(url)
    return m["agree"] + m["differ"] + m["error"]


def wait_followed(url: str, bodies: list[str], *, on: bool, timeout_s: float = 30.0) -> None:
    """Until the server mirrors (``on``) or no longer mirrors requests."""
    deadline = time.monotonic() + timeout_s
    still = 0
    while time.monotonic() < deadline:
        before = shadow_calls(url)
        for body in bodies[:10]:
            post(url, body)
        time.sleep(0.2)  # the shadow workers' batches finish
        moved = shadow_calls(url) > before
        if on and moved:
            return
        still = still + 1 if not moved else 0
        if not on and still >= 2:
            return
        time.sleep(POLL_S / 2)
    raise RuntimeError(f"the server did not follow the shadow being turned {'on' if on else 'off'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per phase")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each")
    parser.add_argument("--rounds", type=int, default=4, help="off/on pairs, ABBA order")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--python-loadgen", action="store_true", help="do not use wrk")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the results as JSON (- for stdout)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2, 1
    use_wrk = not args.python_loadgen and wrk_path() is not None
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu: int | None = cpus[0]
    client_cpu = cpus[1] if len(cpus) > 1 else None
    if client_cpu is None:
        server_cpu = None  # one CPU: no pinning, the load generator shares it
    print(
        f"shadow benchmark: server on CPU {server_cpu}, load generator "
        f"({'wrk' if use_wrk else 'python'}) on CPU {client_cpu}; c={CONNECTIONS}, "
        f"{args.rounds} round(s) × ({args.warmup} s warm-up + {args.duration} s) per phase",
        flush=True,
    )
    phases = {"off": Phase("without shadow"), "on": Phase("with 100 % shadow")}
    with tempfile.TemporaryDirectory(prefix="modelplane-shadow-bench-") as raw_tmp:
        tmp = Path(raw_tmp)
        home, bodies_path, bodies = prepare(tmp, args.seed)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
        env["MODELPLANE_HOME"] = str(home)
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "modelplane.cli.main",
            "serve",
            "--port",
            str(port),
            *SERVE_ARGS,
        ]
        server = Server("shadow", "modelplane", cmd, env, server_cpu, port)
        try:
            if not server.wait_ready(time.monotonic() + 120):
                print(f"server failed: {server.error}", file=sys.stderr)
                return 1
            url = server.url
            answer = post(url, bodies[0])
            assert answer["version"] == 1, answer
            for r in range(args.rounds):
                order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
                for mode in order:
                    if mode == "on":
                        experiment_action(home, "start")
                    elif r or order[0] == "on":  # a draft is not routed: nothing to pause
                        experiment_action(home, "pause")
                    wait_followed(url, bodies, on=mode == "on")
                    if args.warmup:
                        run_load(
                            url + "/predict",
                            bodies_path,
                            connections=CONNECTIONS,
                            duration_s=args.warmup,
                            cpu=client_cpu,
                            use_wrk=use_wrk,
                        )
                    cpu_before = server.cpu_seconds()
                    load = run_load(
                        url + "/predict",
                        bodies_path,
                        connections=CONNECTIONS,
                        duration_s=args.duration,
                        cpu=client_cpu,
                        use_wrk=use_wrk,
                    )
                    cpu_s = server.cpu_seconds() - cpu_before
                    phases[mode].add(load, cpu_s)
                    print(
                        f"  round {r + 1} {phases[mode].label}: {load.rate:,.0f} req/s, "
                        f"p50 {load.p50_ms:.3f} ms, p99 {load.p99_ms:.3f} ms, "
                        f"server CPU {cpu_s / max(load.requests, 1) * 1e6:.0f} µs/request",
                        flush=True,
                    )
            time.sleep(0.3)
            shadow = shadow_metrics(url)
        finally:
            server.stop()

    off, on = phases["off"], phases["on"]
    rows = [
        ("requests/s", off.rate, on.rate, on.rate / off.rate if off.rate else float("nan")),
        ("p50 ms", off.p50, on.p50, on.p50 / off.p50),
        ("p99 ms", off.p99, on.p99, on.p99 / off.p99),
        ("server CPU µs/request", off.cpu_us, on.cpu_us, on.cpu_us / off.cpu_us),
    ]
    print()
    print("| metric | without shadow | with 100 % shadow | ratio |")
    print("|---|---:|---:|---:|")
    for name, a, b, ratio in rows:
        fmt = "{:.3f}" if name.endswith(" ms") else "{:,.0f}"
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.3f} |")
    compared = shadow["agree"] + shadow["differ"]
    print(
        f"\nshadow calls: {compared:,.0f} compared ({shadow['agree']:,.0f} agree, "
        f"{shadow['differ']:,.0f} differ), {shadow['error']:,.0f} errors, "
        f"{shadow['dropped']:,.0f} dropped (queue full); request errors: "
        f"{off.errors} without, {on.errors} with"
    )
    failures = []
    for name, a, b in (("p50", off.p50, on.p50), ("p99", off.p99, on.p99)):
        ok = b <= a * TARGET_RATIO or b - a <= TARGET_SLACK_MS
        print(
            f"target {name} with shadow ≤ 1.10× (or +0.2 ms) without: "
            f"{b:.3f} vs {a:.3f} ms — {'PASS' if ok else 'FAIL'}"
        )
        if not ok:
            failures.append(name)
    if off.errors or on.errors:
        failures.append("request errors")
    if compared <= 0:
        failures.append("no shadow call compared")
    if args.json:
        doc = {
            "phases": {
                k: asdict(p) | {"rate": p.rate, "p50": p.p50, "p99": p.p99, "cpu_us": p.cpu_us}
                for k, p in phases.items()
            },
            "shadow": shadow,
            "failures": failures,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
