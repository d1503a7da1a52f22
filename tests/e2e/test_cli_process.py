"""The ``modelplane`` CLI as real processes: exit codes, exactly one line on stderr, fast import.

These run ``python -m modelplane.cli.main`` (and the installed console script) in a subprocess,
so what is checked is what a shell script sees: no traceback, nothing half-printed.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def modelplane(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelplane.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], exit_code: int = 2) -> str:
    assert proc.returncode == exit_code, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ")
    return proc.stderr.rstrip("\n")


class TestExitCodes:
    def test_unknown_model_exits_2_with_exactly_one_line(self, home: Path) -> None:
        proc = modelplane(home, "models", "show", "nope")
        assert assert_one_line_error(proc) == "error: model 'nope' does not exist"

    def test_usage_error_exits_2_with_exactly_one_line(self, home: Path) -> None:
        line = assert_one_line_error(modelplane(home, "models", "version", "fraud"))
        assert "Missing argument" in line

    def test_bad_metric_exits_2_with_exactly_one_line(self, home: Path, tmp_path: Path) -> None:
        path = tmp_path / "model.skops"
        path.write_bytes(b"PK\x03\x04")
        proc = modelplane(home, "models", "register", "fraud", str(path), "--metric", "auc")
        assert "--metric" in assert_one_line_error(proc)

    def test_pickle_without_trust_exits_2_and_leaves_nothing(
        self, home: Path, tmp_path: Path
    ) -> None:
        from sklearn.dummy import DummyClassifier

        path = tmp_path / "model.pkl"
        model = DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
        path.write_bytes(pickle.dumps(model))
        assert "pickle" in assert_one_line_error(
            modelplane(home, "models", "register", "fraud", str(path))
        )
        listed = modelplane(home, "events", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["events"] == []

    def test_success_exits_0_with_json_on_stdout(self, home: Path) -> None:
        proc = modelplane(home, "models", "list", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"models": [], "next_cursor": None}
        assert proc.stderr == ""


class TestEntryPoint:
    def test_console_script_prints_the_version(self) -> None:
        script = Path(sys.executable).parent / "modelplane"
        if not script.exists():
            pytest.skip("the console script is not installed next to this interpreter")
        proc = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("modelplane ")

    def test_importing_the_cli_imports_no_engine_database_or_rich(self) -> None:
        heavy = ("sklearn", "torch", "skops", "numpy", "pandas", "sqlalchemy", "alembic", "rich")
        code = (
            "import sys, modelplane.cli.main; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert proc.stdout.strip() == "[]"
