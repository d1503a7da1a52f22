"""Request bodies are bounded while they stream in, and writes are authenticated unread.

The apps are driven at the ASGI level with a ``receive`` that counts what the server consumed,
so each test proves *how much* of the body was read, not only the status: a declared length
over the limit and an unauthenticated write read nothing; a streamed (chunked) body is read up
to the limit and no further; the route handler never runs (nothing is registered).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.api import create_app
from modelplane.api.limits import BodyLimit
from modelplane.api.server import create_serving_app
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.runtimes import save_model
from modelplane.serving.options import ServeOptions

pytestmark = pytest.mark.anyio

LIMIT = 1 << 20  # the platform's max_body_bytes in these tests
CHUNK = 64 << 10
V1 = "/api/v1"
MULTIPART_HEAD = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="m.skops"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


class Exchange:
    """One request driven through an ASGI app, counting what the app read of its body."""

    def __init__(self, chunks: int, chunk: bytes = b"x" * CHUNK, *, first: bytes = b"") -> None:
        self._left = chunks
        self._chunk = chunk
        self._first = first
        self.consumed = 0  # body bytes handed to the app
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if self._left <= 0:
            return {"type": "http.disconnect"}
        self._left -= 1
        body, self._first = self._first + self._chunk, b""
        self.consumed += len(body)
        return {"type": "http.request", "body": body, "more_body": self._left > 0}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def error(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.body)["error"]
        return doc


async def drive(
    app: Any,
    method: str,
    path: str,
    ex: Exchange,
    *,
    length: int | None = None,
    token: str | None = None,
    content_type: str = "application/json",
) -> Exchange:
    headers = [(b"host", b"modelplane"), (b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("modelplane", 80),
    }
    await app(scope, ex.receive, ex.send)
    return ex


@pytest.fixture
def small_platform(tmp_path: Path) -> Iterator[Platform]:
    home = tmp_path / "home"
    home.mkdir()
    p = bootstrap(Settings(home=home, max_body_bytes=LIMIT), raise_on_event_error=True)
    yield p
    p.close()


def _token(platform: Platform, scope: str) -> str:
    secret: str = platform.bus.handle(CreateToken(name=f"limits-{scope}", scope=scope)).secret
    return secret


@pytest.fixture
def write(small_platform: Platform) -> str:
    return _token(small_platform, "write")


def _no_models(platform: Platform) -> bool:
    return not Client(platform=platform).list_models().items


class TestRegistryApi:
    async def test_a_declared_length_over_the_limit_is_refused_before_reading(
        self, small_platform: Platform, write: str
    ) -> None:
        ex = await drive(
            create_app(small_platform),
            "POST",
            f"{V1}/models",
            Exchange(200),
            length=200 * CHUNK,
            token=write,
        )
        assert ex.status == 413
        assert ex.error()["code"] == "payload_too_large"
        assert ex.error()["field"] == "body"
        assert ex.consumed == 0
        assert _no_models(small_platform)

    async def test_a_chunked_body_over_the_limit_is_refused_once_the_limit_is_passed(
        self, small_platform: Platform, write: str
    ) -> None:
        ex = await drive(
            create_app(small_platform), "POST", f"{V1}/models", Exchange(200), token=write
        )  # 12.5 MiB offered, no Content-Length
        assert ex.status == 413, ex.body
        assert ex.error() == {
            "code": "payload_too_large",
            "field": "body",
            "message": ex.error()["message"],
        }
        assert ex.headers["connection"] == "close"
        assert ex.consumed <= LIMIT + CHUNK  # read up to the limit, then no further
        assert _no_models(small_platform)

    async def test_a_body_lying_about_its_length_is_cut_at_the_limit(
        self, small_platform: Platform, write: str
    ) -> None:
        ex = await drive(
            create_app(small_platform),
            "PUT",
            f"{V1}/models/m/tags/k",
            Exchange(200),
            length=100,
            token=write,
        )
        assert ex.status == 413
        assert ex.consumed <= LIMIT + CHUNK

    async def test_a_body_within_the_limit_reaches_the_route(
        self, small_platform: Platform, write: str
    ) -> None:
        body = orjson.dumps({"name": "fraud", "description": "d" * 1000})
        ex = await drive(
            create_app(small_platform),
            "POST",
            f"{V1}/models",
            Exchange(1, body),
            length=len(body),
            token=write,
        )
        assert ex.status == 201, ex.body
        assert not _no_models(small_platform)

    @pytest.mark.parametrize("length", [50 << 20, None], ids=["declared", "chunked"])
    async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
        self, small_platform: Platform, length: int | None
    ) -> None:
        ex = await drive(
            create_app(small_platform),
            "POST",
            f"{V1}/models/fraud/versions",
            Exchange(800),
            length=length,
            content_type="multipart/form-data; boundary=x",
        )  # 50 MiB offered
        assert ex.status == 401
        assert ex.headers["www-authenticate"] == "Bearer"
        assert ex.headers["connection"] == "close"
        assert ex.error()["code"] == "unauthorized"
        assert ex.consumed == 0

    async def test_an_invalid_token_is_refused_before_the_body_is_read(
        self, small_platform: Platform
    ) -> None:
        ex = await drive(
            create_app(small_platform),
            "POST",
            f"{V1}/models",
            Exchange(10),
            length=10 * CHUNK,
            token="mp_not-a-token",
        )
        assert ex.status == 401
        assert ex.consumed == 0

    async def test_a_read_token_is_refused_a_write_before_the_body_is_read(
        self, small_platform: Platform
    ) -> None:
        ex = await drive(
            create_app(small_platform),
            "POST",
            f"{V1}/models/fraud/versions",
            Exchange(10),
            length=10 * CHUNK,
            token=_token(small_platform, "read"),
            content_type="multipart/form-data; boundary=x",
        )
        assert ex.status == 403
        assert ex.consumed == 0

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("POST", f"{V1}/no-such-route", 404),
            ("PATCH", f"{V1}/models", 405),
        ],
    )
    async def test_unknown_routes_and_methods_keep_their_status(
        self, small_platform: Platform, method: str, path: str, status: int
    ) -> None:
        ex = await drive(create_app(small_platform), method, path, Exchange(1), length=CHUNK)
        assert ex.status == status

    async def test_an_upload_larger_than_max_body_bytes_is_registered(
        self, small_platform: Platform, write: str, tmp_path: Path
    ) -> None:
        # Uploads have their own (larger) limit: a 1.2 MB model file passes a 1 MiB bound.
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4, 150_000))
        saved = save_model(LogisticRegression(max_iter=20).fit(x, [0, 1, 0, 1]), tmp_path / "m")
        assert saved.path.stat().st_size > LIMIT
        transport = httpx.ASGITransport(app=create_app(small_platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://mp") as http:
            r = await http.post(
                f"{V1}/models/wide/versions",
                files={"file": (saved.path.name, saved.path.read_bytes())},
                headers={"Authorization": f"Bearer {write}"},
            )
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 1

    async def test_the_upload_limit_is_enforced_on_a_chunked_upload(
        self, small_platform: Platform, write: str
    ) -> None:
        app = BodyLimit(create_app(small_platform), max_upload_bytes=4 * CHUNK)
        ex = Exchange(100, first=MULTIPART_HEAD)  # a well-formed file part, 6.25 MiB long
        await drive(
            app,
            "POST",
            f"{V1}/models/fraud/versions",
            ex,
            token=write,
            content_type="multipart/form-data; boundary=x",
        )
        assert ex.status == 413
        assert ex.consumed <= 5 * CHUNK
        assert _no_models(small_platform)


class TestServingApp:
    @pytest.fixture
    async def serving(self, small_platform: Platform) -> Any:
        app = create_serving_app(
            platform=small_platform,
            options=ServeOptions(
                grpc_port=None,
                poll_interval_s=3600,
                access_log=False,
                prediction_log=False,
                controller=False,
            ),
        )
        async with app.router.lifespan_context(app):
            yield app

    @pytest.mark.parametrize("path", ["/v2/models/fraud/infer", "/predict", "/feedback"])
    async def test_a_chunked_body_over_the_limit_is_refused_on_the_hot_routes(
        self, serving: Any, path: str
    ) -> None:
        ex = await drive(serving, "POST", path, Exchange(200))
        assert ex.status == 413, ex.body
        assert ex.consumed <= LIMIT + CHUNK

    async def test_the_registry_routes_of_the_serving_app_are_bounded_too(
        self, serving: Any, small_platform: Platform, write: str
    ) -> None:
        ex = await drive(serving, "POST", f"{V1}/models", Exchange(200), token=write)
        assert ex.status == 413
        assert ex.consumed <= LIMIT + CHUNK
        unauthenticated = await drive(serving, "POST", f"{V1}/models", Exchange(200))
        assert unauthenticated.status == 401
        assert unauthenticated.consumed == 0


class LiveServer:
    """The registry API under a real uvicorn, in a thread of this process."""

    def __init__(self, platform: Platform) -> None:
        import threading

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(platform), lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def send_body(self, head: bytes, total: int, *, chunked: bool) -> tuple[bytes, int]:
        """Send ``head`` and up to ``total`` body bytes; the status line, and the bytes the
        server let us send before it answered and closed."""
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        conn.sendall(head)
        sent = 0
        data = b"x" * CHUNK
        try:
            while sent < total:
                conn.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed: the rest was never going to be read
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
        conn.close()
        return answer.split(b"\r\n", 1)[0], sent

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


@pytest.fixture
def live(small_platform: Platform) -> Iterator[LiveServer]:
    server = LiveServer(small_platform)
    yield server
    server.close()


class TestRealServer:
    """Over a socket: the refusal comes first and the connection closes, so the client cannot
    push the rest of a large body into the server."""

    FIFTY_MB = 50 << 20

    def test_an_unauthenticated_50_mb_upload_is_cut_off_with_401(self, live: LiveServer) -> None:
        head = (
            b"POST /api/v1/models/fraud/versions HTTP/1.1\r\nHost: mp\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: %d\r\n\r\n" % self.FIFTY_MB
        )
        status, sent = live.send_body(head, self.FIFTY_MB, chunked=False)
        assert status == b"HTTP/1.1 401 Unauthorized"
        assert sent < self.FIFTY_MB

    def test_a_chunked_body_over_the_limit_is_cut_off_with_413(
        self, live: LiveServer, write: str
    ) -> None:
        head = (
            b"POST /api/v1/models HTTP/1.1\r\nHost: mp\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n" % write.encode()
        )
        status, sent = live.send_body(head, self.FIFTY_MB, chunked=True)
        assert status.startswith(b"HTTP/1.1 413")
        assert sent < self.FIFTY_MB
