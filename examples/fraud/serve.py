"""Steps 6 and 7 of the demo: serve the champion, call it as clients would, run a canary, stop.

Starts ``modelplane serve --model fraud@champion`` (the same command a user runs), waits for
readiness, sends the hand-picked transactions through ``POST /predict`` and one request in the
Open Inference Protocol, prints the answers and a few of the server's own metrics. Then, while
a few client threads keep sending transactions, ``modelplane rollout start … --wait`` moves the
gated candidate through its canary steps to promotion, printing each step's decision. Finally
it stops the server with SIGTERM (graceful: in-flight requests finish first).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pandas as pd
from rich.console import Console
from rich.table import Table

__all__ = ["serve_and_call"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _traffic(base: str, model: str, rows: list[dict[str, Any]], stop: threading.Event,
             seen: Counter[tuple[int, int]], worker: int) -> None:
    """One client: transactions of many cards (unit ids), until ``stop``; counts answers."""
    i = worker
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            row = rows[i % len(rows)]
            reply = http.post("/predict", json={"model": model, "inputs": [row],
                                                "unit_id": f"card-{i % 5000}"})
            seen[(reply.status_code, reply.json().get("version", 0))] += 1
            i += 8


def canary(base: str, model: str, candidate: int, rows: list[dict[str, Any]],
           console: Console) -> None:
    """Roll ``candidate`` out against the champion under live traffic, printing each step."""
    cmd = ["rollout", "start", model, "--candidate", str(candidate), "--steps", "10,50,100",
           "--step-duration", "2s", "--min-requests", "200", "--max-error-rate", "0.01",
           "--max-latency-ratio", "3", "--interval", "0.5s", "--wait"]
    console.print(f"[dim]$ modelplane {' '.join(cmd)}[/]")
    stop = threading.Event()
    seen: Counter[tuple[int, int]] = Counter()
    clients = [threading.Thread(target=_traffic, args=(base, model, rows, stop, seen, w))
               for w in range(4)]
    for thread in clients:
        thread.start()
    try:
        result = subprocess.run([sys.executable, "-m", "modelplane.cli.main", *cmd],
                                env=dict(os.environ), text=True, capture_output=True,
                                timeout=300)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    for line in result.stdout.splitlines():
        console.print(f"  {line}")
    if result.returncode != 0:
        raise RuntimeError(f"the canary did not promote (exit {result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    failed = sum(n for (status, _), n in seen.items() if status != 200)
    by_version = Counter[int]()
    for (status, version), n in seen.items():
        if status == 200:
            by_version[version] += n
    console.print(f"clients during the canary: {sum(seen.values()):,} requests, {failed} "
                  f"failed; answered by " + ", ".join(
                      f"version {v}: {n:,}" for v, n in sorted(by_version.items())))


def serve_and_call(model: str, sample: pd.DataFrame, console: Console,
                   candidate: int | None = None,
                   traffic: list[dict[str, Any]] | None = None) -> None:
    port, grpc_port = _free_port(), _free_port()
    cmd = [sys.executable, "-m", "modelplane.cli.main", "serve", "--port", str(port),
           "--grpc-port", str(grpc_port), "--model", f"{model}@champion", "--no-access-log",
           "--poll-interval", "0.5", "--no-controller"]
    console.print(f"[dim]$ modelplane serve --model {model}@champion --port {port} "
                  f"--grpc-port {grpc_port} --poll-interval 0.5 --no-controller[/]")
    console.print("[dim]  (--no-controller: this demo drives its canary in the foreground "
                  "with rollout start --wait; by default every server drives canaries)[/]")
    started = time.perf_counter()
    server = subprocess.Popen(cmd, env=dict(os.environ), stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            while True:
                if server.poll() is not None:
                    err = server.stderr.read().decode() if server.stderr else ""
                    raise RuntimeError(f"the server stopped: {err[-2000:]}")
                try:
                    if http.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 60:
                    raise RuntimeError("the server was not ready after 60 s")
                time.sleep(0.1)
            console.print(f"server ready in {time.perf_counter() - started:.1f} s "
                          f"(model loaded and warmed before readiness)")

            records: list[dict[str, Any]] = sample.to_dict(orient="records")
            answer = http.post("/predict", json={"model": model, "inputs": records,
                                                 "outputs": ["predict_proba"],
                                                 "unit_id": "demo-card-1"}).json()
            table = Table(title=f"POST /predict → {answer['model']} version {answer['version']}",
                          title_justify="left")
            for col in ("amount", "hour", "km", "P(fraud)"):
                table.add_column(col, justify="right")
            for rec, proba in zip(records, answer["predict_proba"], strict=True):
                table.add_row(f"{rec['amount']:,.2f}", f"{rec['hour']:02d}:00",
                              f"{rec['distance_from_home_km']:.1f}", f"{proba[1]:.2%}")
            console.print(table)

            inputs = [{"name": c, "shape": [len(sample)], "datatype": "FP64" if
                       sample[c].dtype.kind == "f" else "INT64", "data": sample[c].tolist()}
                      for c in sample.columns]
            oip = http.post(f"/v2/models/{model}/infer",
                            json={"id": "demo-1", "inputs": inputs}).json()
            console.print(f"POST /v2/models/{model}/infer (Open Inference Protocol): id "
                          f"{oip['id']}, version {oip['model_version']}, output "
                          f"{oip['outputs'][0]['name']} = {oip['outputs'][0]['data']}")
            for _ in range(50):
                http.post("/predict", json={"model": model, "inputs": records[:1]})
            metrics = http.get("/metrics").text
            requests = _metric(metrics, "modelplane_requests_total")
            seconds = _metric(metrics, "modelplane_request_duration_seconds_sum")
            batches = _metric(metrics, "modelplane_batch_size_rows_count")
            rows = _metric(metrics, "modelplane_batch_size_rows_sum")
            console.print(
                f"metrics: {requests:.0f} requests, mean latency "
                f"{1000 * seconds / max(requests, 1):.2f} ms, {batches:.0f} batches of "
                f"{rows / max(batches, 1):.1f} rows on average"
            )
            if candidate is not None:
                console.print()
                console.rule("[bold]canary")
                canary(base, model, candidate, traffic or records, console)
                after = http.post("/predict", json={"model": model, "inputs": records[:1]})
                console.print(f"{model} is now answered by version {after.json()['version']}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
    console.print(f"server stopped cleanly (exit code {code})" if code == 0
                  else f"[red]server exited with {code}[/]")
