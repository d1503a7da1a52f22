"""The aggregate base: events recorded in order, counted per aggregate, outside equality."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from modelplane.auth.model import Token
from modelplane.core.aggregate import Aggregate, SequencedAggregate
from modelplane.core.messages import Event
from modelplane.registry.model import RegisteredModel
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.rollout import Rollout

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Noted(Event):
    model: str
    n: int


@dataclass
class Note(SequencedAggregate):
    """A subclass with a field without default: the base's fields stay out of its way."""

    model: str
    text: str = ""


@dataclass
class Plain(Aggregate):
    model: str


class TestRecording:
    def test_recorded_events_are_kept_in_order(self) -> None:
        note = Note("fraud")
        events = [Noted(model="fraud", n=n) for n in range(3)]
        for event in events:
            note._record(event)
        assert note.events == events

    def test_a_sequenced_aggregate_counts_its_own_events(self) -> None:
        first, second = Note("fraud", event_seq=4), Note("churn")
        first._record(Noted(model="fraud", n=1))
        first._record(Noted(model="fraud", n=2))
        second._record(Noted(model="churn", n=1))
        assert (first.event_seq, second.event_seq) == (6, 1)

    def test_a_plain_aggregate_leaves_the_numbering_to_the_unit_of_work(self) -> None:
        plain = Plain("fraud")
        plain._record(Noted(model="fraud", n=1))
        assert plain.events == [Noted(model="fraud", n=1)]
        assert not hasattr(plain, "event_seq")

    def test_aggregates_do_not_share_their_event_lists(self) -> None:
        first, second = Note("fraud"), Note("churn")
        first._record(Noted(model="fraud", n=1))
        assert second.events == []

    def test_base_fields_are_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            Note("fraud", "text", [])  # type: ignore[call-arg]


class TestEventsAreNotState:
    def test_events_are_not_part_of_equality(self) -> None:
        recorded = Note("fraud", event_seq=1)
        recorded.events.append(Noted(model="fraud", n=1))
        assert recorded == Note("fraud", event_seq=1)

    def test_the_event_count_is_part_of_equality(self) -> None:
        assert Note("fraud", event_seq=1) != Note("fraud")

    def test_events_are_not_shown_in_repr(self) -> None:
        note = Note("fraud")
        note._record(Noted(model="fraud", n=1))
        assert "events" not in repr(note)
        assert "Noted" not in repr(note)
        assert "event_seq=1" in repr(note)


class TestConcreteAggregates:
    @pytest.mark.parametrize("cls", [RegisteredModel, Experiment, Rollout, Deployment])
    def test_stored_aggregates_count_their_events(self, cls: type[object]) -> None:
        assert issubclass(cls, SequencedAggregate)

    def test_a_token_is_an_aggregate_without_a_stored_count(self) -> None:
        # The tokens table has no event_seq column: the unit of work numbers a token's events
        # from the highest stored one, so a token must not count them itself.
        assert issubclass(Token, Aggregate)
        assert not issubclass(Token, SequencedAggregate)

    def test_a_new_model_records_its_registration_as_event_one(self) -> None:
        model = RegisteredModel.create("fraud", description="", tags={}, now=NOW)
        assert [type(e).__name__ for e in model.events] == ["ModelRegistered"]
        assert model.event_seq == 1

    def test_a_loaded_model_continues_its_stored_count(self) -> None:
        model = RegisteredModel(
            name="fraud", created_at=NOW, updated_at=NOW, aliases={"champion": 1}, event_seq=7
        )
        model.remove_alias("champion", now=NOW)
        assert model.event_seq == 8
        assert len(model.events) == 1

    def test_a_token_records_creation_and_revocation_in_order(self) -> None:
        token = Token.create(token_id="abc", name="ci", scope="read", secret="s", now=NOW)
        token.revoke(now=NOW + timedelta(seconds=1))
        assert [type(e).__name__ for e in token.events] == ["TokenCreated", "TokenRevoked"]

    def test_a_token_equals_its_loaded_copy_whatever_it_recorded(self) -> None:
        token = Token.create(token_id="abc", name="ci", scope="read", secret="s", now=NOW)
        loaded = Token(
            id="abc", name="ci", scope="read", hash=token.hash, created_at=NOW, revoked_at=None
        )
        assert token == loaded
        assert "events" not in repr(token)

    def test_a_deployment_counts_its_switch_and_roll_back(self) -> None:
        deployment = Deployment(
            model="fraud",
            blue=1,
            green=2,
            keep_until=NOW + timedelta(hours=1),
            created_at=NOW,
            updated_at=NOW,
            id=3,
        )
        deployment.switched()
        assert deployment.roll_back(now=NOW) == 1
        assert [type(e).__name__ for e in deployment.events] == [
            "DeploymentSwitched",
            "DeploymentRolledBack",
        ]
        assert deployment.event_seq == 2
