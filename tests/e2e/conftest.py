"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelplane.cli.main import app
from tests.e2e.cli_helpers import Cli


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # Tables go to a pipe here; some runners (pytest-xdist) set COLUMNS=80, which wraps cells.
    monkeypatch.delenv("COLUMNS", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["--home", str(home), *args])

    return invoke
