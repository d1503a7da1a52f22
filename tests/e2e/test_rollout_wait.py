"""``rollout start --wait`` beside a server whose controller decides: every step is shown.

A ``modelplane serve`` replica runs the same canary controller once a second; when it decides a
step before the CLI does, the CLI must still print that decision (with its evidence under
``--json``), once, in order. The replica's controller is called directly between two polls of
the CLI (the CLI's wait between evaluations is replaced by the test), so which controller decides
which step is fixed by the test, never by a race.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from modelplane.cli import rollout as rollout_cli
from modelplane.cli.main import app
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.traffic.commands import RecordTrafficCounters
from modelplane.traffic.controller import RolloutController, StepDecision
from modelplane.traffic.live import LiveStats
from modelplane.traffic.model import rollout_subject

RNG = np.random.default_rng(7)
FRAME = pd.DataFrame(RNG.normal(size=(100, 3)), columns=["amount", "hour", "km"])
LABEL = (FRAME["amount"] > 0).astype(int)
DECISIONS = ("CanaryStepAdvanced", "CanaryPromoted", "CanaryRolledBack", "CanaryAborted")


@pytest.fixture
def mp(home: Path) -> Iterator[Client]:
    """fraud v1 (champion) and v2, gated: the candidate of every rollout here."""
    client = Client(Settings(home=home))
    model = LogisticRegression().fit(FRAME, LABEL)
    client.log_model(model, name="fraud", input_example=FRAME, alias="champion")
    client.log_model(model, name="fraud", input_example=FRAME)
    client.record_gate_result("fraud", 2, passed=True, checks={"signature": True})
    yield client
    client.close()


def traffic(client: Client, step: int, *, errors: int = 0) -> None:
    """100 candidate and 100 baseline requests of rollout 1's ``step``, as a replica adds them."""
    live = LiveStats()
    for i in range(100):
        live.request(rollout_subject(1, step), "candidate", 5.0, ok=i >= errors)
        live.request(rollout_subject(1, step), "baseline", 5.0, ok=True)
    client.platform.bus.handle(RecordTrafficCounters(live.drain()))


class Replica:
    """A serving replica's controller, run once each time the CLI waits between two polls.

    ``before_tick`` (the step's traffic arriving, say) runs first; what the replica decided is
    kept to compare with what the CLI printed.
    """

    def __init__(self, client: Client, before_tick: Callable[[int], None]) -> None:
        self.controller = RolloutController(client.platform.bus, client.platform.traffic)
        self.before_tick = before_tick
        self.decided: list[StepDecision] = []
        self.polls = 0

    def wait(self, seconds: float) -> None:
        self.polls += 1
        assert self.polls < 20, "the CLI kept waiting on a rollout that had ended"
        self.before_tick(self.polls)
        self.decided += [d for d in self.controller.tick() if d.action != "hold"]


def start_wait(home: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        app,
        [
            "--home",
            str(home),
            "rollout",
            "start",
            "fraud",
            "--candidate",
            "2",
            "--steps",
            "25,50,100",
            "--step-duration",
            "0",
            "--min-requests",
            "50",
            "--wait",
            "--interval",
            "1h",  # never slept: the replica's tick runs instead
            *extra,
        ],
    )


def recorded(client: Client) -> list[dict[str, Any]]:
    events = client.list_events(aggregate_type="rollout", limit=1000).items
    return [e.payload | {"type": e.type} for e in events if e.type in DECISIONS]


@pytest.fixture
def replica(mp: Client, monkeypatch: pytest.MonkeyPatch) -> Replica:
    """The CLI decides step 1 itself (its traffic is there before it starts); steps 2 and 3
    get their traffic while the CLI waits, and the replica decides them first."""
    traffic(mp, 0)
    replica = Replica(mp, lambda poll: traffic(mp, poll))
    monkeypatch.setattr(rollout_cli, "_sleep", replica.wait)
    return replica


class TestWaitShowsEveryDecision:
    def test_steps_decided_by_a_replica_are_printed_once_in_order(
        self, home: Path, mp: Client, replica: Replica
    ) -> None:
        result = start_wait(home)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        assert [(d.step, d.action) for d in replica.decided] == [(1, "advance"), (2, "promote")]
        moves = [line for line in result.stdout.splitlines() if ": hold — " not in line]
        assert moves[0].startswith("started fraud#1")
        assert moves[1].startswith("step 1 (25 %): advance — healthy")  # the CLI's own
        assert moves[2:4] == [d.line() for d in replica.decided]  # the replica's, verbatim
        assert moves[4].startswith("fraud#1: promoted")
        assert len(moves) == 5
        assert mp.get_model("fraud").aliases["champion"] == 2

    def test_json_lists_every_decision_with_its_evidence(
        self, home: Path, mp: Client, replica: Replica
    ) -> None:
        result = start_wait(home, "--json")
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        out = json.loads(result.stdout)
        assert out["rollout"]["status"] == "promoted"
        moves = [d for d in out["decisions"] if d["action"] != "hold"]
        assert [(d["step"], d["weight"], d["action"]) for d in moves] == [
            (0, 25, "advance"),
            (1, 50, "advance"),
            (2, 100, "promote"),
        ]
        events = recorded(mp)
        assert [d["evidence"] for d in moves] == [e["evidence"] for e in events]
        assert [d["reason"] for d in moves] == [e["reason"] for e in events]
        assert [d["evidence"] for d in moves[1:]] == [d.evidence for d in replica.decided]
        assert moves[0]["evidence"]["candidate"]["requests"] == 100

    def test_a_rollback_by_the_replica_is_shown_and_exits_1(
        self, home: Path, mp: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        traffic(mp, 0)
        replica = Replica(mp, lambda poll: traffic(mp, poll, errors=40))
        monkeypatch.setattr(rollout_cli, "_sleep", replica.wait)
        result = start_wait(home)
        assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
        assert [d.action for d in replica.decided] == ["rollback"]
        lines = result.stdout.splitlines()
        assert lines.count(replica.decided[0].line()) == 1
        assert lines[-1].startswith("fraud#1: rolled back — error rate")
        assert mp.get_model("fraud").aliases["champion"] == 1

    def test_an_abort_elsewhere_ends_the_wait_and_is_shown(
        self, home: Path, mp: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def abort(seconds: float) -> None:
            mp.abort_rollout("fraud", "ops said no")

        monkeypatch.setattr(rollout_cli, "_sleep", abort)
        result = start_wait(home)  # no traffic: the CLI holds, then sees the abort
        assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
        lines = result.stdout.splitlines()
        assert "step 1 (25 %): abort — ops said no" in lines
        assert lines[-1] == "fraud#1: aborted — ops said no"


class TestRunShowsOnlyNewDecisions:
    def test_run_does_not_repeat_what_was_decided_before_it(
        self, home: Path, mp: Client, replica: Replica
    ) -> None:
        started = CliRunner().invoke(
            app,
            ["--home", str(home), "rollout", "start", "fraud", "--candidate", "2", "--steps",
             "25,50,100", "--step-duration", "0", "--min-requests", "50"],
        )  # fmt: skip
        assert started.exit_code == 0, started.stdout
        replica.wait(0)  # step 1's traffic is there: the replica advances before `run` starts
        result = CliRunner().invoke(app, ["--home", str(home), "rollout", "run", "fraud"])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        moves = [line for line in result.stdout.splitlines() if ": hold — " not in line]
        assert not any(line.startswith("step 1 ") for line in moves)
        assert [m.split(":")[0] for m in moves] == ["step 2 (50 %)", "step 3 (100 %)", "fraud#1"]
