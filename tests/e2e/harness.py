"""What the end-to-end tests share: free ports, the serving app in process, a real ``serve``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from modelplane.api.server import create_serving_app
from modelplane.bootstrap import Platform
from modelplane.serving.options import ServeOptions

__all__ = ["DEADLINE_S", "Server", "free_port", "serve", "wait_for"]

#: How long a test waits for an event (a file, a pid gone, a probe answering) before failing.
DEADLINE_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], what: str, *, poll_s: float = 0.05) -> None:
    """Return once ``predicate()`` holds; fail after :data:`DEADLINE_S`. The poll interval only
    spaces the checks: the test synchronises on the event, never on the time."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(poll_s)


class serve:
    """The serving app with its real lifespan, in process, behind an httpx client."""

    def __init__(self, platform: Platform, opts: ServeOptions | None = None) -> None:
        self.app = create_serving_app(
            platform=platform,
            options=opts or ServeOptions(grpc_port=None, poll_interval_s=3600, access_log=False),
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                       base_url="http://modelplane")  # fmt: skip
        return self._http

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        await self._lifespan.__aexit__(None, None, None)


class Server:
    """A real ``modelplane serve`` process on free ports, ready (its readiness probe answered)
    when the constructor returns; ``stop()`` sends SIGTERM and returns the exit status. It
    sees no ``MODELPLANE_*`` variable of the test run's but ``env``'s and its home."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        root = str(Path(__file__).resolve().parents[2])  # the pyfunc test models live here
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
        env = {
            **inherited,
            **(env or {}),
            "MODELPLANE_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self.log_path = home / "server.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelplane.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
                "--no-access-log",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_for(self._ready, "the server's readiness probe", poll_s=0.1)
        except AssertionError:
            self.stop()
            raise

    def _ready(self) -> bool:
        """The readiness probe answers 200; a server that exited fails the test at once."""
        if self.proc.poll() is not None:
            self.log.close()
            raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    return self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()
