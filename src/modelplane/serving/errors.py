"""What a client may read of an error, for every HTTP and gRPC door (framework-free).

Lives below both the registry API (``api/errors.py`` re-exports it) and the serving edges, so
the two translate errors alike without serving importing the API.

What a client reads never carries the server's own details (:func:`public_message`): a 500 says
its stable code and a fixed message (the detail is logged with the exception), and an absolute
filesystem path in any other message is cut to its file name.
"""

from __future__ import annotations

import re

import orjson

from modelplane.errors import ModelplaneError

__all__ = ["error_json", "is_oip_path", "public_message", "redact_paths"]

# An absolute path: a "/" that starts a word (not inside a URL or a relative path) and the
# characters up to a space, quote, bracket or separator; also ``file://`` URLs.
_FILE_URL = re.compile(r"file://[^\s'\"`,;()\[\]{}<>|]*")
_ABS_PATH = re.compile(r"(?<![\w:/.~\\-])/[^\s'\"`,;:()\[\]{}<>|]*/[^\s'\"`,;:()\[\]{}<>|]*")


def _file_name(match: re.Match[str]) -> str:
    text = match.group(0).removeprefix("file://").rstrip("/")
    return text.rsplit("/", 1)[-1] or "/"


def redact_paths(message: str) -> str:
    """``message`` with every absolute filesystem path cut to its file name.

    Runtimes and stores name the files they fail on; a client must not learn where the server
    keeps them (``/srv/mp/home/artifacts/…/model.skops`` → ``model.skops``).
    """
    if "/" not in message:
        return message
    return _ABS_PATH.sub(_file_name, _FILE_URL.sub(_file_name, message))


def public_message(exc: ModelplaneError) -> str:
    """What a client may read of ``exc``: a 500's fixed text, any other message redacted.

    The 500s (a failing model, a broken artifact, a bug) say their stable code and nothing of
    the cause; the caller of :func:`public_message` logs the exception itself.
    """
    if exc.status == 500:
        return f"internal error ({exc.code}); the detail is in the server log"
    return redact_paths(exc.message)


def is_oip_path(path: str) -> bool:
    """Whether ``path`` is under ``/v2``, where errors have the Open Inference Protocol's shape."""
    return path == "/v2" or path.startswith("/v2/")


def error_json(path: str, code: str, message: str, field: str | None = None) -> bytes:
    """The error body for a request to ``path``, for senders of raw ASGI messages (middleware):
    ``{"error": message}`` under ``/v2``, ``{"error": {code, message, field}}`` elsewhere."""
    if is_oip_path(path):
        return orjson.dumps({"error": message})
    return orjson.dumps({"error": {"code": code, "message": message, "field": field}})
