"""The registry on both databases: SQLite (embedded) and the real PostgreSQL of this machine.

Every test here runs twice through ``any_db_url``; each PostgreSQL run has its own schema.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.errors import (
    AliasNotFound,
    Conflict,
    InvalidInput,
    InvalidName,
    MalformedRequest,
    ModelAlreadyExists,
    ModelNotFound,
    VersionInUse,
    VersionNotFound,
)
from modelplane.registry import commands as c
from modelplane.registry.model import Lineage
from modelplane.registry.views import MetricFilter
from tests import tables as t

DIGEST = "ab" * 32


@pytest.fixture
def db_platform(any_db_url: str, home: Path) -> Iterator[Platform]:
    p = bootstrap(Settings(home=home, db_url=any_db_url), raise_on_event_error=True)
    yield p
    p.close()


@pytest.fixture
def mp(db_platform: Platform) -> Client:
    return Client(platform=db_platform)


def register(p: Platform, model: str = "fraud", **kwargs: Any) -> Any:
    fields: dict[str, Any] = {
        "model": model,
        "flavor": "sklearn",
        "digest": DIGEST,
        "size": 10,
        "artifact_name": "model.skops",
    }
    fields.update(kwargs)
    return p.bus.handle(c.RegisterVersion(**fields))


def count(p: Platform, table: sa.Table) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


class TestRegisterModel:
    def test_registered_model_is_readable_with_its_tags(self, mp: Client) -> None:
        mp.register_model("fraud", description="card fraud", tags={"team": "risk"})
        model = mp.get_model("fraud")
        assert (model.name, model.description, model.tags) == (
            "fraud",
            "card fraud",
            {"team": "risk"},
        )
        assert model.latest_version == 0

    @pytest.mark.parametrize(
        "name", ["", "Fraud", "-fraud", "fr aud", "a" * 129, "../etc", "fraud/1", "fraud@x", "é"]
    )
    def test_invalid_names_are_refused(self, mp: Client, name: str) -> None:
        with pytest.raises(InvalidName) as info:
            mp.register_model(name)
        assert info.value.field == "name"

    def test_longest_valid_name_is_accepted(self, mp: Client) -> None:
        name = "a" + "b" * 127
        assert mp.register_model(name).name == name

    def test_second_registration_of_a_name_conflicts(self, mp: Client) -> None:
        mp.register_model("fraud")
        with pytest.raises(ModelAlreadyExists):
            mp.register_model("fraud")

    def test_unknown_model_is_not_found(self, mp: Client) -> None:
        with pytest.raises(ModelNotFound):
            mp.get_model("nope")


class TestRegisterVersion:
    def test_versions_are_numbered_from_one(self, db_platform: Platform) -> None:
        numbers = [register(db_platform).version for _ in range(3)]
        assert numbers == [1, 2, 3]

    def test_version_keeps_everything_it_was_registered_with(
        self, db_platform: Platform, mp: Client
    ) -> None:
        lineage = Lineage.from_dict(
            {
                "data_sources": [{"uri": "s3://b/tx.parquet", "hash": "sha256:abc"}],
                "run_id": "run-7",
                "code_commit": "deadbeef",
            }
        )
        register(
            db_platform,
            signature={
                "inputs": [{"name": "input-0", "dtype": "float64", "shape": [-1, 3]}],
                "outputs": [],
            },
            params={"C": "1.0"},
            metrics={"auc": 0.93},
            tags={"stage": "dev"},
            lineage=lineage,
            description="first",
        )
        v = mp.get_version("fraud", 1)
        assert v.metrics == {"auc": 0.93}
        assert v.params == {"C": "1.0"}
        assert v.tags == {"stage": "dev"}
        assert v.lineage == lineage
        assert v.signature is not None
        assert v.signature["inputs"][0]["shape"] == [-1, 3]
        assert (v.status, v.flavor, v.digest, v.description) == (
            "ready",
            "sklearn",
            DIGEST,
            "first",
        )

    def test_unknown_model_is_refused_when_not_creating(self, db_platform: Platform) -> None:
        with pytest.raises(ModelNotFound):
            register(db_platform, create_model=False)

    def test_parent_version_must_exist(self, db_platform: Platform) -> None:
        with pytest.raises(InvalidInput) as info:
            register(db_platform, lineage=Lineage(parent_version=4))
        assert info.value.field == "lineage.parent_version"

    def test_non_numeric_metric_is_refused(self, db_platform: Platform) -> None:
        with pytest.raises(InvalidInput) as info:
            register(db_platform, metrics={"auc": "high"})
        assert info.value.field == "metrics.auc"

    def test_unknown_version_is_not_found(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        with pytest.raises(VersionNotFound):
            mp.get_version("fraud", 2)


class TestAliases:
    def test_alias_set_at_registration_resolves(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform, aliases=("champion",))
        assert mp.resolve("models:/fraud@champion").version == 1
        assert mp.resolve("fraud@champion").aliases == ("champion",)

    def test_alias_moves_atomically_and_records_previous(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform, aliases=("champion",))
        register(db_platform)
        mp.set_alias("fraud", "champion", 2)
        assert mp.resolve("fraud@champion").version == 2
        events = mp.list_events(type="AliasSet").items
        assert events[-1].payload["previous_version"] == 1

    def test_removed_alias_no_longer_resolves(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform, aliases=("challenger",))
        assert mp.remove_alias("fraud", "challenger") == 1
        with pytest.raises(AliasNotFound):
            mp.resolve("fraud@challenger")

    def test_removing_unknown_alias_is_not_found(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        with pytest.raises(AliasNotFound):
            mp.remove_alias("fraud", "ghost")

    @pytest.mark.parametrize("alias", ["latest", "3", "Champion", ""])
    def test_reserved_or_invalid_aliases_are_refused(
        self, db_platform: Platform, mp: Client, alias: str
    ) -> None:
        register(db_platform)
        with pytest.raises(InvalidName):
            mp.set_alias("fraud", alias, 1)

    def test_alias_to_unknown_version_is_not_found(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        with pytest.raises(VersionNotFound):
            mp.set_alias("fraud", "champion", 9)

    def test_bare_name_means_champion_else_latest_ready(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform)
        register(db_platform)
        assert mp.resolve("fraud").version == 2
        mp.set_alias("fraud", "champion", 1)
        assert mp.resolve("fraud").version == 1
        assert mp.resolve("fraud@latest").version == 2
        assert mp.resolve("models:/fraud/2").version == 2

    def test_archived_version_cannot_take_an_alias(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        mp.archive_version("fraud", 1)
        with pytest.raises(Conflict):
            mp.set_alias("fraud", "champion", 1)


class TestArchive:
    def test_version_an_alias_points_at_cannot_be_archived(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform, aliases=("champion",))
        with pytest.raises(VersionInUse) as info:
            mp.archive_version("fraud", 1)
        assert "champion" in info.value.message
        assert mp.get_version("fraud", 1).status == "ready"

    def test_archived_version_is_skipped_by_latest(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        register(db_platform)
        mp.archive_version("fraud", 2)
        assert mp.get_version("fraud", 2).status == "archived"
        assert mp.resolve("fraud").version == 1

    def test_restore_makes_a_version_ready_again(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        mp.archive_version("fraud", 1)
        assert mp.restore_version("fraud", 1).status == "ready"

    def test_model_with_only_archived_versions_has_no_latest(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform)
        mp.archive_version("fraud", 1)
        with pytest.raises(VersionNotFound):
            mp.resolve("fraud")


class TestTags:
    def test_model_and_version_tags_are_set_and_deleted(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform, tags={"stage": "dev"})
        mp.set_tag("fraud", "owner", "risk")
        mp.set_tag("fraud", "stage", "prod", version=1)
        assert mp.get_model("fraud").tags == {"owner": "risk"}
        assert mp.get_version("fraud", 1).tags == {"stage": "prod"}
        assert [v.version for v in mp.list_versions("fraud", tags={"stage": "prod"}).items] == [1]
        assert mp.list_versions("fraud", tags={"stage": "dev"}).items == []
        mp.delete_tag("fraud", "stage", version=1)
        assert mp.get_version("fraud", 1).tags == {}

    def test_deleting_a_missing_tag_is_invalid(self, db_platform: Platform, mp: Client) -> None:
        register(db_platform)
        with pytest.raises(InvalidInput):
            mp.delete_tag("fraud", "nope")


class TestListAndSearch:
    @pytest.fixture
    def many(self, db_platform: Platform) -> Platform:
        for i in range(1, 31):
            register(
                db_platform,
                tags={"parity": "even" if i % 2 == 0 else "odd"}
                | ({"rare": "x"} if i == 7 else {}),
                metrics={"auc": i / 100},
            )
        return db_platform

    def test_pages_cover_every_version_once_newest_first(self, many: Platform, mp: Client) -> None:
        seen: list[int] = []
        cursor = None
        while True:
            page = mp.list_versions("fraud", limit=7, cursor=cursor)
            seen += [v.version for v in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == list(range(30, 0, -1))

    def test_ascending_order(self, many: Platform, mp: Client) -> None:
        page = mp.list_versions("fraud", limit=3, order="asc")
        assert [v.version for v in page.items] == [1, 2, 3]
        nxt = mp.list_versions("fraud", limit=3, order="asc", cursor=page.next_cursor)
        assert [v.version for v in nxt.items] == [4, 5, 6]

    def test_tag_filter_pages(self, many: Platform, mp: Client) -> None:
        page = mp.list_versions("fraud", tags={"parity": "even"}, limit=10)
        assert [v.version for v in page.items] == list(range(30, 10, -2))
        rest = mp.list_versions("fraud", tags={"parity": "even"}, limit=10, cursor=page.next_cursor)
        assert [v.version for v in rest.items] == list(range(10, 0, -2))
        assert rest.next_cursor is None

    def test_two_tags_and_a_metric_combine(self, many: Platform, mp: Client) -> None:
        page = mp.list_versions(
            "fraud",
            tags={"parity": "odd", "rare": "x"},
            metrics=[MetricFilter.parse("auc>=0.05")],
        )
        assert [v.version for v in page.items] == [7]

    def test_metric_threshold(self, many: Platform, mp: Client) -> None:
        page = mp.list_versions("fraud", metrics=[MetricFilter.parse("auc > 0.27")])
        assert [v.version for v in page.items] == [30, 29, 28]

    def test_status_filter(self, many: Platform, mp: Client) -> None:
        mp.archive_version("fraud", 3)
        assert [v.version for v in mp.list_versions("fraud", status="archived").items] == [3]
        assert len(mp.list_versions("fraud", status="ready").items) == 29

    def test_models_by_prefix_and_tag(self, db_platform: Platform, mp: Client) -> None:
        for name in ["fraud", "fraud-eu", "churn"]:
            mp.register_model(name, tags={"team": "risk" if "fraud" in name else "growth"})
        assert [m.name for m in mp.list_models(name_prefix="fraud").items] == ["fraud", "fraud-eu"]
        assert [m.name for m in mp.list_models(tags={"team": "growth"}).items] == ["churn"]
        first = mp.list_models(limit=2)
        assert [m.name for m in first.items] == ["churn", "fraud"]
        assert [m.name for m in mp.list_models(limit=2, cursor=first.next_cursor).items] == [
            "fraud-eu"
        ]

    @pytest.mark.parametrize("cursor", ["garbage!", "eyJ4IjoxfQ"])
    def test_foreign_cursor_is_malformed(self, many: Platform, mp: Client, cursor: str) -> None:
        with pytest.raises(MalformedRequest) as info:
            mp.list_versions("fraud", cursor=cursor)
        assert info.value.field == "cursor"

    @pytest.mark.parametrize("text", ["auc", "auc>>1", "auc>=high", ">=1"])
    def test_bad_metric_filter_is_invalid(self, text: str) -> None:
        with pytest.raises(InvalidInput):
            MetricFilter.parse(text)

    def test_limit_out_of_range_is_invalid(self, many: Platform, mp: Client) -> None:
        with pytest.raises(InvalidInput):
            mp.list_versions("fraud", limit=0)


class TestOutbox:
    def test_each_command_writes_its_events_in_order(
        self, db_platform: Platform, mp: Client
    ) -> None:
        mp.register_model("fraud", tags={"team": "risk"})
        register(db_platform, aliases=("champion",))
        register(db_platform)
        mp.set_alias("fraud", "champion", 2)
        mp.archive_version("fraud", 1)
        mp.set_tag("fraud", "owner", "me")
        mp.remove_alias("fraud", "champion")
        events = mp.list_events(aggregate_type="model", aggregate_id="fraud").items
        assert [e.type for e in events] == [
            "ModelRegistered",
            "ModelVersionRegistered",
            "AliasSet",
            "ModelVersionRegistered",
            "AliasSet",
            "VersionArchived",
            "TagSet",
            "AliasRemoved",
        ]
        assert [e.sequence for e in events] == list(range(1, 9))
        assert events[1].payload["version"] == 1
        assert all(e.occurred_at.tzinfo is not None for e in events)

    def test_failed_command_leaves_no_state_and_no_event(self, db_platform: Platform) -> None:
        before = count(db_platform, t.events)
        # The alias is checked after the model and version were created in the aggregate:
        # nothing of that may reach the database.
        with pytest.raises(InvalidName):
            register(db_platform, model="brand-new", aliases=("ok", "latest"))
        assert count(db_platform, t.models) == 0
        assert count(db_platform, t.versions) == 0
        assert count(db_platform, t.events) == before

    def test_failure_while_writing_events_rolls_back_the_change(
        self, db_platform: Platform, mp: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        register(db_platform)
        from modelplane.db.uow import SqlUnitOfWork

        def boom(self: SqlUnitOfWork) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(SqlUnitOfWork, "_write_events", boom)
        with pytest.raises(RuntimeError):
            register(db_platform)
        monkeypatch.undo()
        assert count(db_platform, t.versions) == 1
        assert mp.get_model("fraud").latest_version == 1
        assert register(db_platform).version == 2

    def test_failure_after_state_written_leaves_nothing(
        self, db_platform: Platform, mp: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        register(db_platform)
        events_before = count(db_platform, t.events)
        from modelplane.registry.adapters.sql import SqlModelRepository

        def boom(self: SqlModelRepository, model: Any) -> None:
            raise RuntimeError("crash between statements")

        monkeypatch.setattr(SqlModelRepository, "save", boom)
        with pytest.raises(RuntimeError):
            register(db_platform, tags={"x": "y"}, metrics={"auc": 1.0})
        monkeypatch.undo()
        assert count(db_platform, t.versions) == 1
        assert count(db_platform, t.version_tags) == 0
        assert count(db_platform, t.version_metrics) == 0
        assert count(db_platform, t.events) == events_before

    def test_event_pages_follow_commit_order(self, db_platform: Platform, mp: Client) -> None:
        for _ in range(5):
            register(db_platform)
        first = mp.list_events(limit=3)
        rest = mp.list_events(limit=3, cursor=first.next_cursor)
        ids = [e.id for e in first.items + rest.items]
        assert ids == sorted(ids)
        assert len(ids) == 6


def _register_many(url: str, home: str, n: int) -> list[int]:
    platform = bootstrap(Settings(home=home, db_url=url))
    try:
        return [register(platform, model="race").version for _ in range(n)]
    finally:
        platform.close()


class TestConcurrency:
    def test_concurrent_processes_never_get_the_same_number(
        self, db_platform: Platform, any_db_url: str, home: Path, mp: Client
    ) -> None:
        processes, per_process = 4, 15
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes) as pool:
            results = pool.starmap(
                _register_many, [(any_db_url, str(home), per_process)] * processes
            )
        numbers = sorted(n for chunk in results for n in chunk)
        assert numbers == list(range(1, processes * per_process + 1))
        assert mp.get_model("race").latest_version == processes * per_process
        events = mp.list_events(aggregate_type="model", aggregate_id="race", limit=1000).items
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        registered = [e for e in events if e.type == "ModelVersionRegistered"]
        assert len(registered) == processes * per_process
        assert sum(1 for e in events if e.type == "ModelRegistered") == 1


def _first_use(url: str, home: str) -> str:
    platform = bootstrap(Settings(home=home, db_url=url))
    try:
        from modelplane.db.migrate import current_revision

        return current_revision(platform.engine) or ""
    finally:
        platform.close()


def test_concurrent_first_use_of_an_empty_database_migrates_once(
    any_db_url: str, home: Path
) -> None:
    from modelplane.bootstrap import HEAD

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        revisions = pool.starmap(_first_use, [(any_db_url, str(home))] * 3)
    assert revisions == [HEAD] * 3


def test_head_matches_the_newest_migration_script() -> None:
    from modelplane.db import migrate

    scripts = sorted(
        p.name.split("_")[0]
        for p in (Path(migrate.__file__).parent / "migrations" / "versions").glob("0*.py")
    )
    assert scripts[-1] == migrate.HEAD


def test_the_declared_heads_are_the_heads_alembic_finds() -> None:
    """The shared chain's HEAD and every capability's declared ``Migrations.head`` (read at
    start-up without Alembic) are what Alembic finds in the folders."""
    from alembic.script import ScriptDirectory

    from modelplane.bootstrap import HEAD, SCHEMA
    from modelplane.db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config(SCHEMA))
    assert set(scripts.get_heads()) == SCHEMA.heads
    assert " ".join(sorted(SCHEMA.heads)) == HEAD


@pytest.mark.postgres
def test_postgres_statistics_are_refreshed_as_a_model_grows(pg_url: str, home: Path) -> None:
    platform = bootstrap(Settings(home=home, db_url=pg_url))
    try:
        for _ in range(100):
            register(platform)
        with platform.engine.connect() as conn:
            estimated = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class "
                "WHERE relname = 'versions' AND relnamespace = current_schema()::regnamespace"
            ).scalar_one()
        assert estimated == 100
    finally:
        platform.close()


def _alias_then(url: str, home: str, action: str, version: int, barrier: Any) -> str:
    platform = bootstrap(Settings(home=home, db_url=url))
    client = Client(platform=platform)
    try:
        client.get_version("race", version)  # connected and warm before the start line
        barrier.wait(timeout=60)  # both processes act at once
        if action == "alias":
            client.set_alias("race", "champion", version)
        else:
            client.archive_version("race", version)
        return "ok"
    except (VersionInUse, Conflict) as exc:
        return type(exc).__name__
    finally:
        platform.close()


def test_archive_and_alias_racing_never_leave_an_alias_on_an_archived_version(
    db_platform: Platform, any_db_url: str, home: Path, mp: Client
) -> None:
    """Two processes released together by a barrier: one sets champion on version N, the other
    archives N. Exactly one wins each round — the alias (and the archive is refused: in use) or
    the archive (and the alias is refused: archived) — never both."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        for _ in range(4):
            number = register(db_platform, model="race").version
            barrier = manager.Barrier(2)
            alias, archive = pool.starmap(
                _alias_then,
                [
                    (any_db_url, str(home), "alias", number, barrier),
                    (any_db_url, str(home), "archive", number, barrier),
                ],
            )
            assert (alias, archive) in {("ok", "VersionInUse"), ("Conflict", "ok")}
            version = mp.get_version("race", number)
            aliases = mp.get_model("race").aliases
            assert (version.status == "archived") == (archive == "ok")
            assert (aliases.get("champion") == number) == (alias == "ok")


class TestGateResults:
    def test_gate_result_is_kept_on_the_version_with_its_event(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform)
        register(db_platform)
        mp.record_gate_result("fraud", 1, passed=True, checks={"holdout": True})
        mp.record_gate_result("fraud", 2, passed=False, checks={"holdout": False})
        assert mp.get_version("fraud", 1).tags["modelplane.gate"] == "passed"
        assert mp.get_version("fraud", 2).tags["modelplane.gate"] == "failed"
        mp.record_gate_result("fraud", 2, passed=False, checks={"holdout": False}, forced=True)
        assert mp.get_version("fraud", 2).tags["modelplane.gate"] == "forced"
        events = mp.list_events(type="GateEvaluated").items
        assert [
            (e.payload["version"], e.payload["passed"], e.payload["forced"]) for e in events
        ] == [(1, True, False), (2, False, False), (2, False, True)]

    def test_users_cannot_fake_a_gate_result_with_a_tag(
        self, db_platform: Platform, mp: Client
    ) -> None:
        register(db_platform)
        with pytest.raises(InvalidInput):
            mp.set_tag("fraud", "modelplane.gate", "passed", version=1)
