"""Every capability's command handlers, through the real handler table, over a fake unit of work.

The bus is wired as :func:`modelplane.bootstrap.bootstrap` wires it, with the same
``COMMAND_HANDLERS``, but its units of work are :class:`FakeUnitOfWork` over one in-memory
:class:`FakeDatabase` (cosmicpython ``tests/unit/test_handlers.py``). Each test sets the scene
with commands (``given``), handles one command and checks the state after, the events written
(type, aggregate, sequence, in order) and that it committed once; a refused command commits
nothing, writes no event and leaves every table as it was.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelplane import bootstrap
from modelplane.auth.commands import CreateToken, RevokeToken
from modelplane.auth.handlers import CreatedToken
from modelplane.auth.model import hash_token
from modelplane.core.bus import MessageBus
from modelplane.core.messages import Command
from modelplane.errors import (
    AliasNotFound,
    Conflict,
    ExperimentNotFound,
    GateBlocked,
    InvalidInput,
    ModelAlreadyExists,
    ModelNotFound,
    RolloutNotFound,
    TokenNotFound,
    VersionInUse,
)
from modelplane.registry import commands as rc
from modelplane.registry.model import GATE_TAG
from modelplane.traffic import commands as tc
from modelplane.traffic.live import Counters
from tests.clocks import WallClock
from tests.unit.fakes import FakeDatabase, FakeUnitOfWork, Tables

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

Written = tuple[str, str, int]  # (event type, aggregate id, sequence)


class Harness:
    """A bus wired as bootstrap wires it, over fakes, and what it wrote since the last mark."""

    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.clock = WallClock(T0)
        self.uows: list[FakeUnitOfWork] = []
        self.handled: list[type[Command]] = []
        self.scene_failed = False
        self.bus = MessageBus(
            uow_factory=self._uow,
            command_handlers=bootstrap.COMMAND_HANDLERS,
            event_handlers={},
            raise_on_event_error=True,
        )
        self.mark()

    def _uow(self) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.db, self.clock)
        self.uows.append(uow)
        return uow

    def given(self, *commands: Command) -> None:
        self.scene_failed = True  # until every command of the scene went through
        for command in commands:
            self.bus.handle(command)
        self.scene_failed = False
        self.mark()

    def mark(self) -> None:
        self._events = len(self.db.events)
        self._commits = self.db.commits
        self._tables = copy.deepcopy(self.db.tables)

    def handle(self, command: Command) -> Any:
        self.handled.append(type(command))
        return self.bus.handle(command)

    @property
    def t(self) -> Tables:
        return self.db.tables

    @property
    def written(self) -> list[Written]:
        return [(e.type, e.aggregate_id, e.sequence) for e in self.db.events[self._events :]]

    @property
    def commits(self) -> int:
        return self.db.commits - self._commits

    def assert_refused(self) -> None:
        """Nothing committed, no event, every table as before, the command's uow not committed."""
        assert self.commits == 0
        assert self.written == []
        assert self.db.tables == self._tables
        assert not self.uows[-1].committed


@pytest.fixture
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """The harness; a test of ``class TestX`` (``command = X``) must itself handle an X."""
    harness = Harness()
    yield harness
    expected = getattr(request.cls, "command", None)
    if expected is not None and not harness.scene_failed:
        assert expected in harness.handled, f"{request.node.name} never handles {expected}"


def version_of(model: str = "fraud", **kwargs: Any) -> rc.RegisterVersion:
    values: dict[str, Any] = {
        "flavor": "sklearn",
        "digest": "sha256:" + "a" * 64,
        "size": 1024,
        "artifact_name": "model.skops",
    }
    return rc.RegisterVersion(model, **(values | kwargs))


def fraud_with_versions(n: int = 2) -> list[Command]:
    """``fraud`` (event 1) with versions 1..n (events 2..n+1)."""
    return [rc.RegisterModel("fraud"), *(version_of() for _ in range(n))]


def delivery_scene() -> list[Command]:
    """``fraud`` v1 (champion), v2 (gates passed) and v3 (never gated): model events 1..6."""
    return [
        *fraud_with_versions(3),
        rc.SetAlias("fraud", "champion", 1),
        rc.RecordGateResult("fraud", 2, passed=True),
    ]


# -- registry -------------------------------------------------------------------------------
class TestRegisterModel:
    command = rc.RegisterModel

    def test_stores_the_model_and_writes_model_registered_first(self, h: Harness) -> None:
        h.handle(rc.RegisterModel("fraud", description="scores card payments", tags={"t": "1"}))

        model = h.t.models["fraud"]
        assert (model.description, model.tags, model.latest_version) == (
            "scores card payments",
            {"t": "1"},
            0,
        )
        assert model.created_at == T0
        assert h.written == [("ModelRegistered", "fraud", 1)]
        assert h.commits == 1

    def test_a_taken_name_is_refused(self, h: Harness) -> None:
        h.given(rc.RegisterModel("fraud"))

        with pytest.raises(ModelAlreadyExists):
            h.handle(rc.RegisterModel("fraud", description="again"))

        h.assert_refused()


class TestRegisterVersion:
    command = rc.RegisterVersion

    def test_creates_the_missing_model_and_its_first_version_in_one_commit(
        self, h: Harness
    ) -> None:
        version = h.handle(version_of())

        assert version.version == 1
        assert h.t.models["fraud"].latest_version == 1
        assert h.t.versions[("fraud", 1)].status == "ready"
        assert h.written == [
            ("ModelRegistered", "fraud", 1),
            ("ModelVersionRegistered", "fraud", 2),
        ]
        assert h.commits == 1

    def test_numbers_versions_one_after_another(self, h: Harness) -> None:
        h.given(*fraud_with_versions(2))

        version = h.handle(version_of())

        assert version.version == 3
        assert h.written == [("ModelVersionRegistered", "fraud", 4)]

    def test_points_its_aliases_at_the_new_version_in_the_same_transaction(
        self, h: Harness
    ) -> None:
        h.given(*fraud_with_versions(1))

        version = h.handle(version_of(aliases=("champion", "stable")))

        assert version.aliases == ("champion", "stable")
        assert h.t.models["fraud"].aliases == {"champion": 2, "stable": 2}
        assert h.written == [
            ("ModelVersionRegistered", "fraud", 3),
            ("AliasSet", "fraud", 4),
            ("AliasSet", "fraud", 5),
        ]
        assert h.commits == 1

    def test_an_invalid_alias_refuses_the_version_too(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(InvalidInput):
            h.handle(version_of(aliases=("latest",)))

        h.assert_refused()
        assert ("fraud", 2) not in h.t.versions

    def test_records_who_trusted_its_content_and_when(self, h: Harness) -> None:
        h.given(rc.RegisterModel("fraud"))

        h.handle(version_of(trusted_by="alice"))

        stored = h.t.versions[("fraud", 1)]
        assert (stored.trusted_by, stored.trusted_at) == ("alice", T0)
        assert h.written == [("ModelVersionRegistered", "fraud", 2)]
        assert h.db.events[-1].event.payload()["trusted_by"] == "alice"

    def test_an_untrusted_version_records_nobody(self, h: Harness) -> None:
        h.handle(version_of())

        stored = h.t.versions[("fraud", 1)]
        assert (stored.trusted_by, stored.trusted_at) == (None, None)

    def test_a_missing_model_is_refused_when_not_asked_to_create_it(self, h: Harness) -> None:
        with pytest.raises(ModelNotFound):
            h.handle(version_of(create_model=False))

        h.assert_refused()


class TestSetAlias:
    command = rc.SetAlias

    def test_points_the_alias_and_records_the_previous_version(self, h: Harness) -> None:
        h.given(*fraud_with_versions(2), rc.SetAlias("fraud", "champion", 1))

        h.handle(rc.SetAlias("fraud", "champion", 2))

        assert h.t.models["fraud"].aliases == {"champion": 2}
        assert h.written == [("AliasSet", "fraud", 5)]
        assert h.db.events[-1].event.payload()["previous_version"] == 1
        assert h.commits == 1

    def test_the_version_it_already_names_writes_no_event(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.SetAlias("fraud", "champion", 1))

        h.handle(rc.SetAlias("fraud", "champion", 1))

        assert h.written == []
        assert h.t.models["fraud"].aliases == {"champion": 1}

    def test_an_archived_version_cannot_carry_an_alias(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.ArchiveVersion("fraud", 1))

        with pytest.raises(Conflict):
            h.handle(rc.SetAlias("fraud", "champion", 1))

        h.assert_refused()


class TestRemoveAlias:
    command = rc.RemoveAlias

    def test_removes_the_alias_and_returns_the_version_it_named(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.SetAlias("fraud", "champion", 1))

        assert h.handle(rc.RemoveAlias("fraud", "champion")) == 1

        assert h.t.models["fraud"].aliases == {}
        assert h.written == [("AliasRemoved", "fraud", 4)]
        assert h.commits == 1

    def test_an_unknown_alias_is_refused(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(AliasNotFound):
            h.handle(rc.RemoveAlias("fraud", "champion"))

        h.assert_refused()


class TestArchiveVersion:
    command = rc.ArchiveVersion

    def test_archives_the_version(self, h: Harness) -> None:
        h.given(*fraud_with_versions(2))

        h.handle(rc.ArchiveVersion("fraud", 1))

        assert h.t.versions[("fraud", 1)].status == "archived"
        assert h.t.versions[("fraud", 2)].status == "ready"
        assert h.written == [("VersionArchived", "fraud", 4)]
        assert h.commits == 1

    def test_a_version_an_alias_points_at_is_refused(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.SetAlias("fraud", "champion", 1))

        with pytest.raises(VersionInUse):
            h.handle(rc.ArchiveVersion("fraud", 1))

        h.assert_refused()


class TestRestoreVersion:
    command = rc.RestoreVersion

    def test_makes_an_archived_version_ready_again(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.ArchiveVersion("fraud", 1))

        h.handle(rc.RestoreVersion("fraud", 1))

        assert h.t.versions[("fraud", 1)].status == "ready"
        assert h.written == [("VersionRestored", "fraud", 4)]
        assert h.commits == 1

    def test_a_ready_version_is_a_conflict(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(Conflict):
            h.handle(rc.RestoreVersion("fraud", 1))

        h.assert_refused()


class TestSetTag:
    command = rc.SetTag

    def test_tags_the_model(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        h.handle(rc.SetTag("fraud", "team", "risk"))

        assert h.t.models["fraud"].tags == {"team": "risk"}
        assert h.written == [("TagSet", "fraud", 3)]
        assert h.commits == 1

    def test_tags_a_version(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        h.handle(rc.SetTag("fraud", "serving.max_batch_size", "32", version=1))

        assert h.t.versions[("fraud", 1)].tags == {"serving.max_batch_size": "32"}
        assert h.t.models["fraud"].tags == {}
        assert h.written == [("TagSet", "fraud", 3)]

    def test_a_serving_tag_no_server_would_take_is_invalid(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(InvalidInput):
            h.handle(rc.SetTag("fraud", "serving.max_batch_size", "lots", version=1))

        h.assert_refused()

    def test_a_reserved_modelplane_tag_is_invalid(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(InvalidInput):
            h.handle(rc.SetTag("fraud", GATE_TAG, "passed", version=1))

        h.assert_refused()


class TestDeleteTag:
    command = rc.DeleteTag

    def test_deletes_a_version_tag(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1), rc.SetTag("fraud", "team", "risk", version=1))

        h.handle(rc.DeleteTag("fraud", "team", version=1))

        assert h.t.versions[("fraud", 1)].tags == {}
        assert h.written == [("TagDeleted", "fraud", 4)]
        assert h.commits == 1

    def test_a_missing_tag_is_invalid(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        with pytest.raises(InvalidInput):
            h.handle(rc.DeleteTag("fraud", "team"))

        h.assert_refused()


class TestRecordGateResult:
    command = rc.RecordGateResult

    def test_a_pass_tags_the_version_passed(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        h.handle(rc.RecordGateResult("fraud", 1, passed=True, checks={"accuracy": True}))

        assert h.t.versions[("fraud", 1)].tags == {GATE_TAG: "passed"}
        assert h.written == [("GateEvaluated", "fraud", 3)]
        assert h.db.events[-1].event.payload()["checks"] == {"accuracy": True}
        assert h.commits == 1

    def test_a_forced_failure_is_recorded_as_forced(self, h: Harness) -> None:
        h.given(*fraud_with_versions(1))

        h.handle(rc.RecordGateResult("fraud", 1, passed=False, forced=True))

        assert h.t.versions[("fraud", 1)].tags == {GATE_TAG: "forced"}
        assert h.db.events[-1].event.payload()["forced"] is True

    def test_an_unknown_model_is_refused(self, h: Harness) -> None:
        with pytest.raises(ModelNotFound):
            h.handle(rc.RecordGateResult("fraud", 1, passed=True))

        h.assert_refused()


# -- auth -----------------------------------------------------------------------------------
class TestCreateToken:
    command = CreateToken

    def test_stores_only_the_hash_of_the_secret(self, h: Harness) -> None:
        created: CreatedToken = h.handle(CreateToken("ci", scope="write"))

        stored = h.t.tokens[created.token.id]
        assert stored.hash == hash_token(created.secret)
        assert (stored.name, stored.scope, stored.created_at, stored.revoked_at) == (
            "ci",
            "write",
            T0,
            None,
        )
        assert h.written == [("TokenCreated", created.token.id, 1)]
        assert h.commits == 1

    def test_an_unknown_scope_is_invalid(self, h: Harness) -> None:
        with pytest.raises(InvalidInput):
            h.handle(CreateToken("ci", scope="root"))

        h.assert_refused()


class TestRevokeToken:
    command = RevokeToken

    def test_revokes_the_token_numbering_after_its_stored_events(self, h: Harness) -> None:
        created: CreatedToken = h.handle(CreateToken("ci"))
        h.mark()
        h.clock.tick(60)

        h.handle(RevokeToken(created.token.id))

        assert h.t.tokens[created.token.id].revoked_at == T0 + timedelta(seconds=60)
        assert h.written == [("TokenRevoked", created.token.id, 2)]
        assert h.commits == 1

    def test_revoking_twice_is_a_conflict(self, h: Harness) -> None:
        created: CreatedToken = h.handle(CreateToken("ci"))
        h.given(RevokeToken(created.token.id))

        with pytest.raises(Conflict):
            h.handle(RevokeToken(created.token.id))

        h.assert_refused()

    def test_an_unknown_token_is_not_found(self, h: Harness) -> None:
        with pytest.raises(TokenNotFound):
            h.handle(RevokeToken("0123456789ab"))

        h.assert_refused()


# -- traffic --------------------------------------------------------------------------------
AB = tc.CreateExperiment("ab", "fraud", variants=(("a", 1, 50.0), ("b", 2, 50.0)))


class TestCreateExperiment:
    command = tc.CreateExperiment

    def test_creates_a_draft_split(self, h: Harness) -> None:
        h.given(*delivery_scene())

        h.handle(AB)

        experiment = h.t.experiments["ab"]
        assert (experiment.status, experiment.model) == ("draft", "fraud")
        assert [a.version for a in experiment.arms] == [1, 2]
        assert h.written == [("ExperimentCreated", "ab", 1)]
        assert h.commits == 1

    def test_an_archived_arm_is_a_conflict(self, h: Harness) -> None:
        h.given(*fraud_with_versions(2), rc.ArchiveVersion("fraud", 2))

        with pytest.raises(Conflict):
            h.handle(AB)

        h.assert_refused()

    def test_an_unknown_model_is_refused(self, h: Harness) -> None:
        with pytest.raises(ModelNotFound):
            h.handle(AB)

        h.assert_refused()


class TestStartExperiment:
    command = tc.StartExperiment

    def test_starts_a_draft(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB)

        h.handle(tc.StartExperiment("ab"))

        experiment = h.t.experiments["ab"]
        assert (experiment.status, experiment.started_at) == ("running", T0)
        assert h.written == [("ExperimentStarted", "ab", 2)]
        assert h.commits == 1

    def test_a_second_split_on_the_same_model_is_a_conflict(self, h: Harness) -> None:
        other = tc.CreateExperiment("cd", "fraud", variants=(("c", 1, 50.0), ("d", 3, 50.0)))
        h.given(*delivery_scene(), AB, tc.StartExperiment("ab"), other)

        with pytest.raises(Conflict):
            h.handle(tc.StartExperiment("cd"))

        h.assert_refused()

    def test_a_stopped_experiment_cannot_start_again(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB, tc.StopExperiment("ab"))

        with pytest.raises(Conflict):
            h.handle(tc.StartExperiment("ab"))

        h.assert_refused()

    def test_an_unknown_experiment_is_not_found(self, h: Harness) -> None:
        with pytest.raises(ExperimentNotFound):
            h.handle(tc.StartExperiment("ab"))

        h.assert_refused()


class TestPauseExperiment:
    command = tc.PauseExperiment

    def test_pauses_a_running_experiment(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB, tc.StartExperiment("ab"))

        h.handle(tc.PauseExperiment("ab"))

        assert h.t.experiments["ab"].status == "paused"
        assert h.written == [("ExperimentPaused", "ab", 3)]
        assert h.commits == 1

    def test_a_draft_cannot_pause(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB)

        with pytest.raises(Conflict):
            h.handle(tc.PauseExperiment("ab"))

        h.assert_refused()


class TestStopExperiment:
    command = tc.StopExperiment

    def test_stops_a_running_experiment(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB, tc.StartExperiment("ab"))
        h.clock.tick(3600)

        h.handle(tc.StopExperiment("ab"))

        experiment = h.t.experiments["ab"]
        assert (experiment.status, experiment.stopped_at) == ("stopped", T0 + timedelta(hours=1))
        assert h.written == [("ExperimentStopped", "ab", 3)]
        assert h.commits == 1

    def test_stopping_a_stopped_experiment_writes_no_event(self, h: Harness) -> None:
        h.given(*delivery_scene(), AB, tc.StopExperiment("ab"))

        h.handle(tc.StopExperiment("ab"))

        assert h.t.experiments["ab"].status == "stopped"
        assert h.written == []


class TestStartRollout:
    command = tc.StartRollout

    def test_starts_a_canary_of_a_gated_version_against_the_champion(self, h: Harness) -> None:
        h.given(*delivery_scene())

        h.handle(tc.StartRollout("fraud", candidate=2))

        rollout = h.t.rollouts[1]
        assert (rollout.status, rollout.baseline, rollout.candidate, rollout.weight) == (
            "running",
            1,
            2,
            5,
        )
        assert rollout.forced is False
        assert h.written == [("RolloutStarted", "fraud#1", 1)]
        assert h.commits == 1

    def test_an_ungated_version_is_refused(self, h: Harness) -> None:
        h.given(*delivery_scene())

        with pytest.raises(GateBlocked):
            h.handle(tc.StartRollout("fraud", candidate=3))

        h.assert_refused()

    def test_force_lets_an_ungated_version_through_and_is_recorded(self, h: Harness) -> None:
        h.given(*delivery_scene())

        h.handle(tc.StartRollout("fraud", candidate=3, force=True))

        assert h.t.rollouts[1].forced is True
        assert h.db.events[-1].event.payload()["forced"] is True

    def test_a_model_without_a_champion_is_a_conflict(self, h: Harness) -> None:
        h.given(*fraud_with_versions(2), rc.RecordGateResult("fraud", 2, passed=True))

        with pytest.raises(Conflict):
            h.handle(tc.StartRollout("fraud", candidate=2))

        h.assert_refused()

    def test_a_second_rollout_on_the_model_is_a_conflict(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2))

        with pytest.raises(Conflict):
            h.handle(tc.StartRollout("fraud", candidate=3, force=True))

        h.assert_refused()


class TestDecideRollout:
    command = tc.DecideRollout

    def test_advance_at_the_expected_step_moves_to_the_next_one(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2))

        h.handle(tc.DecideRollout("fraud", "advance", reason="healthy", expected_step=0))

        rollout = h.t.rollouts[1]
        assert (rollout.step_index, rollout.weight) == (1, 25)
        assert h.written == [("CanaryStepAdvanced", "fraud#1", 2)]
        assert h.commits == 1

    def test_a_decision_for_a_step_already_passed_is_a_conflict(self, h: Harness) -> None:
        h.given(
            *delivery_scene(),
            tc.StartRollout("fraud", candidate=2),
            tc.DecideRollout("fraud", "advance", reason="healthy", expected_step=0),
        )

        with pytest.raises(Conflict):
            h.handle(tc.DecideRollout("fraud", "advance", reason="healthy", expected_step=0))

        h.assert_refused()

    def test_promote_moves_the_champion_in_the_same_commit(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2))

        h.handle(tc.DecideRollout("fraud", "promote", reason="won", manual=True))

        assert h.t.rollouts[1].status == "promoted"
        assert h.t.models["fraud"].aliases == {"champion": 2}
        assert h.written == [("AliasSet", "fraud", 7), ("CanaryPromoted", "fraud#1", 2)]
        assert h.commits == 1

    def test_rollback_keeps_the_champion(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2))

        h.handle(tc.DecideRollout("fraud", "rollback", reason="errors"))

        assert (h.t.rollouts[1].status, h.t.rollouts[1].weight) == ("rolled_back", 0)
        assert h.t.models["fraud"].aliases == {"champion": 1}
        assert h.written == [("CanaryRolledBack", "fraud#1", 2)]

    def test_no_running_rollout_is_not_found(self, h: Harness) -> None:
        h.given(*delivery_scene())

        with pytest.raises(RolloutNotFound):
            h.handle(tc.DecideRollout("fraud", "advance", reason="healthy"))

        h.assert_refused()


class TestAbortRollout:
    command = tc.AbortRollout

    def test_aborts_the_running_rollout(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2))

        h.handle(tc.AbortRollout("fraud", reason="by hand"))

        assert (h.t.rollouts[1].status, h.t.rollouts[1].reason) == ("aborted", "by hand")
        assert h.written == [("CanaryAborted", "fraud#1", 2)]
        assert h.commits == 1

    def test_an_aborted_rollout_cannot_be_aborted_again(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.StartRollout("fraud", candidate=2), tc.AbortRollout("fraud"))

        with pytest.raises(RolloutNotFound):
            h.handle(tc.AbortRollout("fraud"))

        h.assert_refused()


class TestDeploy:
    command = tc.Deploy

    def test_switches_the_champion_to_green_and_keeps_blue(self, h: Harness) -> None:
        h.given(*delivery_scene())

        h.handle(tc.Deploy("fraud", 2, keep_blue_s=600))

        deployment = h.t.deployments[1]
        assert (deployment.blue, deployment.green, deployment.status) == (1, 2, "switched")
        assert deployment.keep_until == T0 + timedelta(minutes=10)
        assert h.t.models["fraud"].aliases == {"champion": 2}
        assert h.written == [("AliasSet", "fraud", 7), ("DeploymentSwitched", "fraud#1", 1)]
        assert h.commits == 1

    def test_an_ungated_version_is_refused(self, h: Harness) -> None:
        h.given(*delivery_scene())

        with pytest.raises(GateBlocked):
            h.handle(tc.Deploy("fraud", 3))

        h.assert_refused()

    def test_the_champion_itself_is_a_conflict(self, h: Harness) -> None:
        h.given(*delivery_scene())

        with pytest.raises(Conflict):
            h.handle(tc.Deploy("fraud", 1, force=True))

        h.assert_refused()


class TestRollbackDeploy:
    command = tc.RollbackDeploy

    def test_moves_the_champion_back_to_blue(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.Deploy("fraud", 2))

        h.handle(tc.RollbackDeploy("fraud"))

        assert h.t.deployments[1].status == "rolled_back"
        assert h.t.models["fraud"].aliases == {"champion": 1}
        assert h.written == [("AliasSet", "fraud", 8), ("DeploymentRolledBack", "fraud#1", 2)]
        assert h.commits == 1

    def test_rolling_back_twice_is_a_conflict(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.Deploy("fraud", 2), tc.RollbackDeploy("fraud"))

        with pytest.raises(Conflict):
            h.handle(tc.RollbackDeploy("fraud"))

        h.assert_refused()

    def test_a_champion_moved_since_the_deploy_is_a_conflict(self, h: Harness) -> None:
        h.given(*delivery_scene(), tc.Deploy("fraud", 2), rc.SetAlias("fraud", "champion", 3))

        with pytest.raises(Conflict):
            h.handle(tc.RollbackDeploy("fraud"))

        h.assert_refused()


class TestRecordTrafficCounters:
    command = tc.RecordTrafficCounters

    def test_deltas_add_up_across_commands(self, h: Harness) -> None:
        a, b = ("experiment:ab", "a"), ("experiment:ab", "b")
        h.given(
            tc.RecordTrafficCounters(
                {a: Counters(requests=2, errors=1, latency_sum=3.0, buckets={4: 1})}
            )
        )

        h.handle(
            tc.RecordTrafficCounters(
                {
                    a: Counters(requests=3, latency_sum=1.5, buckets={4: 2, 9: 1}),
                    b: Counters(requests=1),
                }
            )
        )

        assert h.t.traffic == {
            a: Counters(requests=5, errors=1, latency_sum=4.5, buckets={4: 3, 9: 1}),
            b: Counters(requests=1),
        }
        assert h.written == []  # high-volume: no event
        assert h.commits == 1


class TestRecordFeedback:
    command = tc.RecordFeedback

    def test_the_first_outcome_is_revision_1(self, h: Harness) -> None:
        revision = h.handle(tc.RecordFeedback("r1", 1.0, None, "experiment:ab", "a"))

        assert revision == 1
        stored = h.t.feedback["r1"]
        assert (stored.label, stored.reward, stored.subject, stored.variant) == (
            1.0,
            None,
            "experiment:ab",
            "a",
        )
        assert (stored.revision, stored.previous_label, stored.overwritten_at) == (1, None, None)
        assert h.written == []
        assert h.commits == 1

    def test_a_second_outcome_without_overwrite_is_a_conflict(self, h: Harness) -> None:
        h.given(tc.RecordFeedback("r1", 1.0, None, "experiment:ab", "a"))

        with pytest.raises(Conflict):
            h.handle(tc.RecordFeedback("r1", 0.0, None, None, None))

        h.assert_refused()

    def test_an_overwrite_is_revision_2_and_keeps_the_previous(self, h: Harness) -> None:
        h.given(tc.RecordFeedback("r1", 1.0, None, "experiment:ab", "a"))

        revision = h.handle(tc.RecordFeedback("r1", None, 2.5, None, None, overwrite=True))

        assert revision == 2
        stored = h.t.feedback["r1"]
        assert (stored.label, stored.reward, stored.revision) == (None, 2.5, 2)
        assert (stored.previous_label, stored.previous_reward) == (1.0, None)
        assert (stored.subject, stored.variant) == ("experiment:ab", "a")  # known ones kept
        assert stored.overwritten_at is not None
        assert h.written == []
        assert h.commits == 1


# -- the table itself -----------------------------------------------------------------------
COMMANDS = sorted(bootstrap.COMMAND_HANDLERS, key=lambda c: c.__name__)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.__name__ for c in COMMANDS])
def test_every_command_in_the_handler_table_has_a_test_class(command: type[Command]) -> None:
    """A command added to ``bootstrap.COMMAND_HANDLERS`` fails here until a ``Test<Command>``
    class (``command = <Command>``) has tests, each of which handles one (the ``h`` fixture
    checks that on teardown)."""
    cls = globals().get(f"Test{command.__name__}")
    assert inspect.isclass(cls), f"add class Test{command.__name__} to {__name__}"
    assert getattr(cls, "command", None) is command
    assert [name for name in vars(cls) if name.startswith("test_")]
