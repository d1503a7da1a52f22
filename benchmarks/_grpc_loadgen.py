"""Closed-loop gRPC load generator for ``benchmarks/grpc.py`` (``ghz`` is not packaged here).

    python benchmarks/_grpc_loadgen.py 127.0.0.1:PORT --bodies FILE -c CLIENTS -d SECONDS
        [--channels N]

``CLIENTS`` callers, each a coroutine on ``grpc.aio``, call ``ModelInfer`` in a closed loop (the
next call as the answer arrives) over ``--channels`` channels (default one per 16 callers, so
no connection carries more than 16 concurrent HTTP/2 streams; each channel its own TCP
connection: ``grpc.use_local_subchannel_pool``). The request bodies are serialized
``ModelInferRequest`` messages prepared in advance (``FILE``: one base64 message a line), sent
as bytes and answered as bytes: the generator neither builds nor parses a protobuf message per
call, so its own CPU goes to gRPC only. Every channel connects and each caller makes one call
first (not counted), then ``RAMP_S`` of idle, then the clock starts.

It prints one JSON line: requests, duration, p50/p99/p99.9/mean/max latency in ms (nearest
rank over every sample: :func:`summarize`), failed calls by status code, and the generator's
own CPU seconds (when they approach the duration, the generator is the limit, not the server).
Only loopback targets are accepted.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # run from benchmarks/, benchmarks/grpc.py would shadow grpc
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

__all__ = ["RAMP_S", "GrpcLoad", "channels_for", "percentile", "run_grpc_load", "summarize"]

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
RAMP_S = 0.3
STREAMS_PER_CHANNEL = 16


@dataclass
class GrpcLoad:
    """One closed-loop run."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # status code name: count
    client_cpu_s: float = 0.0
    channels: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def channels_for(clients: int, streams: int = STREAMS_PER_CHANNEL) -> int:
    """Channels (TCP connections) for ``clients`` callers: one per ``streams`` callers."""
    return max(1, math.ceil(clients / streams))


def percentile(ordered: Sequence[int | float], p: float) -> float:
    """Nearest-rank ``p``-th percentile of sorted samples (0 for none): the sample at index
    ``floor(p/100 * n)``, clamped; the same rule as ``_loadgen.py``'s Python generator."""
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))])


def summarize(
    latencies_ns: Sequence[int], duration_s: float, errors: dict[str, int] | None = None
) -> GrpcLoad:
    """The :class:`GrpcLoad` of latency samples in nanoseconds."""
    ordered = sorted(latencies_ns)
    ms = 1e6
    return GrpcLoad(
        requests=len(ordered),
        duration_s=duration_s,
        p50_ms=percentile(ordered, 50) / ms,
        p99_ms=percentile(ordered, 99) / ms,
        p999_ms=percentile(ordered, 99.9) / ms,
        mean_ms=sum(ordered) / len(ordered) / ms if ordered else 0.0,
        max_ms=ordered[-1] / ms if ordered else 0.0,
        errors=dict(errors or {}),
    )


def parse_result(out: str) -> GrpcLoad:
    """The :class:`GrpcLoad` in the generator's output (its last line starting with ``{``)."""
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"gRPC load generator printed no summary:\n{out}")
    return GrpcLoad(**json.loads(line))


def run_grpc_load(
    target: str,
    bodies: Path,
    *,
    clients: int,
    duration_s: float,
    cpu: int | None,
    channels: int | None = None,
) -> GrpcLoad:
    """Drive ``target`` from a separate process pinned to ``cpu`` (taskset)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        target,
        "--bodies",
        str(bodies),
        "-c",
        str(clients),
        "-d",
        str(duration_s),
    ]
    if channels:
        cmd += ["--channels", str(channels)]
    taskset = shutil.which("taskset")
    if cpu is not None and taskset:
        cmd = [taskset, "-c", str(cpu), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 90, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gRPC load generator failed ({proc.returncode}):\n{proc.stderr}")
    return parse_result(proc.stdout)


def _check_local(target: str) -> None:
    host = target.rsplit(":", 1)[0].strip("[]")
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError(f"only loopback targets are allowed, not {host!r}")


async def drive(
    target: str, bodies: list[bytes], clients: int, duration_s: float, channels: int
) -> GrpcLoad:
    import grpc

    options = [
        ("grpc.use_local_subchannel_pool", 1),  # a TCP connection per channel
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ]
    chans = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    try:
        for chan in chans:
            await asyncio.wait_for(chan.channel_ready(), timeout=30)
        calls = [chan.unary_unary(MODEL_INFER) for chan in chans]  # bytes in, bytes out
        latencies: list[int] = []
        errors: Counter[str] = Counter()
        running = False
        stop_at = 0.0

        async def caller(k: int) -> None:
            call = calls[k % len(calls)]
            i = k
            await call(bodies[i % len(bodies)], timeout=30)  # warm: not counted
            await ramp.wait()
            clock = time.perf_counter_ns
            while time.perf_counter() < stop_at:
                body = bodies[i % len(bodies)]
                i += 1
                sent = clock()
                try:
                    await call(body, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                if running:
                    latencies.append(clock() - sent)

        ramp = asyncio.Event()
        tasks = [asyncio.create_task(caller(k)) for k in range(clients)]
        await asyncio.sleep(RAMP_S)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        stop_at = started + duration_s
        running = True
        ramp.set()
        await asyncio.sleep(duration_s)
        running = False
        elapsed = time.perf_counter() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*tasks)
    finally:
        for chan in chans:
            await chan.close()
    result = summarize(latencies, elapsed, errors)
    result.client_cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    result.channels = channels
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Closed-loop gRPC ModelInfer load generator.")
    parser.add_argument("target", help="HOST:PORT (loopback only)")
    parser.add_argument("--bodies", type=Path, required=True, help="one base64 message a line")
    parser.add_argument("-c", "--clients", type=int, default=8)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--channels", type=int, help="default: one per 16 clients")
    args = parser.parse_args(argv)
    _check_local(args.target)
    text = args.bodies.read_text(encoding="ascii")
    bodies = [base64.b64decode(line) for line in text.splitlines() if line.strip()]
    channels = args.channels or channels_for(args.clients)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    result = asyncio.run(drive(args.target, bodies, args.clients, args.duration, channels))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
