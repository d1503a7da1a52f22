"""``modelplane serve --workers 2`` killed with ``kill -9``: its workers go too, and a new
server binds the same HTTP and gRPC ports at once.

Real processes throughout. Every wait is for an event (a readiness probe answering, a pid
disappearing) under a generous deadline; nothing is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import DEADLINE_S, free_port, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone: it holds no socket)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:  # uvicorn's workers, not a tracker
            found.append(int(entry.name))
    return found


class Serve:
    def __init__(self, home: Path, port: int, grpc_port: int, *args: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        system_tmp = home.parent / "system-tmp"
        system_tmp.mkdir(exist_ok=True)
        env = {**os.environ, "MODELPLANE_HOME": str(home), "TMPDIR": str(system_tmp)}
        self.log_path = home.parent / f"serve-{time.monotonic_ns()}.log"
        self.log = self.log_path.open("wb")
        self.workers: list[int] = []  # killed at teardown, wherever they were reparented
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelplane.cli.main",
                "serve",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--no-access-log",
                "--no-prediction-log",
                "--no-controller",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"server exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        for worker in {*s.workers, *children(s.proc.pid)}:
            if alive(worker):
                os.kill(worker, signal.SIGKILL)
        s.stop()


class TestWorkersDieWithTheirServer:
    def test_kill_9_of_the_server_ends_its_workers_and_a_restart_binds_the_same_ports(
        self, tmp_path: Path, servers: list[Serve]
    ) -> None:
        home = tmp_path / "home"
        port, grpc_port = free_port(), free_port()
        first = Serve(home, port, grpc_port, "--workers", "2")
        servers.append(first)
        wait_for(first.ready, "the first server to be ready")
        wait_for(lambda: len(children(first.proc.pid)) == 2, "two workers")
        workers = first.workers = children(first.proc.pid)

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=DEADLINE_S)
        wait_for(lambda: not any(alive(w) for w in workers), f"workers {workers} to exit")

        second = Serve(home, port, grpc_port, "--workers", "2")
        servers.append(second)
        wait_for(second.ready, "a new server on the same ports")
        self._grpc_ready(grpc_port)

    @staticmethod
    def _grpc_ready(port: int) -> None:
        import grpc

        from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
        from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=DEADLINE_S)
            assert (
                pb_grpc.GRPCInferenceServiceStub(channel)
                .ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE_S)
                .ready
            )


class TestExitWithParent:
    def test_a_child_exits_when_its_parent_is_killed(self, tmp_path: Path) -> None:
        # parent (python) -> child (python, exit_with_parent) ; kill -9 the parent.
        pid_file = tmp_path / "child.pid"
        child = (
            "import os, sys, threading, signal\n"
            "from modelplane.serving.http_server import exit_with_parent\n"
            "exit_with_parent(os.getppid(), grace_s=30)\n"
            f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "threading.Event().wait()\n"
        )
        parent = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import subprocess, sys, threading; subprocess.Popen([sys.executable, '-c', "
                f"{child!r}]); threading.Event().wait()",
            ],
        )
        try:
            wait_for(lambda: pid_file.exists() and pid_file.read_text().isdigit(), "the child")
            child_pid = int(pid_file.read_text())
            assert alive(child_pid)
        finally:
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=DEADLINE_S)
        wait_for(lambda: not alive(child_pid), "the child to exit")

    def test_a_child_that_ignores_sigterm_is_ended_after_the_grace(self, tmp_path: Path) -> None:
        # A drain that hangs: SIGTERM is ignored, os._exit after grace_s ends it anyway.
        pid_file = tmp_path / "child.pid"
        child = (
            "import os, signal, threading\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "from modelplane.serving.http_server import exit_with_parent\n"
            "exit_with_parent(os.getppid(), grace_s=1, poll_s=0.05)\n"
            f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "threading.Event().wait()\n"
        )
        parent = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import subprocess, sys, threading; subprocess.Popen([sys.executable, '-c', "
                f"{child!r}]); threading.Event().wait()",
            ],
        )
        try:
            wait_for(lambda: pid_file.exists() and pid_file.read_text().isdigit(), "the child")
            child_pid = int(pid_file.read_text())
        finally:
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=DEADLINE_S)
        wait_for(lambda: not alive(child_pid), "the child to be ended")

    def test_a_parent_gone_before_the_watch_starts_is_noticed(self) -> None:
        # The supervisor died before the worker armed prctl: the kernel will send nothing, so
        # the watch sends SIGTERM itself.
        code = (
            "import threading\n"
            "from modelplane.serving.http_server import exit_with_parent\n"
            "exit_with_parent(2 ** 22 + 1, grace_s=60, poll_s=0.05)\n"  # not our parent
            "threading.Event().wait()\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], timeout=DEADLINE_S, check=False)
        assert proc.returncode == -signal.SIGTERM
