"""The HTTP protocol ``modelplane serve`` runs: uvicorn's, sharing its request count with us."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from modelplane.serving import http_server
from modelplane.serving.http_server import ServingHttpProtocol, sole_request

pytestmark = pytest.mark.anyio


class Recorder:
    """An ASGI app that records ``sole_request()`` per request; ``/hold`` waits for release."""

    def __init__(self) -> None:
        self.seen: list[bool] = []
        self.held = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            self.held += 1
            await self.release.wait()
        self.seen.append(sole_request())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def running(app: Recorder) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=ServingHttpProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_without_the_protocol_no_request_is_taken_for_the_only_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_server, "_tasks", None)
    assert sole_request() is False


async def test_one_request_at_a_time_is_the_only_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "_tasks", None)
    app = Recorder()
    async with running(app) as url, httpx.AsyncClient(base_url=url) as client:
        for _ in range(5):
            assert (await client.get("/")).status_code == 200
    assert app.seen == [True] * 5


async def test_concurrent_requests_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "_tasks", None)
    app = Recorder()
    async with running(app) as url, httpx.AsyncClient(base_url=url) as client:
        held = [asyncio.create_task(client.get("/hold")) for _ in range(3)]
        while app.held < 3:
            await asyncio.sleep(0.01)
        assert (await client.get("/")).status_code == 200  # three others are in flight
        app.release.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*held))
    assert len(app.seen) == 4
    assert app.seen[0] is False  # the request answered while three were held
