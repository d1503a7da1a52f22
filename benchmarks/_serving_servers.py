"""Server processes for ``benchmarks/serving.py``: start, pin, pause, read /proc, stop.

Each server runs in its own session (process group), pinned to one CPU. Its standard output and
error go to a pipe (1 MiB) that a thread of the benchmark drains — as a log collector would —
keeping the first and last lines for error reports and counting the bytes (the access log is
one JSON line per request on standard error). While another server is measured, a server is
stopped (``SIGSTOP`` to its process group) so its background jobs (polls, flushes, the
controller) cannot run on the measured server's CPU; it is continued before its own turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

__all__ = ["READY_PATH", "Metrics", "Server", "free_port", "pinned"]

READY_PATH = "/v2/health/ready"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PIPE_BYTES = 1 << 20
Metrics = dict[str, float]  # counters read from /metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    taskset = shutil.which("taskset")
    if cpu is None or taskset is None:
        return cmd
    return [taskset, "-c", str(cpu), *cmd]


class _Drain:
    """Reads a pipe to its end in a thread: the first ``keep`` bytes, the last ``keep`` bytes
    and the byte count."""

    def __init__(self, fd: int, keep: int = 32 << 10) -> None:
        self.fd = fd
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.bytes = 0
        self.thread = threading.Thread(target=self._run, name="bench-drain", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.bytes += len(chunk)
            if len(self.head) < self.keep:
                self.head += chunk[: self.keep - len(self.head)]
            self.tail += chunk
            if len(self.tail) > 2 * self.keep:
                del self.tail[: len(self.tail) - self.keep]
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def text(self) -> str:
        if self.bytes <= len(self.head):
            return self.head.decode(errors="replace")
        tail = self.tail[-self.keep :]
        return (self.head + b"\n[...]\n" + tail).decode(errors="replace")


class Server:
    """One server process (pinned to ``cpu``), its port, output and /proc readings."""

    def __init__(
        self,
        key: str,
        label: str,
        cmd: list[str],
        env: dict[str, str],
        cpu: int | None,
        port: int,
        *,
        has_metrics: bool = True,
        predlog_dir: Path | None = None,
    ) -> None:
        self.key = key
        self.label = label
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token: str | None = None  # sent with every request when the variant needs it
        self.error: str | None = None
        self.has_metrics = has_metrics
        self.predlog_dir = predlog_dir
        self.predlog_bytes = 0  # Parquet bytes the prediction log wrote (files pruned as we go)
        self.paused = False
        read_fd, write_fd = os.pipe()
        # A pipe holds 64 KiB by default (~250 access lines): a drain thread scheduled late
        # would block the server's writes, a stall of our making. 1 MiB is the unprivileged
        # limit (/proc/sys/fs/pipe-max-size).
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            self.proc = subprocess.Popen(
                pinned(cmd, cpu),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self.output = _Drain(read_fd)
        if cpu is not None and shutil.which("taskset") is None:
            os.sched_setaffinity(self.proc.pid, {cpu})

    # -- life -----------------------------------------------------------------------------------

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
        return "\n".join(self.output.text().splitlines()[-lines:])

    def pause(self) -> None:
        """Stop every process of the server (``SIGSTOP``), so it takes no CPU at all."""
        if not self.paused and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
            self.paused = False

    def stop(self) -> None:
        self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.thread.join(timeout=5)

    # -- /proc ----------------------------------------------------------------------------------

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

    def reset_peak(self) -> bool:
        """Reset ``VmHWM`` to the current RSS (``/proc/PID/clear_refs``, 5), so the next reading
        is the peak since now; False when the kernel refuses (then VmHWM is the peak since
        start)."""
        done = True
        for pid in self.pids():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                done = False
        return done

    # -- the server's own view ------------------------------------------------------------------

    def metrics(self) -> Metrics:
        """Batch and cache counters from ``/metrics`` (empty for the floor)."""
        found: Metrics = defaultdict(float)
        if not self.has_metrics:
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
            elif name.startswith("modelplane_prediction_log_dropped_total"):
                found["predlog_dropped"] += float(value)
        return found

    def prune_predlog(self) -> None:
        """Count and delete the Parquet files the prediction log wrote (the disk stays small
        over a long run; files still being written, ``_*.tmp``, are left)."""
        if self.predlog_dir is None or not self.predlog_dir.exists():
            return
        for part in self.predlog_dir.rglob("part-*.parquet"):
            with contextlib.suppress(OSError):
                self.predlog_bytes += part.stat().st_size
                part.unlink()
