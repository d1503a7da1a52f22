"""The serving edge: what every prediction, OIP and admin route shares.

``ServingState`` (built in the lifespan), ``RawResponse`` (the hot routes' answer, sent without a
Starlette ``Response``), the request helpers (``_state``, ``_header``, ``_body``,
``_header_unit_id``), ``_error_response`` and ``_observed``, the wrapper every endpoint wears
(span, error translation, metrics, access log, traceparent). The routes live in
``routes_oip.py``, ``routes_predict.py`` and ``routes_admin.py``; the ASGI entry that matches the
hot ones in ``entry.py``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from modelplane.errors import (
    ModelplaneError,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
)
from modelplane.serving import accesslog, oip, tracing
from modelplane.serving.errors import public_message
from modelplane.serving.metrics import ServingMetrics
from modelplane.serving.options import ServeOptions
from modelplane.serving.pool import ModelPool
from modelplane.serving.ports import Authenticator, ViewSource
from modelplane.serving.service import InferenceService
from modelplane.serving.view import ServingView

__all__ = [
    "JSON",
    "AnyResponse",
    "Endpoint",
    "RawResponse",
    "ServingState",
]

# The name it had when all this lived in app.py: the server's log reads as before.
log = logging.getLogger("modelplane.serving.app")
JSON = "application/json"
NO_SPAN = contextlib.nullcontext()  # reusable: the request span while tracing is off


class ServingState:
    """What the routes share; built when the serving runtime starts."""

    def __init__(
        self,
        service: InferenceService,
        metrics: ServingMetrics,
        options: ServeOptions,
        auth: Authenticator,
        *,
        source: ViewSource,
        max_body: int,
    ) -> None:
        self.service = service
        self.view: ServingView = service.view
        self.pool: ModelPool = service.view.pool
        self.metrics = metrics
        self.options = options
        self.source = source
        self.max_body = max_body
        self.auth = auth

    def authorize(self, request: Request, operation: str) -> None:
        """Refuse the request unless its bearer token may call ``operation`` (the
        authenticator's rule of each operation; the gRPC doors use the same check)."""
        if self.auth.scope_for(operation) is not None:
            self.auth.check(operation, _header(request, b"authorization"))


# -- helpers -----------------------------------------------------------------------------------
class RawResponse:
    """A response sent as two raw ASGI messages, without building a Starlette ``Response``.

    The prediction routes' answer: Starlette's ``Response`` (``MutableHeaders``, header
    normalisation) costs ~10 µs per request on the hot path (measured in process). ``headers``
    is a plain dict with lower-case names; ``content-length`` and ``content-type`` are added
    when sent.
    """

    __slots__ = ("body", "headers", "media_type", "status_code")

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str = JSON,
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.headers: dict[str, str] = headers if headers is not None else {}
        self.media_type = media_type

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = [
            (b"content-length", b"%d" % len(self.body)),
            (b"content-type", self.media_type.encode("latin-1")),
        ]
        for name, value in self.headers.items():
            raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


AnyResponse = Response | RawResponse


def _state(request: Request) -> ServingState:
    state: ServingState | None = getattr(request.app.state, "serving", None)
    if state is None:
        raise NotReady("the server is starting or stopping")
    return state


def _header(request: Request, name: bytes) -> str | None:
    """A request header by lower-case name: one dict of the raw headers per request, not a
    scan of Starlette's ``Headers`` per lookup (the first of a repeated name wins, as there)."""
    scope = request.scope
    found: dict[bytes, bytes] | None = scope.get("modelplane.headers")
    if found is None:
        found = scope["modelplane.headers"] = dict(reversed(scope["headers"]))
    value = found.get(name)
    return None if value is None else value.decode("latin-1")


async def _body(request: Request, limit: int) -> bytes:
    declared = _header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", field="body")
    # Straight from ``receive`` (not ``request.stream()``): a body is one message, usually.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", field="body")
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


def _error_response(exc: ModelplaneError, *, oip_shape: bool) -> RawResponse:
    """OIP routes answer ``{"error": "…"}``; the others the registry's ``{"error": {code, …}}``.
    A shed request (bulkhead full) says when to retry; a 401 says how to authenticate. The
    message is what a client may read (:func:`~modelplane.serving.errors.public_message`)."""
    message = public_message(exc)
    body = (
        oip.encode_error(message)
        if oip_shape
        else orjson.dumps({"error": {"code": exc.code, "message": message, "field": exc.field}})
    )
    headers: dict[str, str] | None = None
    if isinstance(exc, Overloaded):
        headers = {"retry-after": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, Unauthorized):
        headers = {"www-authenticate": "Bearer"}
    return RawResponse(body, exc.status, headers=headers)


Endpoint = Callable[[Request], Awaitable[AnyResponse]]


def _observed(
    route: str, *, oip_errors: bool = True
) -> Callable[[Callable[[Request, ServingState], Awaitable[AnyResponse]]], Endpoint]:
    """Wrap an endpoint: span, error translation, metrics, access log, traceparent."""

    def wrap(fn: Callable[[Request, ServingState], Awaitable[AnyResponse]]) -> Endpoint:
        async def endpoint(request: Request) -> AnyResponse:
            response: AnyResponse
            started = time.perf_counter()
            state: ServingState | None = None
            model = request.path_params.get("name", "")
            spanned = tracing.enabled()  # off, Starlette's Headers need not be built
            with tracing.start_request_span(request.headers, route) if spanned else NO_SPAN:
                try:
                    state = _state(request)
                    state.metrics.request_started()
                    try:
                        # Every route's rule, checked before anything reads the body.
                        state.authorize(request, route)
                        response = await fn(request, state)
                    finally:
                        state.metrics.request_finished()
                except ModelplaneError as exc:
                    if exc.status == 500:
                        log.error("%s on %s: %s", type(exc).__name__, request.url.path,
                                  exc.message, exc_info=exc)  # fmt: skip
                    response = _error_response(exc, oip_shape=oip_errors)
                except Exception:
                    log.exception("unexpected error on %s", request.url.path)
                    err = ModelplaneError("internal error; see the server log")
                    response = _error_response(err, oip_shape=oip_errors)
                # Off, there is no span of ours to read (~4 µs of OTel context lookups saved).
                parent = tracing.traceparent_of_current() if spanned else None
            if parent:
                response.headers["traceparent"] = parent
            elapsed = time.perf_counter() - started
            version = response.headers.get("x-model-version", "")
            model = response.headers.get("x-model-name") or model
            if state is not None:
                state.metrics.observe_request(model, version, route, response.status_code, elapsed)
                if state.options.access_log:
                    accesslog.log_request(
                        request_id=response.headers.get("x-request-id", ""),
                        method=request.method,
                        path=request.scope["path"],  # not request.url: ~10 µs to build
                        model=model,
                        version=version,
                        status=response.status_code,
                        latency_ms=elapsed * 1000,
                        trace_id=parent.split("-")[1] if parent else None,
                    )
            return response

        return endpoint

    return wrap


def _header_unit_id(request: Request) -> str | None:
    value = _header(request, b"x-unit-id")
    if value is None:
        return None
    return value.strip() or None
