"""What the CLI tests share: the checks of a result (succeeded, its JSON, its one ``error:``
line). The ``cli`` fixture itself (the app in process on a test's home) is in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

__all__ = ["Cli", "as_json", "ok", "one_line_error"]

Cli = Callable[..., Result]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def one_line_error(result: Result, exit_code: int = 2) -> str:
    """The single ``error: …`` line a failed command printed (and nothing on stdout)."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]
