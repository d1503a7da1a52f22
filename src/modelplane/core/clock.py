"""Time: every timestamp modelplane writes is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time modelplane stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
