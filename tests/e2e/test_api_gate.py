"""``POST /api/v1/models/{name}/versions/{version}/gate``: the release gates over REST.

The route runs the same use case as ``modelplane gate`` (``traffic.gating.evaluate_gates``), so
for the same model and holdout it returns the CLI's ``--json`` report and records the result on
the version the same way (tag ``modelplane.gate``, a ``GateEvaluated`` event). Only ``admin``
may run it; every bad setting is a 422 naming the field and records nothing. No latency check
runs here: its numbers are timings, and tests never depend on timing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.api import create_app
from modelplane.api.schemas_delivery import GateMetric
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.traffic.gates import METRICS
from tests.e2e.test_api import V1, Api, assert_error, open_api
from tests.e2e.test_cli_gate import FRAME, LABEL, run

SMOKE = [{"input": {"amount": 3.0, "hour": 0.0, "km": 3.0}, "expect": 1}]


def gate_url(ref: str) -> str:
    name, version = ref.split("/")
    return f"{V1}/models/{name}/versions/{version}/gate"


@pytest.fixture
def api(platform: Platform) -> Iterator[Api]:
    yield from open_api(create_app(platform))


@pytest.fixture
def tokens(platform: Platform) -> dict[str, str]:
    return {
        scope: platform.bus.handle(CreateToken(name=f"t-{scope}", scope=scope)).secret
        for scope in ("read", "write", "admin")
    }


@pytest.fixture
def admin(tokens: dict[str, str]) -> str:
    return tokens["admin"]


@pytest.fixture
def holdout(tmp_path: Path) -> Path:
    path = tmp_path / "holdout.csv"
    FRAME.assign(is_fraud=LABEL).to_csv(path, index=False)
    return path


@pytest.fixture
def mp(platform: Platform) -> Client:
    """fraud v1 (champion), v2 (as good), v3 (inverted: much worse) and v4 (archived)."""
    client = Client(platform=platform)
    good = LogisticRegression().fit(FRAME, LABEL)
    client.log_model(good, name="fraud", input_example=FRAME, alias="champion")
    client.log_model(good, name="fraud", input_example=FRAME)
    client.log_model(LogisticRegression().fit(FRAME, 1 - LABEL), name="fraud", input_example=FRAME)
    client.log_model(good, name="fraud", input_example=FRAME)
    client.archive_version("fraud", 4)
    return client


def gate_events(client: Client) -> list[dict[str, Any]]:
    return [e.payload for e in client.list_events(type="GateEvaluated").items]


def gate_tag(client: Client, version: int) -> str | None:
    return client.get_version("fraud", version).tags.get("modelplane.gate")


class TestSameAsTheCli:
    def test_the_report_and_the_record_are_the_cli_s(
        self, api: Api, admin: str, mp: Client, home: Path, holdout: Path, tmp_path: Path
    ) -> None:
        smoke = tmp_path / "smoke.json"
        smoke.write_text(json.dumps(SMOKE), encoding="utf-8")
        body = {"holdout": str(holdout), "label": "is_fraud", "margin": 0.01, "smoke": SMOKE}
        response = api.post(gate_url("fraud/2"), token=admin, json=body)
        assert response.status_code == 200, response.text
        cli = run(home, "gate", "fraud/2", "--holdout", str(holdout), "--label", "is_fraud",
                  "--margin", "0.01", "--smoke", str(smoke), "--json")  # fmt: skip
        assert cli.exit_code == 0, cli.stderr
        assert response.json() == json.loads(cli.stdout)
        assert response.json()["passed"] is True
        assert [c["name"] for c in response.json()["checks"]] == ["signature", "holdout", "smoke"]
        rest_event, cli_event = gate_events(mp)
        assert rest_event == cli_event
        assert gate_tag(mp, 2) == "passed"

    def test_a_failed_gate_is_a_200_saying_so_and_is_recorded_failed(
        self, api: Api, admin: str, mp: Client, home: Path, holdout: Path
    ) -> None:
        body = {"holdout": str(holdout), "label": "is_fraud", "margin": 0.01}
        response = api.post(gate_url("fraud/3"), token=admin, json=body)
        assert response.status_code == 200, response.text
        report = response.json()
        assert (report["passed"], report["forced"]) == (False, False)
        assert [c["name"] for c in report["checks"] if not c["passed"]] == ["holdout"]
        assert gate_tag(mp, 3) == "failed"
        cli = run(home, "gate", "fraud/3", "--holdout", str(holdout), "--label", "is_fraud",
                  "--margin", "0.01", "--json")  # fmt: skip
        assert cli.exit_code == 1
        assert json.loads(cli.stdout) == report
        rest_event, cli_event = gate_events(mp)
        assert rest_event == cli_event

    def test_force_lets_a_failed_version_through_as_the_cli_records_it(
        self, api: Api, admin: str, mp: Client, holdout: Path
    ) -> None:
        body = {"holdout": str(holdout), "label": "is_fraud", "force": True}
        response = api.post(gate_url("fraud/3"), token=admin, json=body)
        assert response.status_code == 200, response.text
        assert (response.json()["passed"], response.json()["forced"]) == (False, True)
        assert gate_tag(mp, 3) == "forced"
        assert gate_events(mp)[-1]["forced"] is True

    def test_saved_settings_are_the_cli_s_and_later_runs_use_them(
        self, api: Api, admin: str, mp: Client, home: Path, holdout: Path
    ) -> None:
        body = {"holdout": str(holdout), "label": "is_fraud", "save": True}
        assert api.post(gate_url("fraud/2"), token=admin, json=body).status_code == 200
        saved = json.loads(mp.get_model("fraud").tags["gate.config"])
        assert saved["holdout"] == str(holdout)
        assert saved["label"] == "is_fraud"
        again = api.post(gate_url("fraud/3"), token=admin)  # no body: the saved settings
        assert again.status_code == 200, again.text
        assert again.json()["passed"] is False
        assert run(home, "gate", "fraud/3").exit_code == 1  # the CLI reads the same settings

    def test_the_champion_itself_is_gated_without_a_champion_to_compare(
        self, api: Api, admin: str, mp: Client
    ) -> None:
        response = api.post(gate_url("fraud/1"), token=admin, json={"smoke": SMOKE})
        assert response.status_code == 200, response.text
        assert response.json()["champion"] is None
        assert response.json()["passed"] is True


class TestAccess:
    @pytest.mark.parametrize("scope", ["read", "write"])
    def test_below_admin_is_403_and_records_nothing(
        self, api: Api, tokens: dict[str, str], mp: Client, scope: str
    ) -> None:
        response = api.post(gate_url("fraud/2"), token=tokens[scope], json={"smoke": SMOKE})
        assert_error(response, 403, "forbidden")
        assert gate_events(mp) == []

    def test_no_token_is_401_and_records_nothing(self, api: Api, mp: Client) -> None:
        response = api.post(gate_url("fraud/2"), json={"smoke": SMOKE})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert gate_events(mp) == []


class TestRefusals:
    def test_an_unknown_version_is_404(self, api: Api, admin: str, mp: Client) -> None:
        assert_error(api.post(gate_url("fraud/9"), token=admin), 404, "version_not_found")

    def test_an_unknown_model_is_404(self, api: Api, admin: str, mp: Client) -> None:
        assert_error(api.post(gate_url("nope/1"), token=admin), 404, "model_not_found")

    def test_an_archived_version_is_409_and_is_not_recorded(
        self, api: Api, admin: str, mp: Client
    ) -> None:
        response = api.post(gate_url("fraud/4"), token=admin, json={"smoke": SMOKE})
        assert_error(response, 409, "conflict", "version")
        assert gate_tag(mp, 4) is None
        assert gate_events(mp) == []

    def test_the_cli_refuses_an_archived_version_the_same_way(self, mp: Client, home: Path) -> None:
        result = run(home, "gate", "fraud/4", "--json")
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert "archived" in result.stderr
        assert gate_events(mp) == []

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"metric": "auc"}, "body.metric"),
            ({"margin": -0.1}, "body.margin"),
            ({"latency_budget_ms": 0}, "body.latency_budget_ms"),
            ({"label": ""}, "body.label"),
            ({"label": "is_fraud"}, "body.label"),  # a label needs a holdout (none is saved)
            ({"holdout": "holdout.csv"}, "body.holdout"),  # relative: to what?
            ({"holdout": "https://example.com/holdout.csv"}, "body.holdout"),
            ({"holdout": "/nowhere/holdout.csv"}, "body.holdout"),
            ({"smoke": [{"input": [1.0], "min": 0.9, "max": 0.1}]}, "body.smoke[0].min"),
            ({"smoke": [{"input": [1.0], "typo": 1}]}, "body.smoke[0].typo"),
            ({"force": "yes please"}, "body.force"),
            ({"holdot": "/x.csv"}, "body.holdot"),
        ],
    )
    def test_a_bad_setting_is_422_naming_the_field_and_changes_nothing(
        self, api: Api, admin: str, mp: Client, body: dict[str, Any], field: str
    ) -> None:
        response = api.post(gate_url("fraud/2"), token=admin, json={**body, "save": True})
        assert_error(response, 422, "invalid_input", field)
        assert gate_tag(mp, 2) is None
        assert gate_events(mp) == []
        assert "gate.config" not in mp.get_model("fraud").tags

    @pytest.mark.parametrize("kind", ["folder", "suffix", "fifo"])
    def test_a_holdout_that_is_not_a_readable_data_file_is_422(
        self, api: Api, admin: str, mp: Client, tmp_path: Path, kind: str
    ) -> None:
        import os

        path = {"folder": tmp_path / "data.csv", "suffix": tmp_path / "data.json",
                "fifo": tmp_path / "pipe.csv"}[kind]  # fmt: skip
        if kind == "folder":
            path.mkdir()
        elif kind == "suffix":
            path.write_text("{}", encoding="utf-8")
        else:
            os.mkfifo(path)  # reading it would block the server's thread forever
        response = api.post(gate_url("fraud/2"), token=admin, json={"holdout": str(path)})
        assert_error(response, 422, "invalid_input", "body.holdout")
        assert gate_events(mp) == []


def test_the_documented_metrics_are_the_gates_own() -> None:
    assert set(get_args(GateMetric)) == set(METRICS)
