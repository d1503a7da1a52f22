"""Delivery on both databases: experiment, rollout and deploy rules, events written with state,
counters shared by replicas, and the canary controller deciding by itself (injectable clock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.errors import (
    Conflict,
    ExperimentNotFound,
    GateBlocked,
    InvalidInput,
    RolloutNotFound,
    VersionNotFound,
)
from modelplane.registry import commands as rc
from modelplane.traffic.commands import RecordTrafficCounters
from modelplane.traffic.controller import RolloutController, StepDecision
from modelplane.traffic.live import LiveStats
from modelplane.traffic.rollout import Rollout
from tests import tables as t
from tests.clocks import WallClock

DIGEST = "cd" * 32


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def db_platform(any_db_url: str, home: Path, clock: WallClock) -> Iterator[Platform]:
    p = bootstrap(Settings(home=home, db_url=any_db_url), raise_on_event_error=True, clock=clock)
    yield p
    p.close()


@pytest.fixture
def mp(db_platform: Platform) -> Client:
    """fraud/1 (champion), fraud/2 (gated), fraud/3 (gate failed), fraud/4 (never gated)."""
    c = Client(platform=db_platform)
    for _ in range(4):
        db_platform.bus.handle(
            rc.RegisterVersion(
                model="fraud",
                flavor="sklearn",
                digest=DIGEST,
                size=10,
                artifact_name="model.skops",
            )
        )
    c.set_alias("fraud", "champion", 1)
    c.record_gate_result("fraud", 2, passed=True)
    c.record_gate_result("fraud", 3, passed=False)
    return c


def events(p: Platform, aggregate_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    query = sa.select(t.events.c.type, t.events.c.payload).order_by(t.events.c.id)
    if aggregate_type is not None:
        query = query.where(t.events.c.aggregate_type == aggregate_type)
    with p.engine.connect() as conn:
        return [(r.type, r.payload) for r in conn.execute(query)]


def count(p: Platform, table: sa.Table) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def feed(
    p: Platform,
    subject: str,
    variant: str,
    n: int,
    *,
    error_every: int = 0,
    latency_ms: float = 2.0,
) -> None:
    live = LiveStats()
    for i in range(n):
        ok = not (error_every and i % error_every == 0)
        live.request(subject, variant, latency_ms + (i % 7) * 0.01, ok=ok)
    p.bus.handle(RecordTrafficCounters(live.drain()))


class TestExperiments:
    def test_lifecycle_writes_one_event_per_change(self, mp: Client) -> None:
        p = mp.platform
        mp.create_experiment("ab", "fraud", {"a": (1, 50), "b": (2, 50)})
        for action in ("start", "pause", "start", "stop"):
            mp.experiment_action("ab", action)
        assert [e for e, _ in events(p, "experiment")] == [
            "ExperimentCreated",
            "ExperimentStarted",
            "ExperimentPaused",
            "ExperimentStarted",
            "ExperimentStopped",
        ]
        assert p.traffic.get_experiment("ab").status == "stopped"
        with pytest.raises(Conflict):
            mp.experiment_action("ab", "start")

    @pytest.mark.parametrize(
        ("variants", "error"),
        [
            ({"a": (1, 50), "b": (2, 40)}, InvalidInput),
            ({"a": (1, 100)}, InvalidInput),
            ({"a": (1, 50), "b": (9, 50)}, VersionNotFound),
            ({"a": (1, 50), "b": (1, 50)}, InvalidInput),
            ({"a": (1, -10), "b": (2, 110)}, InvalidInput),
        ],
    )
    def test_bad_splits_are_refused_and_change_nothing(
        self, mp: Client, variants: dict[str, tuple[int, float]], error: type[Exception]
    ) -> None:
        before = count(mp.platform, t.events)
        with pytest.raises(error):
            mp.create_experiment("ab", "fraud", variants)
        assert count(mp.platform, t.experiments) == 0
        assert count(mp.platform, t.events) == before

    def test_one_router_per_model(self, mp: Client) -> None:
        mp.create_experiment("ab", "fraud", {"a": (1, 50), "b": (2, 50)})
        mp.create_experiment("ab2", "fraud", {"a": (1, 50), "b": (2, 50)})
        mp.experiment_action("ab", "start")
        with pytest.raises(Conflict, match="already routes"):
            mp.experiment_action("ab2", "start")
        with pytest.raises(Conflict, match="already routes"):
            mp.start_rollout("fraud", 2)
        # A shadow is no router: it may run beside the split.
        mp.create_experiment("sh", "fraud", {"shadow": (2, 100)}, kind="shadow", shadow_percent=20)
        mp.experiment_action("sh", "start")
        table = mp.platform.traffic.routing_table()
        assert table.routes["fraud"].name == "ab"
        assert table.shadows["fraud"].candidate == 2
        assert table.shadows["fraud"].percent == 20

    def test_unknown_experiment(self, mp: Client) -> None:
        with pytest.raises(ExperimentNotFound):
            mp.experiment_action("nope", "start")

    def test_bandit_weights_follow_rewards_and_agree_across_replicas(self, mp: Client) -> None:
        p = mp.platform
        exp = mp.create_experiment("bandit", "fraud", {"a": (1, 50), "b": (2, 50)}, bandit=True)
        mp.experiment_action("bandit", "start")
        live = LiveStats()
        for i in range(200):
            live.outcome(exp.subject, "a", 1.0 if i % 10 == 0 else 0.0)  # 10 % reward
            live.outcome(exp.subject, "b", 1.0 if i % 2 == 0 else 0.0)  # 50 % reward
        p.bus.handle(RecordTrafficCounters(live.drain()))
        first = p.traffic.routing_table().routes["fraud"].arms
        second = p.traffic.routing_table().routes["fraud"].arms
        assert first == second  # seeded by the counts: every replica splits the same way
        weights = {a.name: a.weight for a in first}
        assert weights["b"] > 95
        assert abs(sum(weights.values()) - 100) < 1e-9


class TestCounters:
    def test_replicas_add_up(self, mp: Client, any_db_url: str, home: Path) -> None:
        other = bootstrap(Settings(home=home, db_url=any_db_url))
        try:
            for replica in (mp.platform, other):
                live = LiveStats()
                for i in range(50):
                    live.request("experiment:x", "a", 1.0 + i, ok=i % 5 != 0)
                replica.bus.handle(RecordTrafficCounters(live.drain()))
                replica.bus.handle(RecordTrafficCounters(live.drain()))  # nothing new: a no-op
        finally:
            other.close()
        got = mp.platform.traffic.store.counters(["experiment:x"])[("experiment:x", "a")]
        assert (got.requests, got.errors) == (100, 20)
        assert sum(got.buckets.values()) == 80
        assert got.p(0.5) is not None
        assert 20 < got.p(0.5) < 32


class TestRollouts:
    def test_gates_block_rollouts_and_deploys_unless_forced(self, mp: Client) -> None:
        p = mp.platform
        before = count(p, t.events)
        with pytest.raises(GateBlocked, match="failed its release gates"):
            mp.start_rollout("fraud", 3)
        with pytest.raises(GateBlocked, match="has not been gated"):
            mp.start_rollout("fraud", 4)
        with pytest.raises(GateBlocked):
            mp.deploy("fraud", 3)
        assert count(p, t.rollouts) == count(p, t.deployments) == 0
        assert count(p, t.events) == before
        forced = mp.start_rollout("fraud", 3, force=True)
        assert forced.forced
        assert events(p, "rollout")[-1][1]["forced"] is True

    def test_bad_rollouts_change_nothing(self, mp: Client) -> None:
        p = mp.platform
        before = count(p, t.events)
        for kwargs, error in [
            ({"candidate": 9}, VersionNotFound),
            ({"candidate": 1}, InvalidInput),
            ({"candidate": 2, "steps": (50, 25, 100)}, InvalidInput),
            ({"candidate": 2, "steps": (5, 50)}, InvalidInput),
            ({"candidate": 2, "max_error_rate": 2.0}, InvalidInput),
        ]:
            with pytest.raises(error):
                mp.start_rollout("fraud", **kwargs)
        mp.start_rollout("fraud", 2)
        with pytest.raises(Conflict, match="rollout of fraud/2 is running"):
            mp.start_rollout("fraud", 3, force=True)
        assert count(p, t.rollouts) == 1
        assert count(p, t.events) == before + 1

    def test_promotion_moves_the_champion_in_the_same_transaction(self, mp: Client) -> None:
        p = mp.platform
        mp.start_rollout("fraud", 2, steps=(50, 100))
        mp.decide_rollout("fraud", "advance", reason="ok", expected_step=0)
        with pytest.raises(Conflict, match="moved on"):
            mp.decide_rollout("fraud", "advance", reason="twice", expected_step=0)
        # The candidate is archived meanwhile: the promotion fails as a whole.
        p.bus.handle(rc.ArchiveVersion(model="fraud", version=2))
        with pytest.raises(Conflict):
            mp.decide_rollout("fraud", "promote", reason="ok", expected_step=1)
        assert p.traffic.latest_rollout("fraud").status == "running"
        assert mp.get_model("fraud").aliases["champion"] == 1
        assert "CanaryPromoted" not in [e for e, _ in events(p)]
        p.bus.handle(rc.RestoreVersion(model="fraud", version=2))
        mp.decide_rollout("fraud", "promote", reason="ok", expected_step=1)
        assert mp.get_model("fraud").aliases["champion"] == 2
        tail = [e for e, _ in events(p)][-2:]
        assert tail == ["AliasSet", "CanaryPromoted"]

    def test_abort_and_manual_promote(self, mp: Client) -> None:
        mp.start_rollout("fraud", 2)
        rollout = mp.abort_rollout("fraud", "changed my mind")
        assert (rollout.status, rollout.weight) == ("aborted", 0)
        with pytest.raises(RolloutNotFound):
            mp.abort_rollout("fraud")
        mp.start_rollout("fraud", 2)
        promoted = mp.decide_rollout("fraud", "promote", reason="by hand", manual=True)
        assert promoted.status == "promoted"
        assert events(mp.platform, "rollout")[-1][1]["manual"] is True


class TestDeploy:
    def test_switch_then_rollback(self, mp: Client, clock: WallClock) -> None:
        p = mp.platform
        deployment = mp.deploy("fraud", 2, keep_blue_s=600)
        assert (deployment.blue, deployment.green) == (1, 2)
        assert mp.get_model("fraud").aliases["champion"] == 2
        keep = p.traffic.routing_table(now=clock()).keep
        assert [(k.model, k.version) for k in keep] == [("fraud", 1)]
        assert p.traffic.routing_table(now=clock() + timedelta(seconds=601)).keep == ()
        with pytest.raises(Conflict, match="already the champion"):
            mp.deploy("fraud", 2)
        mp.rollback_deploy("fraud")
        assert mp.get_model("fraud").aliases["champion"] == 1
        with pytest.raises(Conflict, match="no deployment"):
            mp.rollback_deploy("fraud")
        kinds = [e for e, _ in events(p)][-4:]
        assert kinds == ["AliasSet", "DeploymentSwitched", "AliasSet", "DeploymentRolledBack"]

    def test_rollback_refused_when_the_champion_moved_since(self, mp: Client) -> None:
        mp.deploy("fraud", 2)
        mp.set_alias("fraud", "champion", 3)
        with pytest.raises(Conflict, match="moved since"):
            mp.rollback_deploy("fraud")
        assert mp.get_model("fraud").aliases["champion"] == 3


class TestController:
    def _controller(self, mp: Client, clock: WallClock) -> RolloutController:
        return RolloutController(mp.platform.bus, mp.platform.traffic, clock=clock)

    def _serve_step(
        self, mp: Client, rollout: Rollout, n: int, *, error_every: int = 0, slow: float = 1.0
    ) -> None:
        """Traffic of one step split as the route says: candidate gets its weight's share."""
        current = mp.platform.traffic.latest_rollout("fraud")
        subject = current.subject
        cand = max(1, n * current.weight // 100)
        feed(mp.platform, subject, "candidate", cand, error_every=error_every, latency_ms=2 * slow)
        if current.weight < 100:
            feed(mp.platform, subject, "baseline", n - cand)

    def test_a_candidate_failing_20_percent_is_rolled_back_by_itself(
        self, mp: Client, clock: WallClock
    ) -> None:
        rollout = mp.start_rollout(
            "fraud", 2, steps=(10, 50, 100), step_duration_s=300, min_requests=200
        )
        controller = self._controller(mp, clock)
        assert controller.tick()[0].action == "hold"  # no traffic yet
        self._serve_step(mp, rollout, 400, error_every=5)  # 40 candidate requests, 8 failures
        decision = controller.tick()[0]
        assert decision.action == "rollback", decision
        assert "above the 1.00% limit" in decision.reason
        done = mp.platform.traffic.latest_rollout("fraud")
        assert (done.status, done.weight) == ("rolled_back", 0)
        assert mp.get_model("fraud").aliases["champion"] == 1
        kind, payload = events(mp.platform, "rollout")[-1]
        assert kind == "CanaryRolledBack"
        assert payload["evidence"]["candidate"]["errors"] == 8
        assert "fraud" not in mp.platform.traffic.routing_table().routes

    def test_a_healthy_candidate_is_promoted_step_by_step(
        self, mp: Client, clock: WallClock
    ) -> None:
        mp.start_rollout("fraud", 2, steps=(10, 50, 100), step_duration_s=300, min_requests=100)
        controller = self._controller(mp, clock)
        seen: list[StepDecision] = []
        for _ in range(3):
            current = mp.platform.traffic.latest_rollout("fraud")
            self._serve_step(mp, current, 100 * 100 // current.weight)
            decision = controller.tick()[0]
            assert decision.action == "hold"
            assert "to go" in decision.reason
            clock.advance(301)
            seen.append(controller.tick()[0])
        assert [d.action for d in seen] == ["advance", "advance", "promote"]
        assert mp.get_model("fraud").aliases["champion"] == 2
        assert [e for e, _ in events(mp.platform, "rollout")] == [
            "RolloutStarted",
            "CanaryStepAdvanced",
            "CanaryStepAdvanced",
            "CanaryPromoted",
        ]

    def test_a_slow_candidate_is_rolled_back(self, mp: Client, clock: WallClock) -> None:
        rollout = mp.start_rollout("fraud", 2, steps=(50, 100), min_requests=100)
        self._serve_step(mp, rollout, 400, slow=3.0)  # 6 ms against 2 ms
        decision = self._controller(mp, clock).tick()[0]
        assert decision.action == "rollback"
        assert "p99 latency" in decision.reason

    def test_run_reports_each_move_and_returns_the_final_state(
        self, mp: Client, clock: WallClock
    ) -> None:
        mp.start_rollout("fraud", 2, steps=(50, 100), step_duration_s=0, min_requests=50)
        controller = self._controller(mp, clock)
        lines: list[str] = []

        def sleep(_: float) -> None:  # traffic arrives while the controller waits
            current = mp.platform.traffic.latest_rollout("fraud")
            self._serve_step(mp, current, 200)

        final = controller.run("fraud", on_decision=lambda d: lines.append(d.line()), sleep=sleep)
        assert final.status == "promoted"
        assert [line.split(":")[1].split()[0] for line in lines] == [
            "hold",
            "advance",
            "hold",
            "promote",
        ]


RESUME_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from modelplane.bootstrap import bootstrap
    from modelplane.config import Settings
    from modelplane.traffic.controller import RolloutController

    p = bootstrap(Settings(home=sys.argv[1], db_url=sys.argv[2]))
    controller = RolloutController(p.bus, p.traffic)
    def stop_after_first_move(decision):
        if decision.action == "advance":
            print("advanced", flush=True)
            time.sleep(60)  # killed here, mid-rollout
    controller.run("fraud", interval_s=0.05, on_decision=stop_after_first_move)
    """
)


def test_a_controller_killed_mid_rollout_resumes_where_it_was(
    mp: Client, any_db_url: str, home: Path, tmp_path: Path
) -> None:
    mp.start_rollout("fraud", 2, steps=(20, 60, 100), step_duration_s=0, min_requests=50)
    first = mp.platform.traffic.latest_rollout("fraud")
    feed(mp.platform, first.subject, "candidate", 60)
    feed(mp.platform, first.subject, "baseline", 240)
    script = tmp_path / "controller.py"
    script.write_text(RESUME_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home), any_db_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "advanced"  # (the child prints once it moved)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    resumed = mp.platform.traffic.latest_rollout("fraud")
    assert (resumed.status, resumed.step_index, resumed.weight) == ("running", 1, 60)
    controller = RolloutController(mp.platform.bus, mp.platform.traffic)  # real time, as the child
    for _ in range(2):
        current = mp.platform.traffic.latest_rollout("fraud")
        feed(mp.platform, current.subject, "candidate", 100)
        if current.weight < 100:
            feed(mp.platform, current.subject, "baseline", 100)
        controller.tick()
    final = mp.platform.traffic.latest_rollout("fraud")
    assert final.status == "promoted"
    assert mp.get_model("fraud").aliases["champion"] == 2


def test_a_models_events_include_its_rollouts_deployments_and_experiments(mp: Client) -> None:
    mp.create_experiment("ab", "fraud", {"a": (1, 50), "b": (2, 50)})
    mp.start_rollout("fraud", 2)
    mp.abort_rollout("fraud")
    mp.deploy("fraud", 2)
    mp.platform.bus.handle(rc.RegisterVersion(model="other", flavor="sklearn", digest=DIGEST,
                                              size=1, artifact_name="m.skops"))  # fmt: skip
    page = mp.list_events(model="fraud", limit=100)
    kinds = {(e.aggregate_type, e.type) for e in page.items}
    assert ("experiment", "ExperimentCreated") in kinds
    assert ("rollout", "RolloutStarted") in kinds
    assert ("deployment", "DeploymentSwitched") in kinds
    assert ("model", "AliasSet") in kinds
    assert all(e.payload.get("model") in (None, "fraud") for e in page.items)
    assert not [e for e in page.items if e.aggregate_id == "other"]


def test_a_version_forced_past_its_gates_goes_through_recorded_as_forced(mp: Client) -> None:
    mp.record_gate_result("fraud", 4, passed=False, forced=True)  # modelplane gate --force
    rollout = mp.start_rollout("fraud", 4)  # no --force needed: the gate run was forced
    assert rollout.forced
    mp.abort_rollout("fraud")
    deployment = mp.deploy("fraud", 3, force=True)  # failed gates, forced here
    assert deployment.forced
    assert events(mp.platform, "deployment")[-1][1]["forced"] is True
    mp.rollback_deploy("fraud")
    assert not mp.deploy("fraud", 2).forced  # passed: nothing forced
