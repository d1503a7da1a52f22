"""Request bodies are bounded, and writes are authenticated, before the body is read.

:class:`BodyLimit` is a pure ASGI middleware (Starlette's ``__init__(app, **opts)`` +
``async __call__`` shape) that FastAPI apps get from :func:`~modelplane.api.app.include_routers`
— the registry API and the FastAPI part of the serving app alike:

* **A declared body too large** (``Content-Length`` above the limit) is answered 413 before a
  byte of it is read.
* **A streamed body** (chunked, or lying about its length) is counted as it is received: the
  ``receive`` the app sees raises once the count passes the limit, so nothing past it is ever
  read, and the app's own answer (FastAPI turns any error while reading into a 400) is replaced
  by the 413. The connection is closed (``Connection: close``) since the rest is never read.
* **A write under the API prefix** (POST, PUT, PATCH, DELETE) without a valid, non-revoked
  token of at least ``write`` scope is answered 401 (403 for a ``read`` token) before the body
  is read: FastAPI reads, and a multipart upload spools to disk, the whole body before it
  resolves the route's dependencies. The token found is handed to the route in the request's
  state (``scope["state"]["modelplane.token"]``, ``security.TOKEN_STATE``), so the route's own
  dependency checks its exact scope (delivery writes need ``admin``) without a second lookup.
  This refusal closes the connection too.

The limit is ``settings.max_body_bytes`` (16 MiB by default), read from the app's platform per
request; the artifact upload route (``POST …/models/{name}/versions``) gets
``settings.max_upload_bytes`` where the settings have it, else :data:`MAX_UPLOAD_BYTES`
(2 GiB). Errors have the route's shape: the API's ``{"error": {"code", "message", "field"}}``,
OIP's ``{"error": "…"}`` under ``/v2``. Starlette spools multipart files to a temporary file
above 1 MiB, so an upload within the limit is never held in memory whole.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.api.errors import error_json
from modelplane.api.security import TOKEN_STATE
from modelplane.auth.access import bearer_token
from modelplane.auth.model import Token
from modelplane.bootstrap import Platform
from modelplane.errors import ModelplaneError, PayloadTooLarge, Unauthorized

__all__ = ["DEFAULT_MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "BodyLimit"]

#: Used while no platform is loaded (starting, stopping); ``Settings.max_body_bytes`` otherwise.
DEFAULT_MAX_BODY_BYTES = 16 << 20
#: The artifact upload route's limit (a model file); a setting of its own is proposed.
MAX_UPLOAD_BYTES = 2 << 30

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _TooLarge(Exception):
    """Raised by the counting ``receive``: the body passed the limit; nothing more is read."""


class BodyLimit:
    """Bound every request body; refuse unauthenticated writes under ``prefix`` unread."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str = "/api/v1",
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.max_upload_bytes = max_upload_bytes
        self._upload = re.compile(rf"^{re.escape(self.prefix)}/models/[^/]+/versions/?$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse_size(scope, send, limit)
            return
        if self._is_api_write(scope) and _has_route(scope):
            refusal, token = await self._authenticate(scope)
            if token is not None:  # a state of this request's own: the server's is shared
                scope["state"] = {**scope.get("state", {}), TOKEN_STATE: token}
            if refusal is not None:
                await _send_error(
                    scope,
                    send,
                    refusal.status,
                    refusal.code,
                    refusal.message,
                    refusal.field,
                    _auth_headers(refusal),
                )
                return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        overflow = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, overflow
            if overflow:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:  # the app's answer to the error we raised: the 413 replaces it
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            await _refuse_size(scope, send, limit)

    def _limit(self, scope: Scope) -> int:
        path: str = scope.get("path", "")
        platform = _platform(scope)
        if scope.get("method") == "POST" and self._upload.match(path):
            if platform is None:
                return self.max_upload_bytes
            # A setting of its own once config.py has it (proposed: max_upload_bytes).
            return int(getattr(platform.settings, "max_upload_bytes", self.max_upload_bytes))
        if platform is None:
            return DEFAULT_MAX_BODY_BYTES
        return int(platform.settings.max_body_bytes)

    def _is_api_write(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return scope.get("method") in _WRITES and (
            path == self.prefix or path.startswith(self.prefix + "/")
        )

    async def _authenticate(self, scope: Scope) -> tuple[ModelplaneError | None, Token | None]:
        """The error refusing this write, or the token allowing it (neither when no platform
        is loaded yet: the route answers 503 then, without reading a body it cannot use)."""
        platform = _platform(scope)
        if platform is None:
            return None, None
        presented = _bearer(scope)
        try:
            # A database lookup (one indexed row): off the event loop.
            token = await run_in_threadpool(platform.tokens.authenticate, presented, "write")
        except ModelplaneError as exc:
            return exc, None
        return None, token


def _platform(scope: Scope) -> Platform | None:
    state = getattr(scope.get("app"), "state", None)
    platform: Platform | None = getattr(state, "platform", None)
    return platform


def _has_route(scope: Scope) -> bool:
    """A route takes this method at this path: unknown paths keep their 404 and wrong methods
    their 405 (neither reads the body)."""
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11/httptools) refuses a malformed length itself
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bearer_token(value.decode("latin-1"))
    return None


def _auth_headers(exc: ModelplaneError) -> list[tuple[bytes, bytes]]:
    # The body is left unread: close, or the server would go on receiving (and dropping) it.
    close = [(b"connection", b"close")]
    return [(b"www-authenticate", b"Bearer"), *close] if isinstance(exc, Unauthorized) else close


async def _refuse_size(scope: Scope, send: Send, limit: int) -> None:
    await _send_error(
        scope,
        send,
        413,
        PayloadTooLarge.code,
        f"the request body is larger than this route accepts ({limit} bytes)",
        "body",
        [(b"connection", b"close")],
    )


async def _send_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    field: str | None,
    headers: list[tuple[bytes, bytes]],
) -> None:
    # The route's shape: the API's object, or OIP's string under /v2 (error_json decides).
    body = error_json(scope.get("path", ""), code, message, field)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
