"""Closed-loop HTTP load generators for ``benchmarks/serving.py``: wrk, or a Python fallback.

Both POST request bodies taken in turn from a file (one JSON body a line) to one URL over
``connections`` keep-alive connections for ``duration_s`` seconds, in a separate process pinned
to one CPU, and report the same :class:`LoadResult`.

* **wrk** (Debian's ``wrk`` package; C, one thread): a Lua script reads the bodies, pre-formats
  one request per body in ``init`` and prints a JSON summary from ``done``, its latency
  percentiles included (wrk's histogram, microsecond resolution).
* **Python** (``python benchmarks/_loadgen.py …``): asyncio (uvloop when installed) streams, one
  task per connection, latencies with ``perf_counter_ns``. It costs far more CPU per request than
  wrk, so above ~10k req/s it, not the server, may be the limit: use wrk where you can.

Only 127.0.0.1/localhost URLs are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["LoadResult", "run_load", "wrk_path"]

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("MP_BENCH_BODIES")) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
local requests = {}
local n = #bodies
local i = 0
-- The first request of each connection waits until every connection is accepted (see RAMP_S).
local ramp_left = tonumber(os.getenv("MP_BENCH_RAMP_N"))
local ramp_ms = tonumber(os.getenv("MP_BENCH_RAMP_MS"))

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for k = 1, n do
    requests[k] = wrk.format("POST", nil, headers, bodies[k])
  end
end

function request()
  i = i % n + 1
  return requests[i]
end

function delay()
  if ramp_left > 0 then
    ramp_left = ramp_left - 1
    return ramp_ms
  end
  return 0
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.6f, "p50_ms": %.4f, "p99_ms": %.4f, "mean_ms": %.4f, '
    .. '"max_ms": %.4f, "socket_errors": %d, "non_2xx": %d, "timeouts": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.mean / 1e3, latency.max / 1e3,
    e.connect + e.read + e.write, e.status, e.timeout))
end
"""


@dataclass
class LoadResult:
    """One closed-loop run: completed requests, their latencies and failures."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: int = 0
    non_2xx: int = 0
    timeouts: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx + self.timeouts


def wrk_path() -> str | None:
    """Where ``wrk`` is, or ``None`` (then :func:`run_load` uses the Python generator)."""
    return shutil.which("wrk")


def _check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError(f"only loopback targets are allowed, not {host!r}")


def _pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None:
        return cmd
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *cmd] if taskset else cmd


def run_load(
    url: str,
    bodies: Path,
    *,
    connections: int,
    duration_s: int,
    cpu: int | None,
    use_wrk: bool = True,
) -> LoadResult:
    """Drive ``url`` for ``duration_s`` seconds from a separate process pinned to ``cpu``."""
    _check_local(url)
    wrk = wrk_path() if use_wrk else None
    env = {**os.environ, "MP_BENCH_BODIES": str(bodies)}
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(LUA)
        try:
            cmd = [
                wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "30s",
                "-s", fh.name, url,
            ]  # fmt: skip
            out = _run(_pinned(cmd, cpu), env, duration_s)
        finally:
            os.unlink(fh.name)
    else:
        cmd = [
            sys.executable, str(Path(__file__).resolve()), url, "--bodies", str(bodies),
            "-c", str(connections), "-d", str(duration_s),
        ]  # fmt: skip
        out = _run(_pinned(cmd, cpu), env, duration_s)
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"load generator printed no summary:\n{out}")
    return LoadResult(**json.loads(line))


def _run(cmd: list[str], env: dict[str, str], duration_s: int) -> str:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- the Python load generator (runs in its own process) --------------------------------------


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    start: int,
    deadline: float,
    latencies: list[int],
    counts: dict[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = start
    n = len(requests)
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter_ns()
            writer.write(requests[i % n])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter_ns() - sent)
            status = int(head[9:12])
            if not 200 <= status < 300:
                counts["non_2xx"] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts["socket_errors"] += 1
    finally:
        writer.close()


async def _drive(url: str, bodies: list[str], connections: int, duration_s: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        ).encode()
        for body in bodies
    ]
    latencies: list[int] = []
    counts = {"non_2xx": 0, "socket_errors": 0}
    started = time.perf_counter()
    deadline = started + duration_s
    await asyncio.gather(
        *(
            _connection(host, port, requests, k, deadline, latencies, counts)
            for k in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6

    return LoadResult(
        requests=len(ordered),
        duration_s=elapsed,
        p50_ms=pct(50),
        p99_ms=pct(99),
        mean_ms=sum(ordered) / len(ordered) / 1e6 if ordered else 0.0,
        max_ms=ordered[-1] / 1e6 if ordered else 0.0,
        socket_errors=counts["socket_errors"],
        non_2xx=counts["non_2xx"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Closed-loop HTTP POST load generator.")
    parser.add_argument("url")
    parser.add_argument("--bodies", type=Path, required=True, help="one JSON body a line")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    args = parser.parse_args(argv)
    _check_local(args.url)
    bodies = [ln for ln in args.bodies.read_text(encoding="utf-8").splitlines() if ln]
    coro = _drive(args.url, bodies, args.connections, args.duration)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
