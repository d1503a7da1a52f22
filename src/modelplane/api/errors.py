"""Every error the API returns has one shape: ``{"error": {"code", "message", "field"}}``.

Handlers are keyed by exception class (Starlette's way), so domain code never imports HTTP:

* :class:`~modelplane.errors.ModelplaneError` → its own ``status``/``code``/``field``
  (401 also carries ``WWW-Authenticate: Bearer``);
* FastAPI's ``RequestValidationError`` → 422 ``invalid_input`` naming the field
  (``body.version``, ``query.limit``), or 400 ``malformed_request`` when the body is not JSON;
* Starlette's ``HTTPException`` (unknown route 404, wrong method 405…) → same shape, headers
  kept (``Allow``);
* anything else → 500 ``internal``, logged with its traceback, its text never shown.

Under ``/v2`` (the Open Inference Protocol) the body is ``{"error": "<message>"}`` instead, as
the protocol says (Triton's client breaks on an object) — unknown paths and methods included.

What a client reads never carries the server's own details (:func:`public_message`, with
``redact_paths``, ``is_oip_path`` and ``error_json``, lives in ``serving/errors.py``, below both
this API and the serving edges, and is re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from modelplane.api.schemas import ErrorResponse
from modelplane.errors import InvalidInput, MalformedRequest, ModelplaneError, Unauthorized
from modelplane.serving.errors import error_json, is_oip_path, public_message, redact_paths

__all__ = [
    "add_error_handlers",
    "error_docs",
    "error_json",
    "error_response",
    "field_of",
    "invalid_input_from",
    "is_oip_path",
    "public_message",
    "redact_paths",
]

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "Malformed request (body not JSON, cursor not issued by this server)",
    401: "Missing, invalid or revoked bearer token",
    403: "The token's scope does not allow this",
    404: "No such model, version, alias or route",
    409: "Conflict with the current state (e.g. archiving a version an alias points at)",
    422: "Invalid input (a bad name, a value out of range…)",
}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries: these statuses return :class:`ErrorResponse`."""
    return {
        s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, HTTPStatus(s).phrase)}
        for s in statuses
    }


def _oip_route(request: Request) -> bool:
    return is_oip_path(request.scope.get("path", ""))


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    oip: bool = False,
) -> Response:
    """The error body: ``{"error": {code, message, field}}``, or OIP's ``{"error": message}``."""
    body: dict[str, Any] = (
        {"error": message} if oip else {"error": {"code": code, "message": message, "field": field}}
    )
    return JSONResponse(body, status_code=status, headers=headers)


def field_of(loc: Sequence[int | str]) -> str | None:
    """``("body", "tags", "a")`` → ``"body.tags.a"``; list indices as ``[i]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or None


def _first_error(errors: Sequence[Any]) -> tuple[str, str | None, str]:
    """``(message, field, type)`` of the first error pydantic reported."""
    if not errors:
        return "invalid request", None, ""
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    where = field_of(loc)
    message = str(first.get("msg", "invalid value"))
    if where:
        message = f"{where}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return message, where, str(first.get("type", ""))


def invalid_input_from(exc: ValidationError, *, prefix: str) -> InvalidInput:
    """A pydantic error on a part of the request (``prefix``: ``metadata``…) as InvalidInput."""
    errors = [{**e, "loc": (prefix, *e.get("loc", ()))} for e in exc.errors(include_url=False)]
    message, where, _ = _first_error(errors)
    return InvalidInput(message, field=where)


async def _modelplane_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelplaneError)
    if exc.status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return error_response(
        exc.status, exc.code, public_message(exc), exc.field, headers, oip=_oip_route(request)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message, where, kind = _first_error(errors)
    first = errors[0] if errors else {}
    unparsed = tuple(first.get("loc", ())) == ("body",) and isinstance(first.get("input"), bytes)
    if kind == "json_invalid" or unparsed:
        # Not JSON at all (or sent without a JSON content type): malformed, not invalid.
        if kind == "json_invalid":
            detail = first.get("ctx", {}).get("error", "")
            text = "the request body is not valid JSON" + (f": {detail}" if detail else "")
        else:
            text = "the request body must be a JSON object sent as application/json"
        return error_response(400, MalformedRequest.code, redact_paths(text), "body",
                              oip=_oip_route(request))  # fmt: skip
    return error_response(
        422, InvalidInput.code, redact_paths(message), where, oip=_oip_route(request)
    )


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    routes = getattr(getattr(request.app, "router", None), "routes", ())
    return ", ".join(
        m
        for m in _METHODS
        if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405 and (methods := _allowed(request)):
        exc = StarletteHTTPException(
            405, exc.detail, headers={**(exc.headers or {}), "Allow": methods}
        )
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = {400: MalformedRequest.code, 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, phrase.lower().replace(" ", "_").replace("-", "_")
    )
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if exc.status_code == 404 and message == phrase:
        message = "no such route"
    elif exc.status_code == 405 and message == phrase:
        message = f"method {request.method} is not allowed here"
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        if allowed:
            message += f" (allowed: {allowed})"
    headers = dict(exc.headers or {}) or None
    return error_response(
        exc.status_code, code, redact_paths(message), None, headers, oip=_oip_route(request)
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error_response(
        500, ModelplaneError.code, "internal server error", oip=_oip_route(request)
    )


def add_error_handlers(app: FastAPI) -> None:
    """Install the JSON error handlers on ``app`` (the serving app adds them to its own too)."""
    app.add_exception_handler(ModelplaneError, _modelplane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
