"""``modelplane gate``: checks run, the result is recorded on the version, failures exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from modelplane.cli.main import app
from modelplane.client import Client
from modelplane.config import Settings

RNG = np.random.default_rng(5)
FRAME = pd.DataFrame(RNG.normal(size=(400, 3)), columns=["amount", "hour", "km"])
LABEL = (FRAME["amount"] + FRAME["km"] > 0).astype(int)


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--home", str(home), *args])


@pytest.fixture
def holdout(tmp_path: Path) -> Path:
    path = tmp_path / "holdout.csv"
    FRAME.assign(is_fraud=LABEL).to_csv(path, index=False)
    return path


@pytest.fixture
def registered(home: Path) -> Client:
    client = Client(Settings(home=home))
    good = LogisticRegression().fit(FRAME, LABEL)
    client.log_model(good, name="fraud", input_example=FRAME, alias="champion")
    client.log_model(good, name="fraud", input_example=FRAME)  # v2: as good
    client.log_model(
        LogisticRegression().fit(FRAME, 1 - LABEL), name="fraud", input_example=FRAME
    )  # v3: inverted, much worse
    return client


def test_a_good_version_passes_and_the_result_is_recorded(
    home: Path, holdout: Path, registered: Client
) -> None:
    result = run(
        home,
        "gate",
        "fraud/2",
        "--holdout",
        str(holdout),
        "--label",
        "is_fraud",
        "--margin",
        "0.01",
        "--latency-budget-ms",
        "10000",
        "--json",
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["passed"] is True
    assert registered.get_version("fraud", 2).tags["modelplane.gate"] == "passed"


def test_a_worse_version_fails_exits_1_and_is_recorded_failed(
    home: Path, holdout: Path, registered: Client
) -> None:
    result = run(
        home,
        "gate",
        "fraud/3",
        "--holdout",
        str(holdout),
        "--label",
        "is_fraud",
        "--margin",
        "0.01",
    )
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: gates failed for fraud/3: holdout")
    assert registered.get_version("fraud", 3).tags["modelplane.gate"] == "failed"


def test_force_lets_a_failed_version_through_and_says_so(
    home: Path, holdout: Path, registered: Client
) -> None:
    result = run(
        home, "gate", "fraud/3", "--holdout", str(holdout), "--label", "is_fraud", "--force"
    )
    assert result.exit_code == 0
    assert registered.get_version("fraud", 3).tags["modelplane.gate"] == "forced"
    events = registered.list_events(type="GateEvaluated").items
    assert events[-1].payload["forced"] is True


def test_saved_settings_are_used_by_later_runs(
    home: Path, holdout: Path, registered: Client
) -> None:
    first = run(home, "gate", "fraud/2", "--holdout", str(holdout), "--label", "is_fraud", "--save")
    assert first.exit_code == 0, first.stderr
    again = run(home, "gate", "fraud/3")
    assert again.exit_code == 1  # the saved holdout check ran and failed


def test_a_saved_relative_holdout_works_from_any_folder(
    home: Path, holdout: Path, registered: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(holdout.parent)
    first = run(home, "gate", "fraud/2", "--holdout", holdout.name, "--label", "is_fraud", "--save")
    assert first.exit_code == 0, first.stderr
    saved = json.loads(registered.get_model("fraud").tags["gate.config"])
    assert saved["holdout"] == str(holdout.absolute())
    monkeypatch.chdir(home)
    again = run(home, "gate", "fraud/2")
    assert again.exit_code == 0, again.stdout + again.stderr


def test_unknown_version_exits_2_with_one_line(home: Path, registered: Client) -> None:
    result = run(home, "gate", "fraud/9")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
