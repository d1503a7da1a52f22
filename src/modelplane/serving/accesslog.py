"""The access log: one JSON line per request on the ``modelplane.access`` logger.

::

    {"ts":"2025-01-02T03:04:05.678Z","request_id":"…","method":"POST","path":"/predict",
     "model":"fraud","version":3,"status":200,"latency_ms":1.234,"trace_id":null,
     "fallback":false,"cached":false}

:func:`configure_access_log` attaches a handler with :class:`JsonFormatter` (the server does it
at start-up). Until then, or with ``enabled=False``, :func:`log_request` returns after one
level check. The line is written by a ``StreamHandler`` on the request path: a console or a
pipe to a log collector, not a slow disk.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_access_log", "log_request"]

ACCESS_LOGGER = "modelplane.access"
_logger = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``ts`` (UTC, ms) first, then the fields of a dict message.

    A record whose message is not a dict becomes ``{"ts", "level", "logger", "message"}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {"ts": ts.replace("+00:00", "Z")}
        if isinstance(record.msg, dict):
            line.update(record.msg)
        else:
            line.update(level=record.levelname, logger=record.name, message=record.getMessage())
            if record.exc_info:
                line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_access_log(stream: IO[str] | None = None, enabled: bool = True) -> logging.Logger:
    """Send access lines to ``stream`` (standard error by default), or turn them off.

    Replaces the handlers set by an earlier call; the lines do not reach the root logger.
    """
    for handler in list(_logger.handlers):
        _logger.removeHandler(handler)
    _logger.propagate = False
    _logger.disabled = not enabled
    if enabled:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
        handler.setFormatter(JsonFormatter())
        _logger.addHandler(handler)
        _logger.setLevel(logging.INFO)
    return _logger


def log_request(
    *,
    request_id: str,
    method: str,
    path: str,
    model: str | None,
    version: int | str | None,
    status: int,
    latency_ms: float,
    trace_id: str | None = None,
    fallback: bool = False,
    cached: bool = False,
) -> None:
    """Write the request's access line (nothing when the access log is off)."""
    if not _logger.isEnabledFor(logging.INFO):
        return
    _logger.info(
        {
            "request_id": request_id,
            "method": method,
            "path": path,
            "model": model,
            "version": version,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "trace_id": trace_id,
            "fallback": fallback,
            "cached": cached,
        }
    )
