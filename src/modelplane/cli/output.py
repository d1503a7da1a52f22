"""Output: Rich tables for people, JSON for scripts, progress only on a terminal.

Data goes to stdout; notes, warnings and errors go to stderr, so ``--json`` output always parses
and ``$(modelplane tokens create …)`` captures only the token. Rich is imported on first use.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "error_line",
    "fmt_mapping",
    "fmt_metrics",
    "fmt_time",
    "note",
    "print_fields",
    "print_json",
    "print_table",
    "progress",
    "say",
]


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """A line for people on stdout (the result of a command that prints no data)."""
    sys.stdout.write(message + "\n")


def note(message: str) -> None:
    """A line for people on stderr: a hint or a warning that must not mix with the data."""
    sys.stderr.write(message + "\n")


def error_line(message: str) -> str:
    """``error: …`` on exactly one line, whatever the message holds."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"error: {text or 'unknown error'}"


#: Width of tables written to a pipe or file (Rich would assume 80 columns and wrap every cell).
PIPE_WIDTH = 200


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH if piped else None)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wrap: Collection[str] = (),
    next_cursor: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """A Rich table on stdout; a hint with the next cursor (on stderr) when there is more.

    Only the ``wrap`` columns (free text: tags, metrics…) wrap when the terminal is narrow;
    the others (names, numbers, times, digests) stay on one line.
    """
    from rich.table import Table
    from rich.text import Text

    materialised = [list(r) for r in rows]
    if not materialised:
        note(empty)
        return
    table = Table(header_style="bold")
    for column in columns:
        if column in wrap:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, no_wrap=True)
    for row in materialised:
        table.add_row(*(Text(cell) for cell in row))  # data is never markup
    _console().print(table)
    if next_cursor:
        note(f"more: --cursor {next_cursor}")


def print_fields(fields: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """``key  value`` lines for one object (plain text: easy to read, to grep, to copy)."""
    width = max((len(key) for key, _ in fields), default=0)
    lines = [title] if title else []
    lines.extend(f"{key:<{width}}  {value}" for key, value in fields)
    sys.stdout.write("\n".join(lines) + "\n")


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    with _console(stderr=True).status(message):
        yield


def fmt_time(moment: datetime) -> str:
    """UTC, to the second: ``2025-01-31 14:02:07``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_mapping(values: Mapping[str, Any], sep: str = "=") -> str:
    return ", ".join(f"{k}{sep}{v}" for k, v in sorted(values.items()))


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
