"""The in-memory unit of work the handler tests use (tests/unit/fakes.py) against the SQL one.

One scenario of commands over every capability goes through a bus wired as bootstrap wires it,
once over ``FakeUnitOfWork`` and once over ``SqlUnitOfWork`` (SQLite and the real PostgreSQL);
both must write the same event log — types, aggregates, sequence numbers and payloads, in order
— and refuse the same commands, and the traffic counters and feedback (which write no event)
must add up to the same rows. So the fake cannot drift from what the database does.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from modelplane import bootstrap as bootstrap_module
from modelplane.auth import commands as ac
from modelplane.bootstrap import bootstrap
from modelplane.config import Settings
from modelplane.core.bus import MessageBus
from modelplane.core.messages import Command
from modelplane.errors import ModelplaneError
from modelplane.registry import commands as rc
from modelplane.traffic import commands as tc
from modelplane.traffic.live import Counters
from tests.clocks import WallClock
from tests.unit.fakes import FakeDatabase, FakeUnitOfWork

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
Row = tuple[str, str, str, int, dict[str, Any]]


def _version(**kwargs: Any) -> rc.RegisterVersion:
    values: dict[str, Any] = {"model": "fraud", "flavor": "sklearn", "digest": "a" * 64,
                              "size": 10, "artifact_name": "model.skops"}  # fmt: skip
    return rc.RegisterVersion(**(values | kwargs))


def scenario() -> list[Command]:
    """Commands of every capability, some of them refused by the domain."""
    return [
        rc.RegisterModel(name="fraud", description="cards", tags={"team": "risk"}),
        _version(aliases=("champion",)),
        _version(trusted_by="local:alice"),
        _version(),
        rc.SetTag(model="fraud", key="serving.cache", value="true"),
        rc.SetTag(model="fraud", key="serving.cache", value="maybe"),  # refused
        rc.RecordGateResult(model="fraud", version=2, passed=True, checks={"auc": True}),
        rc.RecordGateResult(model="fraud", version=3, passed=False, checks={"auc": False}),
        tc.StartRollout(model="fraud", candidate=3),  # refused: gates failed
        tc.StartRollout(model="fraud", candidate=2, steps=(50, 100)),
        tc.Deploy(model="fraud", version=2),  # refused: a rollout routes the model
        rc.ArchiveVersion(model="fraud", version=3),
        rc.RestoreVersion(model="fraud", version=3),
        rc.RestoreVersion(model="fraud", version=3),  # refused: ready already
        rc.SetAlias(model="fraud", alias="stable", version=1),
        rc.RemoveAlias(model="fraud", alias="stable"),
        ac.CreateToken(name="ci", scope="write"),
        tc.RecordTrafficCounters({("rollout:1:0", "candidate"): Counters(requests=3, errors=1)}),
        tc.RecordTrafficCounters({("rollout:1:0", "candidate"): Counters(requests=2)}),
        tc.RecordFeedback("r1", label=1.0, reward=None, subject="rollout:1:0", variant="candidate"),
        tc.RecordFeedback("r1", label=0.0, reward=None, subject=None, variant=None),  # refused
        tc.RecordFeedback("r1", label=0.0, reward=None, subject=None, variant=None, overwrite=True),
    ]


def run(bus: MessageBus) -> list[str]:
    outcomes = []
    for command in scenario():
        try:
            bus.handle(command)
            outcomes.append("ok")
        except ModelplaneError as exc:
            outcomes.append(exc.code)
    return outcomes


def _payload(event: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(event).items() if k not in {"event_id"}}


def test_the_fake_writes_what_the_database_writes(any_db_url: str, tmp_path: Any) -> None:
    db = FakeDatabase()
    fake_clock, sql_clock = WallClock(START), WallClock(START)
    fake_bus = MessageBus(uow_factory=lambda: FakeUnitOfWork(db, fake_clock),
                          command_handlers=bootstrap_module.COMMAND_HANDLERS,
                          event_handlers={}, raise_on_event_error=True)  # fmt: skip
    fake_outcomes = run(fake_bus)
    platform = bootstrap(Settings(home=tmp_path / "home", db_url=any_db_url), clock=sql_clock,
                         raise_on_event_error=True)  # fmt: skip
    try:
        sql_outcomes = run(platform.bus)
        stored = platform.events.list_events(limit=500).items
        sql_counters = platform.traffic.store.counters(["rollout:1:0"])
        sql_feedback = platform.traffic.store.feedback()
    finally:
        platform.close()
    assert fake_outcomes == sql_outcomes
    assert fake_outcomes.count("ok") < len(fake_outcomes)  # the scenario does refuse some
    fake: list[Row] = [(e.type, e.aggregate_type, e.aggregate_id, e.sequence, _payload(e.event))
                       for e in db.events]  # fmt: skip
    sql: list[Row] = [(e.type, e.aggregate_type, e.aggregate_id, e.sequence,
                       {k: v for k, v in e.payload.items() if k != "event_id"})
                      for e in stored]  # fmt: skip

    # Token ids are random: compare token events without them.
    def tokenless(rows: list[Row]) -> list[Any]:
        return [(t, a, "<id>" if a == "token" else i, s,
                 {k: v for k, v in p.items() if k not in {"token_id", "id"}})
                for t, a, i, s, p in rows]  # fmt: skip

    assert len(fake) == len(sql)
    assert tokenless(fake) == tokenless(sql)
    assert db.tables.traffic == sql_counters
    feedback_fields = ("label", "reward", "subject", "variant", "revision", "previous_label")
    assert [
        (request_id, *(getattr(row, f) for f in feedback_fields))
        for request_id, row in db.tables.feedback.items()
    ] == [(row["request_id"], *(row[f] for f in feedback_fields)) for row in sql_feedback]


@pytest.mark.parametrize("kind", ["fake", "sql"])
def test_a_refused_command_leaves_no_event(kind: str, tmp_path: Any) -> None:
    command = rc.RestoreVersion(model="ghost", version=1)
    if kind == "fake":
        db = FakeDatabase()
        bus = MessageBus(uow_factory=lambda: FakeUnitOfWork(db, WallClock(START)),
                         command_handlers=bootstrap_module.COMMAND_HANDLERS,
                         event_handlers={}, raise_on_event_error=True)  # fmt: skip
        with pytest.raises(ModelplaneError):
            bus.handle(command)
        assert db.events == []
        return
    platform = bootstrap(Settings(home=tmp_path / "home"), raise_on_event_error=True)
    try:
        with pytest.raises(ModelplaneError):
            platform.bus.handle(command)
        assert platform.events.list_events().items == []
    finally:
        platform.close()
