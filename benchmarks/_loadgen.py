"""Closed-loop HTTP load generators for ``benchmarks/serving.py``: wrk, or a Python fallback.

Both POST request bodies taken in turn from a file (one JSON body a line) to one URL over
``connections`` keep-alive connections for ``duration_s`` seconds, in a separate process pinned
to one CPU, and report the same :class:`LoadResult`.

* **wrk** (Debian's ``wrk`` package; C, one thread): a Lua script reads the bodies, pre-formats
  one request per body in ``init`` and prints a JSON summary from ``done``, its latency
  percentiles included (wrk's histogram, microsecond resolution): p50, p99, p99.9 and max.
* **Python** (``python benchmarks/_loadgen.py …``): an asyncio protocol per connection (uvloop
  when installed), latencies with ``perf_counter_ns`` (the same percentiles, from the sorted
  samples); responses must carry Content-Length. It
  costs more CPU per request than wrk, so far above ~10k req/s it, not the server, may be the
  limit: use wrk where you can.

Both open every connection, wait ``RAMP_S`` and only then start the load and the clock.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

__all__ = ["RAMP_S", "LoadResult", "parse_summary", "run_load", "wrk_path"]

#: Before the load starts, every connection is opened and left idle this long, so the server has
#: accepted them all. Otherwise a server whose event loop is busy (a model run on the loop, as
#: the floor does) accepts new connections one loop turn at a time while already-accepted ones
#: keep it busy: the first request of the 64th connection then waits ~64 turns (~0.8 s), and
#: those 64 first requests alone set the p99 of a 5 s run. That is an artefact of restarting
#: the load generator, not a steady-state tail, so it is kept out of the measurement.
RAMP_S = 0.3

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

local auth = os.getenv("MP_BENCH_AUTH") or ""

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  if #auth > 0 then headers["Authorization"] = "Bearer " .. auth end
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
    '{"requests": %d, "duration_s": %.6f, "p50_ms": %.4f, "p99_ms": %.4f, "p999_ms": %.4f, '
    .. '"mean_ms": %.4f, "max_ms": %.4f, "socket_errors": %d, "non_2xx": %d, "timeouts": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.mean / 1e3,
    latency.max / 1e3, e.connect + e.read + e.write, e.status, e.timeout))
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
    p999_ms: float = float("nan")  # p99.9
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
    token: str | None = None,
) -> LoadResult:
    """Drive ``url`` for ``duration_s`` seconds from a separate process pinned to ``cpu``.

    ``token``: sent as ``Authorization: Bearer <token>`` with every request.

    Every connection is opened first and left idle for ``RAMP_S``; only then does the load
    start (and the clock: the ramp is taken out of the duration). See ``RAMP_S``.
    """
    _check_local(url)
    wrk = wrk_path() if use_wrk else None
    env = {
        **os.environ,
        "MP_BENCH_BODIES": str(bodies),
        "MP_BENCH_RAMP_N": str(connections),
        "MP_BENCH_RAMP_MS": str(round(RAMP_S * 1000)),
        "MP_BENCH_AUTH": token or "",
    }
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
    return parse_summary(out, wrk=wrk is not None)


def parse_summary(out: str, *, wrk: bool) -> LoadResult:
    """The :class:`LoadResult` in a load generator's output: its last line starting with
    ``{`` (the JSON summary the Lua ``done`` hook or the Python generator prints; wrk prints its
    own report before it). wrk's duration includes the ramp (``RAMP_S``), taken out here."""
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"load generator printed no summary:\n{out}")
    result = LoadResult(**json.loads(line))
    if wrk:  # wrk's duration includes the ramp, when no request was in flight
        result.duration_s = max(result.duration_s - RAMP_S, 1e-3)
    return result


def _run(cmd: list[str], env: dict[str, str], duration_s: int) -> str:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- the Python load generator (runs in its own process) --------------------------------------


class _Client(asyncio.Protocol):
    """One keep-alive connection, closed loop: the next request goes as a response ends."""

    def __init__(self, requests: list[bytes], start: int, stats: _Stats) -> None:
        self.requests = requests
        self.i = start
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sent = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self) -> None:
        assert self.transport is not None
        if not self.stats.running:
            self.transport.close()
            return
        self.sent = time.perf_counter_ns()
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.stats.record(time.perf_counter_ns() - self.sent, int(head[9:12]))
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.stats.running:
            self.stats.socket_errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


def _returning(client: _Client) -> Callable[[], _Client]:
    return lambda: client


class _Stats:
    def __init__(self) -> None:
        self.running = False
        self.latencies: list[int] = []
        self.non_2xx = 0
        self.socket_errors = 0

    def record(self, latency_ns: int, status: int) -> None:
        if self.running:
            self.latencies.append(latency_ns)
            if not 200 <= status < 300:
                self.non_2xx += 1


async def _drive(url: str, bodies: list[str], connections: int, duration_s: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    token = os.environ.get("MP_BENCH_AUTH", "")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        ).encode()
        for body in bodies
    ]
    loop = asyncio.get_running_loop()
    stats = _Stats()
    clients: list[_Client] = []
    for k in range(connections):
        client = _Client(requests, k, stats)
        await loop.create_connection(_returning(client), host, port)
        clients.append(client)
    await asyncio.sleep(RAMP_S)  # let the server accept every connection before the load
    stats.running = True
    started = time.perf_counter()
    for client in clients:
        client.send()
    await asyncio.sleep(duration_s)
    stats.running = False
    elapsed = time.perf_counter() - started
    await asyncio.wait([c.closed for c in clients], timeout=30)
    ordered = sorted(stats.latencies)

    def pct(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6

    return LoadResult(
        requests=len(ordered),
        duration_s=elapsed,
        p50_ms=pct(50),
        p99_ms=pct(99),
        p999_ms=pct(99.9),
        mean_ms=sum(ordered) / len(ordered) / 1e6 if ordered else 0.0,
        max_ms=ordered[-1] / 1e6 if ordered else 0.0,
        socket_errors=stats.socket_errors,
        non_2xx=stats.non_2xx,
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
