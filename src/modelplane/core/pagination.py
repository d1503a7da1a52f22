"""Keyset pagination: a page of items and an opaque cursor to the next one.

A cursor is URL-safe base64 of a small JSON object holding the last key seen. It is opaque to
clients; a cursor that does not decode is a malformed request, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from modelplane.errors import MalformedRequest

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "check_limit",
    "cursor_int",
    "decode_cursor",
    "encode_cursor",
]

T = TypeVar("T")
MAX_PAGE_SIZE = 1000


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *keys: str) -> dict[str, Any] | None:
    """Decode ``cursor``; it must hold every one of ``keys``."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedRequest("cursor is not one this server issued", field="cursor") from None
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise MalformedRequest("cursor is not one this server issued", field="cursor")
    return data


def cursor_int(after: dict[str, Any], key: str) -> int:
    """The integer ``key`` of a decoded cursor; a tampered one is a malformed request."""
    value = after.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise MalformedRequest("cursor is not one this server issued", field="cursor")
    return value


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        from modelplane.errors import InvalidInput

        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit
