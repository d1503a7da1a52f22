"""The tests' clocks: time stands still unless a test moves it (``clock.now += …``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock", "WallClock"]


class FakeClock:
    """A monotonic clock in seconds (what ``time.monotonic`` stands for)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """An aware UTC clock (what the units of work and delivery read); in the past by default,
    so a real clock never runs behind it."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def tick(self, seconds: float = 1.0) -> datetime:
        self.advance(seconds)
        return self.now
