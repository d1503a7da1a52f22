"""Safe delivery from the CLI, in process: experiments, canary rollouts, blue-green deploys.

Live traffic is simulated the way serving replicas record it: :class:`LiveStats` deltas added to
the shared counters (``RecordTrafficCounters``) and ``POST /feedback`` rows (``RecordFeedback``).
Every bad command must exit 2 (1 for failed gates) with one line and change nothing: no row, no
event, the aliases as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import Result

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.traffic.commands import RecordFeedback, RecordTrafficCounters
from modelplane.traffic.live import LiveStats
from modelplane.traffic.model import rollout_subject
from tests.e2e.cli_helpers import Cli, as_json, ok, one_line_error

RNG = np.random.default_rng(11)
FRAME = pd.DataFrame(RNG.normal(size=(200, 3)), columns=["amount", "hour", "km"])
LABEL = (FRAME["amount"] > 0).astype(int)


@pytest.fixture
def mp(home: Path) -> Iterator[Client]:
    """fraud v1 (champion), v2 and v3 (same signature), other v1."""
    client = Client(Settings(home=home))
    model = LogisticRegression().fit(FRAME, LABEL)
    client.log_model(model, name="fraud", input_example=FRAME, alias="champion")
    client.log_model(model, name="fraud", input_example=FRAME)
    client.log_model(model, name="fraud", input_example=FRAME)
    client.log_model(model, name="other", input_example=FRAME)
    yield client
    client.close()


def event_count(client: Client) -> int:
    return len(client.list_events(limit=1000).items)


def champion(client: Client) -> int | None:
    return client.get_model("fraud").aliases.get("champion")


def traffic(
    client: Client,
    subject: str,
    variant: str,
    *,
    requests: int,
    errors: int = 0,
    latency_ms: float = 5.0,
    outcomes: tuple[int, int] | None = None,
) -> None:
    """``requests`` routed requests (``errors`` of them failed) and ``outcomes`` = (n, correct)."""
    live = LiveStats()
    for i in range(requests):
        live.request(subject, variant, latency_ms, ok=i >= errors)
    if outcomes is not None:
        n, correct = outcomes
        for i in range(n):
            live.outcome(subject, variant, 1.0 if i < correct else 0.0)
    client.platform.bus.handle(RecordTrafficCounters(live.drain()))


def gated(client: Client, *versions: int) -> None:
    for v in versions:
        client.record_gate_result("fraud", v, passed=True, checks={"signature": True})


# --------------------------------------------------------------------------- experiments


class TestExperiments:
    def test_create_resolves_aliases_start_list_show(self, cli: Cli, mp: Client) -> None:
        mp.set_alias("fraud", "challenger", 2)
        created = as_json(
            cli(
                "experiments",
                "create",
                "ab",
                "--model",
                "fraud",
                "--variant",
                "a=fraud/1:50",
                "--variant",
                "b=fraud@challenger:50",
                "--mde",
                "0.05",
                "--json",
            )
        )
        assert [(v["name"], v["version"], v["weight"]) for v in created["variants"]] == [
            ("a", 1, 50.0),
            ("b", 2, 50.0),
        ]
        assert created["status"] == "draft"
        assert created["kind"] == "split"
        assert as_json(cli("experiments", "start", "ab", "--json"))["status"] == "running"
        listed = as_json(
            cli("experiments", "list", "--model", "fraud", "--status", "running", "--json")
        )
        assert [e["name"] for e in listed] == ["ab"]
        shown = ok(cli("experiments", "show", "ab")).stdout
        assert "a=fraud/1:50" in shown
        assert "running" in shown
        table = ok(cli("experiments", "list")).stdout
        assert "ab" in table
        assert "fraud" in table
        assert as_json(cli("experiments", "pause", "ab", "--json"))["status"] == "paused"
        assert as_json(cli("experiments", "stop", "ab", "--json"))["status"] == "stopped"

    def test_report_says_no_winner_until_the_minimum_sample(self, cli: Cli, mp: Client) -> None:
        ok(
            cli(
                "experiments",
                "create",
                "ab",
                "--model",
                "fraud",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
                "--mde",
                "0.05",
            )
        )
        ok(cli("experiments", "start", "ab"))
        subject = mp.platform.traffic.get_experiment("ab").subject
        traffic(mp, subject, "a", requests=100, outcomes=(100, 80))
        traffic(mp, subject, "b", requests=100, outcomes=(100, 85))
        report = as_json(cli("experiments", "report", "ab", "--json"))
        assert report["winner"] is None
        assert report["sufficient"] is False
        need = report["min_sample_size"]
        assert need > 100
        assert report["comparisons"][0]["verdict"] == f"insufficient data: n=100 of {need}"
        text = ok(cli("experiments", "report", "ab")).stdout
        assert f"no winner yet: need {need}" in text

        traffic(mp, subject, "a", requests=900, outcomes=(900, 720))
        traffic(mp, subject, "b", requests=900, outcomes=(900, 765))
        report = as_json(cli("experiments", "report", "ab", "--json"))
        comparison = report["comparisons"][0]
        assert comparison["test"] == "two_proportion_ztest"
        assert comparison["difference"] == pytest.approx(0.05)
        assert comparison["p_value"] < 0.05
        assert report["winner"] == "b"
        assert report["srm"]["mismatch"] is False
        assert report["variants"][0]["requests"] == 1000
        text = ok(cli("experiments", "report", "ab")).stdout
        assert "winner: b" in text
        assert "two_proportion_ztest" in text

    def test_report_uses_feedback_rewards_with_welch(self, cli: Cli, mp: Client) -> None:
        ok(
            cli(
                "experiments",
                "create",
                "rw",
                "--model",
                "fraud",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
                "--metric",
                "reward",
                "--mde",
                "1",
            )
        )
        ok(cli("experiments", "start", "rw"))
        exp = mp.platform.traffic.get_experiment("rw")
        handle = mp.platform.bus.handle
        rng = np.random.default_rng(3)
        for i, value in enumerate(rng.normal(10, 2, size=40)):
            handle(
                RecordFeedback(
                    f"a{i}", label=None, reward=float(value), subject=exp.subject, variant="a"
                )
            )
        for i, value in enumerate(rng.normal(12, 2, size=40)):
            handle(
                RecordFeedback(
                    f"b{i}", label=None, reward=float(value), subject=exp.subject, variant="b"
                )
            )
        handle(
            RecordFeedback(
                "elsewhere", label=None, reward=100.0, subject="experiment:zz", variant="a"
            )
        )
        report = as_json(cli("experiments", "report", "rw", "--json"))
        assert [v["outcome_n"] for v in report["variants"]] == [40, 40]
        assert report["comparisons"][0]["test"] == "welch_ttest"
        assert report["variants"][0]["ci"]["method"] == "t"

    def test_report_joins_unattributed_labels_with_the_prediction_log(
        self, cli: Cli, mp: Client
    ) -> None:
        from datetime import UTC, datetime

        from modelplane.predlog import PredictionLog, PredictionRecord

        ok(cli("experiments", "create", "ab", "--model", "fraud", "--variant", "a=1:50",
               "--variant", "b=2:50"))  # fmt: skip
        log = PredictionLog(mp.platform.settings.resolved_prediction_log)
        handle = mp.platform.bus.handle
        now = datetime.now(UTC)
        # (request id, experiment, variant, prediction, label): labels posted to a replica that
        # did not serve the request, so the feedback rows carry no subject
        rows = [
            ("r1", "ab", "a", 1, 1.0),
            ("r2", "ab", "a", 0, 1.0),
            ("r3", "ab", "b", 1, 1.0),
            ("r4", "other", "b", 1, 1.0),  # routed by another experiment: not counted
        ]
        for request_id, experiment, variant, prediction, label in rows:
            log.log(
                PredictionRecord(
                    request_id=request_id,
                    time=now,
                    model="fraud",
                    version=1 if variant == "a" else 2,
                    inputs={"amount": np.array([1.0])},
                    outputs={"predict": np.array([prediction])},
                    latency_ms=1.0,
                    unit_id=None,
                    experiment=experiment,
                    variant=variant,
                )
            )
            handle(RecordFeedback(request_id, label=label, reward=None, subject=None, variant=None))
        log.close()
        report = as_json(cli("experiments", "report", "ab", "--json"))
        assert [(v["outcome_n"], v["value"]) for v in report["variants"]] == [(2, 0.5), (1, 1.0)]

    def test_sample_ratio_mismatch_is_flagged(self, cli: Cli, mp: Client) -> None:
        ok(
            cli(
                "experiments",
                "create",
                "ab",
                "--model",
                "fraud",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
            )
        )
        subject = mp.platform.traffic.get_experiment("ab").subject
        traffic(mp, subject, "a", requests=1000)
        traffic(mp, subject, "b", requests=700)
        report = as_json(cli("experiments", "report", "ab", "--json"))
        assert report["srm"]["mismatch"] is True
        assert "sample ratio mismatch" in report["summary"]

    def test_shadow_create_and_report(self, cli: Cli, mp: Client) -> None:
        created = as_json(
            cli(
                "experiments",
                "create",
                "sh",
                "--model",
                "fraud",
                "--shadow",
                "fraud/2",
                "--percent",
                "20",
                "--json",
            )
        )
        assert created["kind"] == "shadow"
        assert created["shadow_percent"] == 20.0
        ok(cli("experiments", "start", "sh"))
        subject = mp.platform.traffic.get_experiment("sh").subject
        live = LiveStats()
        for i in range(10):
            live.shadow(subject, "shadow", 4.0, ok=True, agree=i < 9, absdiff=0.1)
        live.shadow(subject, "shadow", 4.0, ok=False)
        live.shadow_dropped(subject, "shadow")
        mp.platform.bus.handle(RecordTrafficCounters(live.drain()))
        report = as_json(cli("experiments", "report", "sh", "--json"))
        shadow = report["variants"][0]["shadow"]
        assert shadow["compared"] == 10
        assert shadow["agreement_rate"] == pytest.approx(0.9)
        assert shadow["mean_abs_diff"] == pytest.approx(0.1)
        assert shadow["errors"] == 1
        assert shadow["dropped"] == 1
        text = ok(cli("experiments", "report", "sh")).stdout
        assert "90.0%" in text

    @pytest.mark.parametrize(
        ("variants", "message"),
        [
            (["a=fraud/1:50", "b=fraud/2:40"], "100"),
            (["a:fraud/1:50", "b=fraud/2:50"], "NAME=REF:WEIGHT"),
            (["a=fraud/1", "b=fraud/2:50"], "weight, a percentage, is missing"),
            (["a=fraud/1:fifty", "b=fraud/2:50"], "is not a number"),
            (["a=fraud/1:50", "b=other/1:50"], "not of 'fraud'"),
            (["a=fraud/1:50", "b=fraud/9:50"], "9"),
            (["a=fraud/1:50", "b=fraud@nope:50"], "nope"),
            (["a=fraud/1:50", "a=fraud/2:50"], "same name"),
        ],
    )
    def test_bad_variants_exit_2_and_create_nothing(
        self, cli: Cli, mp: Client, variants: list[str], message: str
    ) -> None:
        before = event_count(mp)
        args = [arg for v in variants for arg in ("--variant", v)]
        line = one_line_error(cli("experiments", "create", "ab", "--model", "fraud", *args))
        assert message in line
        assert mp.platform.traffic.list_experiments() == []
        assert event_count(mp) == before

    def test_other_bad_creates(self, cli: Cli, mp: Client) -> None:
        before = event_count(mp)
        one_line_error(cli("experiments", "create", "x", "--model", "fraud"))
        one_line_error(
            cli(
                "experiments",
                "create",
                "x",
                "--model",
                "fraud",
                "--shadow",
                "fraud/2",
                "--variant",
                "a=1:100",
            )
        )
        one_line_error(
            cli(
                "experiments",
                "create",
                "x",
                "--model",
                "fraud",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
                "--percent",
                "5",
            )
        )
        one_line_error(
            cli(
                "experiments",
                "create",
                "x",
                "--model",
                "nope",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
            )
        )
        one_line_error(
            cli(
                "experiments",
                "create",
                "x",
                "--model",
                "fraud",
                "--variant",
                "a=1:50",
                "--variant",
                "b=2:50",
                "--metric",
                "auc",
            )
        )
        assert mp.platform.traffic.list_experiments() == []
        assert event_count(mp) == before

    def test_unknown_experiment_exits_2(self, cli: Cli, mp: Client) -> None:
        for command in ("start", "pause", "stop", "show", "report"):
            assert "does not exist" in one_line_error(cli("experiments", command, "nope"))
        one_line_error(cli("experiments", "list", "--status", "weird"))


# --------------------------------------------------------------------------- rollouts


def _start(cli: Cli, *extra: str) -> Result:
    return cli(
        "rollout",
        "start",
        "fraud",
        "--candidate",
        "2",
        "--steps",
        "50,100",
        "--step-duration",
        "0",
        "--min-requests",
        "10",
        *extra,
    )


class TestRollouts:
    def test_start_status_promote(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2)
        started = as_json(_start(cli, "--json"))
        assert (started["candidate"], started["baseline"], started["weight"]) == (2, 1, 50)
        assert started["step_duration_s"] == 0.0
        human = ok(cli("rollout", "status", "fraud")).stdout
        assert "fraud#1" in human
        assert "1 of 2 (50 %)" in human
        assert "now: hold" in human
        status = as_json(cli("rollout", "status", "fraud", "--json"))
        assert status["status"] == "running"
        assert status["next_decision"]["action"] == "hold"
        assert set(status["step_counters"]) == {"candidate", "baseline"}
        promoted = as_json(cli("rollout", "promote", "fraud", "--json"))
        assert promoted["status"] == "promoted"
        assert champion(mp) == 2
        listed = as_json(cli("rollout", "list", "--model", "fraud", "--json"))
        assert [r["status"] for r in listed] == ["promoted"]

    def test_start_accepts_a_ref_and_durations(self, cli: Cli, mp: Client) -> None:
        gated(mp, 3)
        mp.set_alias("fraud", "challenger", 3)
        started = as_json(
            cli(
                "rollout",
                "start",
                "fraud",
                "--candidate",
                "fraud@challenger",
                "--step-duration",
                "5m",
                "--json",
            )
        )
        assert started["candidate"] == 3
        assert started["step_duration_s"] == 300.0
        assert started["steps"] == [5, 25, 50, 100]
        text = ok(cli("rollout", "status", "fraud")).stdout
        assert "5m" in text

    def test_abort_sends_everything_back(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2)
        ok(_start(cli))
        aborted = as_json(cli("rollout", "abort", "fraud", "--reason", "ops said no", "--json"))
        assert aborted["status"] == "aborted"
        assert aborted["reason"] == "ops said no"
        assert champion(mp) == 1
        one_line_error(cli("rollout", "abort", "fraud"))  # nothing running any more
        one_line_error(cli("rollout", "promote", "fraud"))

    def test_a_second_rollout_is_refused_and_changes_nothing(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2, 3)
        ok(_start(cli))
        before = event_count(mp)
        line = one_line_error(cli("rollout", "start", "fraud", "--candidate", "3"))
        assert "running" in line
        assert len(mp.platform.traffic.list_rollouts(model="fraud")) == 1
        assert event_count(mp) == before

    @pytest.mark.parametrize(
        "args",
        [
            ["--candidate", "9"],
            ["--candidate", "other/1"],
            ["--candidate", "2", "--steps", "5,x,100"],
            ["--candidate", "2", "--steps", "50,25,100"],
            ["--candidate", "2", "--steps", "5,50"],
            ["--candidate", "2", "--step-duration", "5y"],
            ["--candidate", "2", "--step-duration", "-1"],
            ["--candidate", "2", "--max-error-rate", "2"],
            ["--candidate", "1"],  # the champion itself
            ["--candidate", "3"],  # never gated
        ],
    )
    def test_bad_starts_exit_2_and_change_nothing(
        self, cli: Cli, mp: Client, args: list[str]
    ) -> None:
        gated(mp, 1, 2)
        before = event_count(mp)
        one_line_error(cli("rollout", "start", "fraud", *args))
        assert mp.platform.traffic.list_rollouts() == []
        assert event_count(mp) == before
        assert champion(mp) == 1

    def test_ungated_candidate_says_how_to_gate_it(self, cli: Cli, mp: Client) -> None:
        line = one_line_error(cli("rollout", "start", "fraud", "--candidate", "3"))
        assert "modelplane gate fraud/3" in line

    def test_force_starts_an_ungated_candidate(self, cli: Cli, mp: Client) -> None:
        started = as_json(cli("rollout", "start", "fraud", "--candidate", "3", "--force", "--json"))
        assert started["forced"] is True

    def test_status_of_a_model_without_rollouts_exits_2(self, cli: Cli, mp: Client) -> None:
        one_line_error(cli("rollout", "status", "fraud"))
        one_line_error(cli("rollout", "run", "fraud"))
        one_line_error(cli("rollout", "list", "--status", "weird"))

    def test_wait_drives_a_healthy_candidate_to_promotion(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2)
        # the first rollout of a fresh database is number 1: its steps' traffic, ahead of time
        for step in (0, 1):
            traffic(mp, rollout_subject(1, step), "candidate", requests=100)
        traffic(mp, rollout_subject(1, 0), "baseline", requests=100)
        result = ok(_start(cli, "--wait"))
        lines = result.stdout.splitlines()
        assert any(line.startswith("step 1 (50 %): advance — healthy") for line in lines)
        assert any(line.startswith("step 2 (100 %): promote") for line in lines)
        assert lines[-1].startswith("fraud#1: promoted")
        assert champion(mp) == 2

    def test_run_rolls_back_a_failing_candidate_and_exits_1(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2)
        started = as_json(_start(cli, "--json"))
        traffic(mp, rollout_subject(started["id"], 0), "candidate", requests=100, errors=40)
        traffic(mp, rollout_subject(started["id"], 0), "baseline", requests=100)
        result = cli("rollout", "run", "fraud", "--interval", "10ms", "--json")
        assert result.exit_code == 1, (result.stdout, result.stderr)
        out = json.loads(result.stdout)
        assert out["rollout"]["status"] == "rolled_back"
        assert out["decisions"][-1]["action"] == "rollback"
        assert "error rate" in out["decisions"][-1]["reason"]
        assert champion(mp) == 1


# --------------------------------------------------------------------------- deploys


class TestDeploys:
    def test_deploy_runs_the_gates_switches_and_rolls_back(self, cli: Cli, mp: Client) -> None:
        result = ok(
            cli(
                "deploy",
                "fraud",
                "--version",
                "2",
                "--strategy",
                "blue-green",
                "--keep-blue",
                "10m",
            )
        )
        assert "gates of fraud/2: passed" in result.stdout
        assert "1 (blue) → 2 (green)" in result.stdout
        assert "stays loaded for 10m" in result.stdout
        assert mp.get_version("fraud", 2).tags["modelplane.gate"] == "passed"
        assert champion(mp) == 2
        listed = as_json(cli("deploy", "list", "--model", "fraud", "--json"))
        assert [(d["blue"], d["green"], d["status"]) for d in listed] == [(1, 2, "switched")]
        rolled = as_json(cli("deploy", "rollback", "fraud", "--json"))
        assert rolled["status"] == "rolled_back"
        assert champion(mp) == 1
        one_line_error(cli("deploy", "rollback", "fraud"))  # nothing left to roll back

    def test_deploy_json_and_an_alias_ref(self, cli: Cli, mp: Client) -> None:
        mp.set_alias("fraud", "challenger", 3)
        out = as_json(
            cli("deploy", "fraud", "--version", "fraud@challenger", "--keep-blue", "30s", "--json")
        )
        assert out["deployed"] is True
        assert out["green"] == 3
        assert out["blue"] == 1
        assert out["gates"]["passed"] is True
        assert champion(mp) == 3

    def test_failed_gates_stop_the_deploy_unless_forced(self, cli: Cli, mp: Client) -> None:
        narrow = FRAME[["amount", "hour"]]
        mp.log_model(LogisticRegression().fit(narrow, LABEL), name="fraud", input_example=narrow)
        result = cli("deploy", "fraud", "--version", "4")
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert result.stderr.strip().startswith("error: gates failed for fraud/4: signature")
        assert len(result.stderr.strip().splitlines()) == 1
        assert champion(mp) == 1
        assert mp.platform.traffic.list_deployments() == []
        assert mp.list_events(type="DeploymentSwitched").items == []
        assert mp.get_version("fraud", 4).tags["modelplane.gate"] == "failed"

        forced = as_json(cli("deploy", "fraud", "--version", "4", "--force", "--json"))
        assert forced["deployed"] is True
        assert forced["forced"] is True
        assert champion(mp) == 4

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--version", "9"], "9"),
            (["--version", "other/1"], "not of 'fraud'"),
            (["--version", "2", "--strategy", "canary"], "blue-green"),
            (["--version", "2", "--keep-blue", "ten"], "--keep-blue"),
            (["--version", "1"], "already the champion"),
        ],
    )
    def test_bad_deploys_exit_2_and_change_nothing(
        self, cli: Cli, mp: Client, args: list[str], message: str
    ) -> None:
        before = event_count(mp)
        line = one_line_error(cli("deploy", "fraud", *args))
        assert message in line
        assert champion(mp) == 1
        assert event_count(mp) == before
        assert mp.platform.traffic.list_deployments() == []

    def test_deploy_is_refused_while_a_rollout_runs(self, cli: Cli, mp: Client) -> None:
        gated(mp, 2)
        ok(_start(cli))
        before = event_count(mp)
        assert "rollout" in one_line_error(cli("deploy", "fraud", "--version", "3"))
        assert event_count(mp) == before
        assert champion(mp) == 1

    def test_deploy_list_human(self, cli: Cli, mp: Client) -> None:
        ok(cli("deploy", "fraud", "--version", "2"))
        assert "fraud#1" in ok(cli("deploy", "list")).stdout
