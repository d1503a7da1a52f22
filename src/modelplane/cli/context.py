"""What every command shares: the global options, the client built from them, option parsing.

The client is built on first use (``state(ctx).client()``), so ``--help`` and ``version`` never
touch the database, and closed when the command ends. ``--home`` and ``--json`` are accepted
globally (``modelplane --json models list``) and ``--json`` on each command too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelplane.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from modelplane.client import Client
    from modelplane.config import Settings

__all__ = [
    "CursorOpt",
    "JsonOpt",
    "LimitOpt",
    "State",
    "TagOpt",
    "parse_metrics",
    "parse_pairs",
    "state",
]

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout (for scripts).")
]
LimitOpt = Annotated[int, typer.Option("--limit", help="Page size (1-1000).")]
CursorOpt = Annotated[
    str | None, typer.Option("--cursor", help="Continue from the cursor a previous page printed.")
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Tag filter (repeatable).")
]


@dataclass
class State:
    """The global options of one invocation and the client built from them."""

    home: Path | None = None
    json: bool = False
    _client: Client | None = field(default=None, repr=False)

    def wants_json(self, flag: bool) -> bool:
        return flag or self.json

    def settings(self) -> Settings:
        """``Settings`` from the environment and modelplane.toml, ``--home`` over them."""
        from pydantic import ValidationError

        from modelplane.config import Settings

        overrides: dict[str, Any] = {} if self.home is None else {"home": self.home}
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "settings"
            raise InvalidInput(f"invalid configuration: {where}: {first['msg']}") from None
        except FileNotFoundError as exc:
            raise InvalidInput(f"invalid configuration: {exc}") from None

    def client(self) -> Client:
        if self._client is None:
            from sqlalchemy.exc import DBAPIError

            from modelplane.client import Client

            settings = self.settings()
            try:
                self._client = Client(settings)
            except DBAPIError as exc:
                raise Unavailable(
                    f"cannot use the metadata database: {_first_line(str(exc.orig))}"
                ) from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    """The :class:`State` the root callback stored (a default one if run without it)."""
    found = ctx.find_object(State)
    if found is None:
        found = ctx.ensure_object(State)
        ctx.call_on_close(found.close)
    return found


def parse_pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["k=v", …]`` → ``{"k": "v"}``; anything without ``=`` or with an empty key is bad input."""
    pairs: dict[str, str] = {}
    for text in values or ():
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"invalid {option} {text!r}: expected KEY=VALUE", field=option)
        pairs[key.strip()] = value
    return pairs


def parse_metrics(values: Sequence[str] | None, option: str = "--metric") -> dict[str, float]:
    """``["auc=0.93", …]`` → ``{"auc": 0.93}``; each value must be a finite number."""
    metrics: dict[str, float] = {}
    for key, raw in parse_pairs(values, option).items():
        try:
            number = float(raw)
        except ValueError:
            raise InvalidInput(
                f"invalid {option} {key}={raw!r}: the value must be a number", field=option
            ) from None
        if not math.isfinite(number):
            raise InvalidInput(
                f"invalid {option} {key}={raw!r}: the value must be a finite number", field=option
            )
        metrics[key] = number
    return metrics


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text
