"""The ``modelplane`` CLI, in process (Typer's CliRunner), against a fresh home per test.

Each test passes ``--home`` to its own folder, so it gets its own SQLite database and artifact
store. Reads of the resulting state go through the CLI's own ``--json`` output.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from modelplane.cli.main import app
from tests.e2e.cli_helpers import Cli, as_json, ok, one_line_error


@pytest.fixture(scope="module")
def fitted() -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


@pytest.fixture(scope="module")
def skops_file(fitted: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelplane.runtimes import save_model

    return save_model(fitted, tmp_path_factory.mktemp("skops")).path


@pytest.fixture(scope="module")
def pickle_file(fitted: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pickle") / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    return path


def register(cli: Cli, path: Path, *args: str, name: str = "fraud") -> dict[str, Any]:
    found: dict[str, Any] = as_json(cli("models", "register", name, str(path), "--json", *args))
    return found


def event_types(cli: Cli, *args: str) -> list[str]:
    return [e["type"] for e in as_json(cli("events", "list", "--json", *args))["events"]]


def assert_nothing_registered(cli: Cli) -> None:
    assert as_json(cli("models", "list", "--json"))["models"] == []
    assert event_types(cli) == []


class TestRegister:
    def test_register_prints_the_new_version_as_json(self, cli: Cli, skops_file: Path) -> None:
        version = register(
            cli,
            skops_file,
            "--metric", "auc=0.93",
            "--metric", "precision_at_recall=0.41",
            "--tag", "team=risk",
            "--param", "C=1.0",
            "--alias", "champion",
            "--description", "first try",
        )  # fmt: skip
        assert version["name"] == "fraud"
        assert version["version"] == 1
        assert version["flavor"] == "sklearn"
        assert len(version["digest"]) == 64
        assert version["metrics"] == {"auc": 0.93, "precision_at_recall": 0.41}
        assert version["tags"] == {"team": "risk"}
        assert version["params"] == {"C": "1.0"}
        assert version["aliases"] == ["champion"]
        assert version["description"] == "first try"

    def test_register_without_json_prints_one_summary_line(
        self, cli: Cli, skops_file: Path
    ) -> None:
        result = ok(cli("models", "register", "fraud", str(skops_file), "--alias", "champion"))
        assert result.stdout.startswith("registered fraud/1 (champion) sklearn ")

    def test_versions_are_numbered_one_after_another(self, cli: Cli, skops_file: Path) -> None:
        numbers = [register(cli, skops_file)["version"] for _ in range(3)]
        assert numbers == [1, 2, 3]

    def test_lineage_options_are_recorded(self, cli: Cli, skops_file: Path) -> None:
        digest = "ab" * 32
        register(cli, skops_file)
        version = register(
            cli,
            skops_file,
            "--data-source", f"s3://bucket/transactions.parquet#{digest}",
            "--data-source", f"file:///data/labels.csv#sha256:{digest.upper()}",
            "--data-source", "file:///data/notes.txt",
            "--run-id", "run-7",
            "--parent-version", "1",
            "--code-commit", "4f2a9c1",
        )  # fmt: skip
        assert version["lineage"] == {
            "data_sources": [
                {"uri": "s3://bucket/transactions.parquet", "hash": f"sha256:{digest}"},
                {"uri": "file:///data/labels.csv", "hash": f"sha256:{digest}"},
                {"uri": "file:///data/notes.txt", "hash": None},
            ],
            "parent_version": 1,
            "run_id": "run-7",
            "code_commit": "4f2a9c1",
        }

    def test_signature_file_is_stored_with_the_version(
        self, cli: Cli, skops_file: Path, tmp_path: Path
    ) -> None:
        schema = {"inputs": [{"name": "input-0", "dtype": "float64", "shape": [-1, 3]}]}
        sig = tmp_path / "signature.json"
        sig.write_text(json.dumps(schema))
        version = register(cli, skops_file, "--signature", str(sig))
        assert version["signature"] == schema | {"outputs": []}

    def test_explicit_flavor_is_used(self, cli: Cli, skops_file: Path) -> None:
        assert register(cli, skops_file, "--flavor", "sklearn")["flavor"] == "sklearn"

    def test_pickle_is_refused_without_trust_and_nothing_is_registered(
        self, cli: Cli, pickle_file: Path
    ) -> None:
        line = one_line_error(cli("models", "register", "fraud", str(pickle_file)))
        assert "pickle" in line
        assert "--trust" in line
        assert_nothing_registered(cli)

    def test_pickle_is_accepted_with_trust(self, cli: Cli, pickle_file: Path) -> None:
        version = register(cli, pickle_file, "--trust")
        assert version["flavor"] == "sklearn"
        assert version["trusted_by"].startswith("local:")
        assert version["trusted_at"]
        shown = cli("models", "version", "fraud", "1")
        assert shown.exit_code == 0
        assert f"yes, by {version['trusted_by']}" in shown.stdout

    @pytest.mark.parametrize("bad", ["auc", "auc=high", "=0.9", "auc=nan"])
    def test_bad_metric_exits_2_naming_the_option_and_registers_nothing(
        self, cli: Cli, skops_file: Path, bad: str
    ) -> None:
        line = one_line_error(cli("models", "register", "fraud", str(skops_file), "--metric", bad))
        assert "--metric" in line
        assert_nothing_registered(cli)

    @pytest.mark.parametrize("option", ["--tag", "--param"])
    def test_pair_without_equals_exits_2_naming_the_option(
        self, cli: Cli, skops_file: Path, option: str
    ) -> None:
        line = one_line_error(cli("models", "register", "fraud", str(skops_file), option, "team"))
        assert option in line
        assert_nothing_registered(cli)

    def test_data_source_with_a_bad_hash_exits_2(self, cli: Cli, skops_file: Path) -> None:
        result = cli("models", "register", "fraud", str(skops_file), "--data-source", "a.csv#xyz")
        assert "--data-source" in one_line_error(result)
        assert_nothing_registered(cli)

    def test_signature_file_that_is_not_json_exits_2(
        self, cli: Cli, skops_file: Path, tmp_path: Path
    ) -> None:
        sig = tmp_path / "signature.json"
        sig.write_text("{not json")
        result = cli("models", "register", "fraud", str(skops_file), "--signature", str(sig))
        assert "--signature" in one_line_error(result)
        assert_nothing_registered(cli)

    @pytest.mark.parametrize("name", ["Fraud", "_fraud", "fr aud", "a" * 129])
    def test_invalid_model_name_exits_2_and_stores_nothing(
        self, cli: Cli, skops_file: Path, home: Path, name: str
    ) -> None:
        line = one_line_error(cli("models", "register", name, str(skops_file)))
        assert "invalid name" in line
        assert_nothing_registered(cli)
        assert not any(p.is_file() for p in (home / "artifacts").rglob("*"))

    def test_invalid_alias_exits_2_and_registers_nothing(self, cli: Cli, skops_file: Path) -> None:
        result = cli("models", "register", "fraud", str(skops_file), "--alias", "latest")
        assert "alias" in one_line_error(result)
        assert_nothing_registered(cli)

    def test_missing_file_exits_2(self, cli: Cli, tmp_path: Path) -> None:
        line = one_line_error(cli("models", "register", "fraud", str(tmp_path / "nope.skops")))
        assert "does not exist" in line
        assert_nothing_registered(cli)


class TestModelsRead:
    @pytest.fixture
    def three_models(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file, name="fraud")
        register(cli, skops_file, name="fraud-v2")
        register(cli, skops_file, name="churn")
        ok(cli("models", "tag", "fraud", "team", "risk"))

    @pytest.mark.usefixtures("three_models")
    def test_list_json_is_sorted_by_name(self, cli: Cli) -> None:
        page = as_json(cli("models", "list", "--json"))
        assert [m["name"] for m in page["models"]] == ["churn", "fraud", "fraud-v2"]
        assert page["next_cursor"] is None

    @pytest.mark.usefixtures("three_models")
    def test_list_pages_with_the_cursor(self, cli: Cli) -> None:
        first = as_json(cli("models", "list", "--json", "--limit", "2"))
        assert [m["name"] for m in first["models"]] == ["churn", "fraud"]
        rest = as_json(cli("models", "list", "--json", "--cursor", first["next_cursor"]))
        assert [m["name"] for m in rest["models"]] == ["fraud-v2"]

    @pytest.mark.usefixtures("three_models")
    def test_list_filters_by_prefix_and_tag(self, cli: Cli) -> None:
        by_prefix = as_json(cli("models", "list", "--json", "--prefix", "fraud"))["models"]
        assert [m["name"] for m in by_prefix] == ["fraud", "fraud-v2"]
        by_tag = as_json(cli("models", "list", "--json", "--tag", "team=risk"))["models"]
        assert [m["name"] for m in by_tag] == ["fraud"]

    @pytest.mark.usefixtures("three_models")
    def test_global_json_option_works_like_the_command_one(self, cli: Cli) -> None:
        page = json.loads(ok(cli("--json", "models", "list")).stdout)
        assert len(page["models"]) == 3

    @pytest.mark.usefixtures("three_models")
    def test_list_table_shows_each_model(self, cli: Cli) -> None:
        out = ok(cli("models", "list")).stdout
        for header in ("name", "latest", "aliases", "tags", "updated"):
            assert header in out
        assert "fraud-v2" in out
        assert "team=risk" in out

    def test_bad_tag_filter_exits_2_naming_the_option(self, cli: Cli) -> None:
        assert "--tag" in one_line_error(cli("models", "list", "--tag", "team"))

    def test_list_with_no_models_says_so_on_stderr(self, cli: Cli) -> None:
        result = ok(cli("models", "list"))
        assert result.stdout == ""
        assert "no models" in result.stderr

    def test_malformed_cursor_exits_2(self, cli: Cli) -> None:
        assert "cursor" in one_line_error(cli("models", "list", "--cursor", "%%%"))

    def test_limit_out_of_range_exits_2(self, cli: Cli) -> None:
        assert "limit" in one_line_error(cli("models", "list", "--limit", "0"))

    def test_show_prints_the_model(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file, "--alias", "champion")
        model = as_json(cli("models", "show", "fraud", "--json"))
        assert model["latest_version"] == 1
        assert model["aliases"] == {"champion": 1}
        assert "champion→1" in ok(cli("models", "show", "fraud")).stdout

    def test_unknown_model_exits_2_with_one_line(self, cli: Cli) -> None:
        assert one_line_error(cli("models", "show", "nope")) == "error: model 'nope' does not exist"

    def test_invalid_name_on_read_exits_2(self, cli: Cli) -> None:
        assert "invalid name" in one_line_error(cli("models", "show", "No Such"))


class TestVersions:
    @pytest.fixture
    def versions(self, cli: Cli, skops_file: Path) -> None:
        for auc, team in ((0.81, "risk"), (0.93, "risk"), (0.88, "growth")):
            register(cli, skops_file, "--metric", f"auc={auc}", "--tag", f"team={team}")
        ok(cli("models", "archive", "fraud", "1"))

    @staticmethod
    def numbers(cli: Cli, *args: str) -> list[int]:
        page = as_json(cli("models", "versions", "fraud", "--json", *args))
        return [v["version"] for v in page["versions"]]

    @pytest.mark.usefixtures("versions")
    def test_versions_are_listed_newest_first(self, cli: Cli) -> None:
        assert self.numbers(cli) == [3, 2, 1]
        assert self.numbers(cli, "--order", "asc") == [1, 2, 3]

    @pytest.mark.usefixtures("versions")
    def test_versions_filter_by_status_tag_and_metric(self, cli: Cli) -> None:
        assert self.numbers(cli, "--status", "archived") == [1]
        assert self.numbers(cli, "--status", "ready", "--tag", "team=risk") == [2]
        assert self.numbers(cli, "--metric", "auc>=0.85") == [3, 2]
        assert self.numbers(cli, "--metric", "auc>0.85", "--metric", "auc<0.9") == [3]

    @pytest.mark.usefixtures("versions")
    def test_versions_page_with_the_cursor(self, cli: Cli) -> None:
        first = as_json(cli("models", "versions", "fraud", "--json", "--limit", "2"))
        assert [v["version"] for v in first["versions"]] == [3, 2]
        assert self.numbers(cli, "--cursor", first["next_cursor"]) == [1]

    @pytest.mark.usefixtures("versions")
    def test_versions_table_has_the_columns_people_need(self, cli: Cli) -> None:
        out = ok(cli("models", "versions", "fraud")).stdout
        for header in ("version", "status", "flavor", "aliases", "metrics", "created", "digest"):
            assert header in out
        assert "auc=0.93" in out
        assert "archived" in out

    @pytest.mark.parametrize("bad", ["auc", "auc>=high", "auc=>0.9"])
    @pytest.mark.usefixtures("versions")
    def test_bad_metric_filter_exits_2_naming_the_option(self, cli: Cli, bad: str) -> None:
        assert "--metric" in one_line_error(cli("models", "versions", "fraud", "--metric", bad))

    def test_bad_status_is_a_one_line_usage_error(self, cli: Cli) -> None:
        assert "status" in one_line_error(cli("models", "versions", "fraud", "--status", "gone"))

    @pytest.mark.usefixtures("versions")
    def test_version_shows_one_version(self, cli: Cli) -> None:
        version = as_json(cli("models", "version", "fraud", "2", "--json"))
        assert version["uri"] == "models:/fraud/2"
        assert version["metrics"] == {"auc": 0.93}
        out = ok(cli("models", "version", "fraud", "2")).stdout
        assert "models:/fraud/2" in out
        assert version["digest"] in out

    @pytest.mark.usefixtures("versions")
    def test_unknown_version_exits_2_with_one_line(self, cli: Cli) -> None:
        line = one_line_error(cli("models", "version", "fraud", "9"))
        assert line == "error: model 'fraud' has no version 9"

    def test_versions_of_unknown_model_exits_2(self, cli: Cli) -> None:
        one_line_error(cli("models", "versions", "nope"))

    @pytest.mark.usefixtures("versions")
    def test_archive_and_restore_change_the_status(self, cli: Cli) -> None:
        restored = as_json(cli("models", "restore", "fraud", "1", "--json"))
        assert restored["status"] == "ready"
        assert ok(cli("models", "archive", "fraud", "1")).stdout == "archived fraud/1\n"
        assert event_types(cli, "--type", "VersionRestored") == ["VersionRestored"]

    @pytest.mark.usefixtures("versions")
    def test_restore_of_a_ready_version_says_so_and_exits_2(self, cli: Cli) -> None:
        before = event_types(cli)
        line = one_line_error(cli("models", "restore", "fraud", "2"))
        assert "fraud/2 is ready already" in line
        assert event_types(cli) == before

    @pytest.mark.usefixtures("versions")
    @pytest.mark.parametrize(
        ("tag", "value"),
        [
            ("serving.max_batch_size", "0"),
            ("serving.max_batch_size", "lots"),
            ("serving.cache", "maybe"),
            ("serving.timeout_ms", "nan"),
            ("serving.max_wait_ms", "-1"),
            ("serving.fallback", "Not A Ref!"),
            ("serving.batch", "8"),
        ],
    )
    def test_invalid_serving_tag_exits_2_naming_the_tag(
        self, cli: Cli, tag: str, value: str
    ) -> None:
        line = one_line_error(cli("models", "tag", "fraud", "--version", "2", "--", tag, value))
        assert tag in line
        assert tag not in as_json(cli("models", "version", "fraud", "2", "--json"))["tags"]

    @pytest.mark.usefixtures("versions")
    def test_valid_serving_tags_are_kept(self, cli: Cli) -> None:
        for tag, value in [
            ("serving.max_batch_size", "32"),
            ("serving.cache", "true"),
            ("serving.fallback", "fraud/1"),
            ("serving.timeout_ms", "250.5"),
        ]:
            ok(cli("models", "tag", "fraud", tag, value))
        assert ok(cli("models", "show", "fraud", "--json"))

    @pytest.mark.usefixtures("versions")
    def test_tag_a_version(self, cli: Cli) -> None:
        assert ok(cli("models", "tag", "fraud", "stage", "qa", "--version", "2")).stdout == (
            "tagged fraud/2 stage=qa\n"
        )
        assert as_json(cli("models", "version", "fraud", "2", "--json"))["tags"]["stage"] == "qa"


class TestAliases:
    @pytest.fixture
    def two_versions(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file)
        register(cli, skops_file)

    @pytest.mark.usefixtures("two_versions")
    def test_set_list_and_remove(self, cli: Cli) -> None:
        assert ok(cli("alias", "set", "fraud", "champion", "1")).stdout == "fraud@champion → 1\n"
        ok(cli("alias", "set", "fraud", "challenger", "2"))
        listed = as_json(cli("alias", "list", "fraud", "--json"))
        assert listed == {"name": "fraud", "aliases": {"challenger": 2, "champion": 1}}
        removed = as_json(cli("alias", "rm", "fraud", "challenger", "--json"))
        assert removed == {"name": "fraud", "alias": "challenger", "version": 2}
        assert as_json(cli("alias", "list", "fraud", "--json"))["aliases"] == {"champion": 1}

    @pytest.mark.usefixtures("two_versions")
    def test_set_moves_an_existing_alias(self, cli: Cli) -> None:
        ok(cli("alias", "set", "fraud", "champion", "1"))
        moved = as_json(cli("alias", "set", "fraud", "champion", "2", "--json"))
        assert moved == {"name": "fraud", "alias": "champion", "version": 2}
        assert "champion" in ok(cli("alias", "list", "fraud")).stdout

    @pytest.mark.usefixtures("two_versions")
    def test_removing_an_unknown_alias_exits_2(self, cli: Cli) -> None:
        line = one_line_error(cli("alias", "rm", "fraud", "champion"))
        assert line == "error: model 'fraud' has no alias 'champion'"

    @pytest.mark.usefixtures("two_versions")
    def test_setting_an_alias_on_an_unknown_version_exits_2(self, cli: Cli) -> None:
        one_line_error(cli("alias", "set", "fraud", "champion", "7"))
        assert as_json(cli("alias", "list", "fraud", "--json"))["aliases"] == {}

    def test_alias_of_an_unknown_model_exits_2(self, cli: Cli) -> None:
        one_line_error(cli("alias", "set", "nope", "champion", "1"))

    @pytest.mark.usefixtures("two_versions")
    def test_archive_is_refused_while_an_alias_points_at_the_version(self, cli: Cli) -> None:
        ok(cli("alias", "set", "fraud", "champion", "1"))
        line = one_line_error(cli("models", "archive", "fraud", "1"))
        assert "champion" in line
        assert as_json(cli("models", "version", "fraud", "1", "--json"))["status"] == "ready"
        ok(cli("alias", "rm", "fraud", "champion"))
        ok(cli("models", "archive", "fraud", "1"))


class TestEvents:
    def test_events_are_listed_in_the_order_they_happened(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file, "--alias", "champion")
        register(cli, skops_file)
        ok(cli("alias", "set", "fraud", "champion", "2"))
        ok(cli("models", "archive", "fraud", "1"))
        assert event_types(cli) == [
            "ModelRegistered",
            "ModelVersionRegistered",
            "AliasSet",
            "ModelVersionRegistered",
            "AliasSet",
            "VersionArchived",
        ]
        events = as_json(cli("events", "list", "--json"))["events"]
        assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]

    def test_events_filter_by_model_and_type(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file, name="fraud")
        register(cli, skops_file, name="churn")
        assert event_types(cli, "--model", "churn") == [
            "ModelRegistered",
            "ModelVersionRegistered",
        ]
        page = as_json(cli("events", "list", "--json", "--type", "ModelRegistered"))
        assert [e["aggregate_id"] for e in page["events"]] == ["fraud", "churn"]

    def test_events_replay_rebuilds_a_projection(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file)
        out = as_json(cli("events", "replay", "--projection", "model-timeline", "--json"))
        assert out == {"projection": "model-timeline", "events": 2}
        assert (
            "rebuilt model-timeline from 2 events"
            in ok(cli("events", "replay", "--projection", "model-timeline")).stdout
        )

    def test_events_replay_of_an_unknown_projection_exits_2(self, cli: Cli) -> None:
        line = one_line_error(cli("events", "replay", "--projection", "nope"))
        assert "no projection 'nope' (known: model-timeline)" in line

    def test_events_page_with_the_cursor(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file)
        first = as_json(cli("events", "list", "--json", "--limit", "1"))
        rest = as_json(cli("events", "list", "--json", "--cursor", first["next_cursor"]))
        assert [e["type"] for e in first["events"] + rest["events"]] == [
            "ModelRegistered",
            "ModelVersionRegistered",
        ]

    def test_events_table_summarises_each_payload(self, cli: Cli, skops_file: Path) -> None:
        register(cli, skops_file, "--alias", "champion")
        out = ok(cli("events", "list")).stdout
        assert "ModelVersionRegistered" in out
        assert "alias=champion version=1" in out


class TestTokens:
    def test_create_prints_the_secret_once_on_stdout_alone(self, cli: Cli) -> None:
        result = ok(cli("tokens", "create", "--name", "ci", "--scope", "write"))
        secret = result.stdout.strip()
        assert secret.startswith("mp_")
        assert result.stdout == secret + "\n"
        assert "not stored" in result.stderr
        listed = ok(cli("tokens", "list"))
        assert "ci" in listed.stdout
        assert secret not in listed.stdout + listed.stderr
        assert secret not in ok(cli("tokens", "list", "--json")).stdout

    def test_create_json_holds_the_token_and_its_id(self, cli: Cli) -> None:
        created = as_json(cli("tokens", "create", "--name", "ci", "--scope", "admin", "--json"))
        assert created["token"].startswith(f"mp_{created['id']}_")
        assert created["scope"] == "admin"
        tokens = as_json(cli("tokens", "list", "--json"))["tokens"]
        assert [(t["id"], t["scope"]) for t in tokens] == [(created["id"], "admin")]
        assert "token" not in tokens[0]

    def test_revoke_removes_the_token_from_the_list(self, cli: Cli) -> None:
        created = as_json(cli("tokens", "create", "--name", "ci", "--json"))
        assert ok(cli("tokens", "revoke", created["id"])).stdout == (
            f"revoked token {created['id']} (ci)\n"
        )
        assert as_json(cli("tokens", "list", "--json"))["tokens"] == []
        everything = as_json(cli("tokens", "list", "--all", "--json"))["tokens"]
        assert everything[0]["revoked_at"] is not None

    def test_revoking_an_unknown_token_exits_2(self, cli: Cli) -> None:
        assert one_line_error(cli("tokens", "revoke", "nope")) == "error: no token with id 'nope'"

    def test_revoking_twice_exits_2(self, cli: Cli) -> None:
        created = as_json(cli("tokens", "create", "--name", "ci", "--json"))
        ok(cli("tokens", "revoke", created["id"]))
        assert "already revoked" in one_line_error(cli("tokens", "revoke", created["id"]))

    def test_unknown_scope_is_a_one_line_usage_error(self, cli: Cli) -> None:
        line = one_line_error(cli("tokens", "create", "--name", "ci", "--scope", "root"))
        assert "scope" in line


class TestDb:
    def test_current_on_a_new_home_is_none_until_upgraded(self, cli: Cli) -> None:
        assert as_json(cli("db", "current", "--json"))["revision"] is None
        assert "run 'modelplane db upgrade'" in ok(cli("db", "current")).stdout
        upgraded = as_json(cli("db", "upgrade", "--json"))
        assert upgraded["revision"] == upgraded["head"]
        assert ok(cli("db", "current")).stdout == f"{upgraded['head']} (head)\n"

    def test_upgrade_twice_does_nothing_the_second_time(self, cli: Cli) -> None:
        first = ok(cli("db", "upgrade")).stdout
        assert first.startswith("database at revision ")
        assert ok(cli("db", "upgrade")).stdout == first


class TestGlobal:
    def test_version_option_and_command(self, cli: Cli) -> None:
        from modelplane import __version__

        assert ok(cli("--version")).stdout == f"modelplane {__version__}\n"
        assert ok(cli("version")).stdout == f"modelplane {__version__}\n"
        assert as_json(cli("version", "--json")) == {"version": __version__}

    def test_home_option_overrides_the_environment(
        self, cli: Cli, skops_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MODELPLANE_HOME", str(tmp_path / "elsewhere"))
        register(cli, skops_file)
        assert not (tmp_path / "elsewhere").exists()
        runner = CliRunner()
        from_env = json.loads(ok(runner.invoke(app, ["models", "list", "--json"])).stdout)
        assert from_env["models"] == []

    @pytest.mark.parametrize(
        "args",
        [
            ("models", "frobnicate"),
            ("models", "show"),
            ("models", "version", "fraud", "two"),
            ("models", "version", "fraud", "0"),
            ("models", "list", "--no-such-option"),
            ("alias", "set", "fraud", "champion"),
        ],
    )
    def test_usage_errors_exit_2_with_one_line(self, cli: Cli, args: tuple[str, ...]) -> None:
        line = one_line_error(cli(*args))
        assert "--help" in line

    def test_no_command_prints_the_help(self, cli: Cli) -> None:
        result = cli("models")
        assert result.exit_code == 2
        assert "register" in result.stdout

    def test_serve_has_help_with_host_and_port(self, cli: Cli) -> None:
        out = ok(cli("serve", "--help")).stdout
        assert "--host" in out
        assert "--port" in out

    def test_every_command_that_prints_data_accepts_json(self) -> None:
        from typer.main import get_command

        root = get_command(app)
        missing = []
        for group_name in ("models", "alias", "events", "tokens", "db"):
            group = root.commands[group_name]  # type: ignore[attr-defined]
            for name, command in group.commands.items():
                if "--json" not in [o for p in command.params for o in p.opts]:
                    missing.append(f"{group_name} {name}")
        assert missing == []


class TestArtifactsGc:
    def test_gc_removes_what_a_refused_registration_left_and_keeps_the_rest(
        self, cli: Cli, skops_file: Path, tmp_path: Path
    ) -> None:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        from modelplane.runtimes import save_model

        kept = as_json(cli("models", "register", "fraud", str(skops_file), "--json"))
        x = np.arange(40, dtype=float).reshape(20, 2)
        other = save_model(LogisticRegression().fit(x, (x[:, 0] > 20).astype(int)), tmp_path).path
        # Stored, then refused by the registry: its artifact stays behind until collected.
        one_line_error(cli("models", "register", "fraud", str(other), "--parent-version", "9"))
        assert as_json(cli("artifacts", "gc", "--json"))["digests"] == []  # still young
        plan = as_json(cli("artifacts", "gc", "--older-than", "0", "--dry-run", "--json"))
        assert len(plan["digests"]) == 1
        assert plan["digests"][0] != kept["digest"]
        done = as_json(cli("artifacts", "gc", "--older-than", "0", "--json"))
        assert done["digests"] == plan["digests"]
        assert as_json(cli("artifacts", "gc", "--older-than", "0", "--json"))["digests"] == []
        ok(cli("models", "version", "fraud", "1"))

    def test_bad_option_exits_2_with_one_line(self, cli: Cli) -> None:
        one_line_error(cli("artifacts", "gc", "--older-than", "-1"))


class TestUntag:
    def test_untag_removes_a_version_tag_and_a_missing_one_exits_2(
        self, cli: Cli, skops_file: Path
    ) -> None:
        ok(cli("models", "register", "fraud", str(skops_file), "--tag", "stage=dev"))
        ok(cli("models", "untag", "fraud", "stage", "--version", "1"))
        assert as_json(cli("models", "version", "fraud", "1", "--json"))["tags"] == {}
        one_line_error(cli("models", "untag", "fraud", "stage", "--version", "1"))
