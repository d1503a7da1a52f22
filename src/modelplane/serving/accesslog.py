"""The access log: one JSON line per request on the ``modelplane.access`` logger.

::

    {"ts":"2025-01-02T03:04:05.678Z","request_id":"…","method":"POST","path":"/predict",
     "model":"fraud","version":3,"status":200,"latency_ms":1.234,"trace_id":null,
     "fallback":false,"cached":false}

:func:`configure_access_log` attaches a handler with :class:`JsonFormatter` (the server does it
at start-up). Until then, or with ``enabled=False``, :func:`log_request` returns after one
level check.

While that handler is the logger's only one (the server's set-up), :func:`log_request` skips
the ``logging`` machinery: it encodes the line itself with orjson and the lines of one event
loop turn go out in one ``write`` at the end of the turn (at once when no loop runs). Measured
with ``benchmarks/serving.py``-style load at one client, that is ~30 µs less per request than a
``LogRecord`` (caller lookup, lock, formatter) and a flushed ``write`` per line. A handler a
user adds to ``modelplane.access`` (or a filter) turns the plain ``logging`` path back on, so
what they configured sees every line. The stream is a console or a pipe to a log collector,
not a slow disk.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
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


class _LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_access_log` installs: a ``StreamHandler`` for records that
    come through ``logging``, and a buffer for :func:`log_request`'s own lines, written once per
    event loop turn."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self._pending: list[bytes] = []
        self._raw: Any = getattr(stream, "buffer", None)

    def add(self, line: bytes) -> None:
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.write_pending)
            except RuntimeError:  # no loop runs here: write now
                self.write_pending()

    def write_pending(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        data = b"".join(lines)
        try:
            if self._raw is not None:
                self.stream.flush()  # what went through logging comes first
                self._raw.write(data)
                self._raw.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()
        except Exception:  # a closed or broken stream: as logging does, never fail the caller
            logging.getLogger(__name__).debug("access log write failed", exc_info=True)


_writer: _LineWriter | None = None


def configure_access_log(stream: IO[str] | None = None, enabled: bool = True) -> logging.Logger:
    """Send access lines to ``stream`` (standard error by default), or turn them off.

    Replaces the handlers set by an earlier call; the lines do not reach the root logger.
    """
    global _writer
    if _writer is not None:
        _writer.write_pending()
    _writer = None
    for handler in list(_logger.handlers):
        _logger.removeHandler(handler)
    _logger.propagate = False
    _logger.disabled = not enabled
    if enabled:
        _writer = _LineWriter(sys.stderr if stream is None else stream)
        _logger.addHandler(_writer)
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
    fields = {
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
    writer = _writer
    if writer is not None and _logger.handlers == [writer] and not _logger.filters:
        ts = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds")
        line = {"ts": ts.replace("+00:00", "Z"), **fields}
        writer.add(orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE))
        return
    _logger.info(fields)
