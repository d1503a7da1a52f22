"""Safe delivery over REST: experiments, canary rollouts and blue-green deploys, end to end.

Requests go through the real app (``create_app``) with real bearer tokens. Live traffic is
simulated the way serving replicas record it (:class:`LiveStats` deltas added to the shared
counters). Every refusal must be the JSON error shape with the right status and code, and must
change nothing: no row, no event, the aliases as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.traffic.commands import RecordTrafficCounters
from modelplane.traffic.live import LiveStats
from modelplane.traffic.model import rollout_subject
from tests.e2e.test_api import V1, Api, assert_error, open_api, register_versions

EXPERIMENT_KEYS = {
    "name",
    "model",
    "kind",
    "status",
    "variants",
    "metric",
    "mde",
    "alpha",
    "power",
    "bandit",
    "shadow_percent",
    "subject",
    "created_at",
    "started_at",
    "stopped_at",
}
ROLLOUT_KEYS = {
    "rollout",
    "id",
    "model",
    "baseline",
    "candidate",
    "steps",
    "step",
    "weight",
    "status",
    "reason",
    "forced",
    "step_duration_s",
    "min_requests",
    "max_error_rate",
    "max_latency_ratio",
    "alpha",
    "created_at",
    "updated_at",
    "step_started_at",
}
DEPLOYMENT_KEYS = {
    "deployment",
    "id",
    "model",
    "blue",
    "green",
    "status",
    "forced",
    "keep_until",
    "created_at",
    "updated_at",
}
SPLIT = {
    "name": "ab1",
    "model": "fraud",
    "variants": [
        {"name": "a", "version": 1, "weight": 50},
        {"name": "b", "version": "fraud/2", "weight": 50},
    ],
}


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
def mp(platform: Platform) -> Client:
    """fraud v1 (champion), v2 and v3 (gated), v4 (never gated); other v1."""
    client = Client(platform=platform)
    register_versions(platform, "fraud", 4)
    register_versions(platform, "other", 1)
    client.set_alias("fraud", "champion", 1)
    for version in (1, 2, 3):
        client.record_gate_result("fraud", version, passed=True, checks={"signature": True})
    return client


def snapshot(platform: Platform) -> dict[str, Any]:
    """Everything a delivery command could change."""
    traffic = platform.traffic
    return {
        "events": [e.event_id for e in platform.events.list_events(limit=1000).items],
        "experiments": [(e.name, e.status) for e in traffic.list_experiments()],
        "rollouts": [(r.key, r.status, r.step_index) for r in traffic.list_rollouts()],
        "deployments": [(d.key, d.status) for d in traffic.list_deployments()],
        "aliases": platform.registry.get_model("fraud").aliases,
    }


def event_types(platform: Platform) -> list[str]:
    return [e.type for e in platform.events.list_events(limit=1000).items]


def traffic(
    platform: Platform,
    subject: str,
    variant: str,
    *,
    requests: int,
    errors: int = 0,
    outcomes: tuple[int, int] | None = None,
) -> None:
    """``requests`` routed requests (``errors`` failed) and ``outcomes`` = (n, correct)."""
    live = LiveStats()
    for i in range(requests):
        live.request(subject, variant, 5.0, ok=i >= errors)
    if outcomes is not None:
        n, correct = outcomes
        for i in range(n):
            live.outcome(subject, variant, 1.0 if i < correct else 0.0)
    platform.bus.handle(RecordTrafficCounters(live.drain()))


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


# -- the document ----------------------------------------------------------------------------
class TestOpenApi:
    def test_document_lists_the_delivery_routes_under_their_tag(self, api: Api) -> None:
        doc = ok(api.get("/openapi.json"))
        expected = {
            f"{V1}/experiments": {"get", "post"},
            f"{V1}/experiments/{{name}}": {"get"},
            f"{V1}/experiments/{{name}}/start": {"post"},
            f"{V1}/experiments/{{name}}/pause": {"post"},
            f"{V1}/experiments/{{name}}/stop": {"post"},
            f"{V1}/experiments/{{name}}/report": {"get"},
            f"{V1}/models/{{name}}/rollouts": {"post"},
            f"{V1}/rollouts": {"get"},
            f"{V1}/models/{{name}}/rollout": {"get"},
            f"{V1}/models/{{name}}/rollout/promote": {"post"},
            f"{V1}/models/{{name}}/rollout/abort": {"post"},
            f"{V1}/models/{{name}}/deployments": {"post"},
            f"{V1}/models/{{name}}/deployments/rollback": {"post"},
            f"{V1}/deployments": {"get"},
        }
        for path, methods in expected.items():
            assert set(doc["paths"][path]) == methods, path
            for method in methods:
                assert doc["paths"][path][method]["tags"] == ["delivery"]
        assert "HTTPValidationError" not in doc["components"]["schemas"]
        assert (
            "gate_blocked"
            in doc["paths"][f"{V1}/models/{{name}}/deployments"]["post"]["description"]
        )
        assert "admin" in doc["info"]["description"]


# -- experiments -----------------------------------------------------------------------------
class TestExperiments:
    def test_full_lifecycle_with_report(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        response = api.post(f"{V1}/experiments", json=SPLIT, token=admin)
        experiment = created(response)
        assert set(experiment) == EXPERIMENT_KEYS
        assert response.headers["location"] == f"{V1}/experiments/ab1"
        assert experiment["status"] == "draft"
        assert experiment["kind"] == "split"
        assert experiment["variants"] == [
            {"name": "a", "version": 1, "weight": 50.0},
            {"name": "b", "version": 2, "weight": 50.0},
        ]
        assert experiment["subject"] == "experiment:ab1"
        assert ok(api.get(f"{V1}/experiments/ab1")) == experiment

        started = ok(api.post(f"{V1}/experiments/ab1/start", token=admin))
        assert started["status"] == "running"
        assert started["started_at"] is not None
        listed = ok(api.get(f"{V1}/experiments", params={"model": "fraud", "status": "running"}))
        assert [e["name"] for e in listed["experiments"]] == ["ab1"]
        assert ok(api.get(f"{V1}/experiments", params={"status": "draft"}))["experiments"] == []
        assert ok(api.get(f"{V1}/experiments", params={"model": "other"}))["experiments"] == []

        traffic(platform, "experiment:ab1", "a", requests=400, outcomes=(400, 280))
        traffic(platform, "experiment:ab1", "b", requests=400, errors=4, outcomes=(400, 340))
        report = ok(api.get(f"{V1}/experiments/ab1/report"))
        assert report["experiment"] == "ab1"
        assert report["control"] == "a"
        by_name = {v["name"]: v for v in report["variants"]}
        assert by_name["a"]["requests"] == 400
        assert by_name["b"]["errors"] == 4
        assert by_name["a"]["outcome_n"] == 400
        assert by_name["b"]["value"] == pytest.approx(0.85)
        assert [c["variant"] for c in report["comparisons"]] == ["b"]
        assert report["summary"]

        assert ok(api.post(f"{V1}/experiments/ab1/pause", token=admin))["status"] == "paused"
        assert ok(api.post(f"{V1}/experiments/ab1/start", token=admin))["status"] == "running"
        stopped = ok(api.post(f"{V1}/experiments/ab1/stop", token=admin))
        assert stopped["status"] == "stopped"
        assert stopped["stopped_at"] is not None
        assert ok(api.post(f"{V1}/experiments/ab1/stop", token=admin)) == stopped  # a no-op
        assert ok(api.get(f"{V1}/experiments/ab1/report"))["status"] == "stopped"

        before = snapshot(platform)
        assert_error(api.post(f"{V1}/experiments/ab1/start", token=admin), 409, "conflict")
        assert snapshot(platform) == before
        assert [t for t in event_types(platform) if t.startswith("Experiment")] == [
            "ExperimentCreated",
            "ExperimentStarted",
            "ExperimentPaused",
            "ExperimentStarted",
            "ExperimentStopped",
        ]

    def test_shadow_by_alias_reference_and_its_report(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        mp.set_alias("fraud", "challenger", 2)
        body = {
            "name": "sh1",
            "model": "fraud",
            "kind": "shadow",
            "candidate": "fraud@challenger",
            "percent": 20,
        }
        shadow = created(api.post(f"{V1}/experiments", json=body, token=admin))
        assert shadow["kind"] == "shadow"
        assert shadow["shadow_percent"] == 20.0
        assert shadow["variants"] == [{"name": "shadow", "version": 2, "weight": 100.0}]
        assert ok(api.post(f"{V1}/experiments/sh1/start", token=admin))["status"] == "running"
        report = ok(api.get(f"{V1}/experiments/sh1/report"))
        assert report["kind"] == "shadow"
        assert report["variants"][0]["shadow"] is not None

    def test_a_bandit_with_reward_metric_is_created(self, api: Api, mp: Client, admin: str) -> None:
        body = SPLIT | {"name": "band", "metric": "reward", "bandit": True, "alpha": 0.01}
        experiment = created(api.post(f"{V1}/experiments", json=body, token=admin))
        assert (experiment["bandit"], experiment["metric"], experiment["alpha"]) == (
            True,
            "reward",
            0.01,
        )

    @pytest.mark.parametrize(
        ("change", "status", "code", "field"),
        [
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": 99, "weight": 50},
                    ]
                },
                404,
                "version_not_found",
                "version",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": "fraud/99", "weight": 50},
                    ]
                },
                404,
                "version_not_found",
                None,
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": "other/1", "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "body.variants[1].version",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": "99999999999", "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "body.variants[1].version",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": 2, "weight": 40},
                    ]
                },
                422,
                "invalid_input",
                "variants.weight",
            ),
            (
                {"variants": [{"name": "a", "version": 1, "weight": 100}]},
                422,
                "invalid_input",
                "variants",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "a", "version": 2, "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "body.variants[1].name",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": 50},
                        {"name": "b", "version": 1, "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "variants",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1, "weight": "half"},
                        {"name": "b", "version": 2, "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "body.variants[0].weight",
            ),
            (
                {
                    "variants": [
                        {"name": "a", "version": 1.5, "weight": 50},
                        {"name": "b", "version": 2, "weight": 50},
                    ]
                },
                422,
                "invalid_input",
                "body.variants[0].version",
            ),
            (
                {
                    "variants": [
                        {"name": "A B", "version": 1, "weight": 50},
                        {"name": "b", "version": 2, "weight": 50},
                    ]
                },
                422,
                "invalid_name",
                "variant",
            ),
            ({"variants": []}, 422, "invalid_input", "body.variants"),
            ({"variants": None}, 422, "invalid_input", "body.variants"),
            ({"percent": 20}, 422, "invalid_input", "body.percent"),
            ({"candidate": 2}, 422, "invalid_input", "body.candidate"),
            ({"kind": "shadow"}, 422, "invalid_input", "body.variants"),
            ({"kind": "shadow", "variants": None}, 422, "invalid_input", "body.candidate"),
            ({"kind": "canary"}, 422, "invalid_input", "body.kind"),
            ({"model": "ghost"}, 404, "model_not_found", "body.model"),
            ({"model": "Not Valid"}, 422, "invalid_name", "body.model"),
            ({"name": "Bad Name"}, 422, "invalid_name", "body.name"),
            ({"metric": "auc"}, 422, "invalid_input", "body.metric"),
            ({"alpha": 0.9}, 422, "invalid_input", "alpha"),
            ({"mde": 0}, 422, "invalid_input", "mde"),
            ({"power": "high"}, 422, "invalid_input", "body.power"),
            ({"colour": "red"}, 422, "invalid_input", "body.colour"),
            ({"name": "x\x00"}, 422, "invalid_input", "body"),
        ],
    )
    def test_bad_input_is_refused_and_changes_nothing(
        self,
        api: Api,
        platform: Platform,
        mp: Client,
        admin: str,
        change: dict[str, Any],
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        before = snapshot(platform)
        body = {k: v for k, v in (SPLIT | change).items() if v is not None}
        response = api.post(f"{V1}/experiments", json=body, token=admin)
        assert_error(response, status, code, field)
        assert snapshot(platform) == before

    def test_a_taken_name_is_409_and_changes_nothing(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/experiments", json=SPLIT, token=admin))
        before = snapshot(platform)
        assert_error(
            api.post(f"{V1}/experiments", json=SPLIT, token=admin), 409, "conflict", "name"
        )
        assert snapshot(platform) == before

    def test_a_second_split_cannot_start_while_one_routes_the_model(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/experiments", json=SPLIT, token=admin))
        created(api.post(f"{V1}/experiments", json=SPLIT | {"name": "ab2"}, token=admin))
        ok(api.post(f"{V1}/experiments/ab1/start", token=admin))
        before = snapshot(platform)
        assert_error(api.post(f"{V1}/experiments/ab2/start", token=admin), 409, "conflict", "model")
        assert_error(
            api.post(f"{V1}/experiments/ab2/pause", token=admin), 409, "conflict", "status"
        )
        assert snapshot(platform) == before

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/experiments/ghost"),
            ("GET", "/experiments/ghost/report"),
            ("POST", "/experiments/ghost/start"),
            ("POST", "/experiments/ghost/pause"),
            ("POST", "/experiments/ghost/stop"),
        ],
    )
    def test_unknown_experiment_is_404(
        self, api: Api, platform: Platform, mp: Client, admin: str, method: str, path: str
    ) -> None:
        before = snapshot(platform)
        response = api.request(method, f"{V1}{path}", token=admin)
        assert_error(response, 404, "experiment_not_found", "name")
        assert snapshot(platform) == before

    @pytest.mark.parametrize(
        ("params", "field"),
        [({"status": "done"}, "query.status"), ({"model": "Not Valid"}, "query.model")],
    )
    def test_bad_list_filter_is_422(self, api: Api, params: dict[str, str], field: str) -> None:
        response = api.get(f"{V1}/experiments", params=params)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field

    def test_invalid_name_in_the_path_is_422(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/experiments/Not%20Valid"), 422, "invalid_name", "name")

    @pytest.mark.parametrize(
        ("content", "headers"),
        [(b'{"name": ', {"content-type": "application/json"}), (b"name=ab1", {})],
    )
    def test_malformed_body_is_400(
        self,
        api: Api,
        platform: Platform,
        mp: Client,
        admin: str,
        content: bytes,
        headers: dict[str, str],
    ) -> None:
        before = snapshot(platform)
        response = api.post(f"{V1}/experiments", content=content, headers=headers, token=admin)
        assert_error(response, 400, "malformed_request", "body")
        assert snapshot(platform) == before

    def test_a_json_array_body_is_422(self, api: Api, mp: Client, admin: str) -> None:
        assert_error(api.post(f"{V1}/experiments", json=[SPLIT], token=admin), 422, "invalid_input")


# -- canary rollouts -------------------------------------------------------------------------
class TestRollouts:
    def test_start_status_promote(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        body = {"candidate": 2, "steps": [10, 100], "step_duration_s": 0, "min_requests": 50}
        response = api.post(f"{V1}/models/fraud/rollouts", json=body, token=admin)
        rollout = created(response)
        assert set(rollout) == ROLLOUT_KEYS
        assert response.headers["location"] == f"{V1}/models/fraud/rollout"
        assert (rollout["status"], rollout["baseline"], rollout["candidate"]) == ("running", 1, 2)
        assert (rollout["weight"], rollout["steps"], rollout["forced"]) == (10, [10, 100], False)

        status = ok(api.get(f"{V1}/models/fraud/rollout"))
        assert set(status) == ROLLOUT_KEYS | {"step_counters", "totals", "next_decision"}
        assert status["next_decision"]["action"] == "hold"
        assert status["step_counters"]["candidate"]["requests"] == 0

        subject = rollout_subject(rollout["id"], 0)
        traffic(platform, subject, "candidate", requests=80)
        traffic(platform, subject, "baseline", requests=700)
        status = ok(api.get(f"{V1}/models/fraud/rollout"))
        assert status["step_counters"]["candidate"]["requests"] == 80
        assert status["totals"]["baseline"]["requests"] == 700
        assert status["next_decision"]["action"] == "advance"
        assert snapshot(platform)["rollouts"][0][1:] == ("running", 0)  # status never acts

        listed = ok(api.get(f"{V1}/rollouts", params={"model": "fraud", "status": "running"}))
        assert [r["rollout"] for r in listed["rollouts"]] == [rollout["rollout"]]

        promoted = ok(
            api.post(
                f"{V1}/models/fraud/rollout/promote", json={"reason": "ops say go"}, token=admin
            )
        )
        assert (promoted["status"], promoted["reason"]) == ("promoted", "ops say go")
        assert mp.get_model("fraud").aliases["champion"] == 2
        final = ok(api.get(f"{V1}/models/fraud/rollout"))
        assert final["status"] == "promoted"
        assert final["next_decision"] is None
        events = platform.events.list_events(type="CanaryPromoted").items
        assert [e.payload["manual"] for e in events] == [True]
        assert ok(api.get(f"{V1}/rollouts", params={"status": "running"}))["rollouts"] == []

    def test_start_and_abort(self, api: Api, platform: Platform, mp: Client, admin: str) -> None:
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": "fraud/3"}, token=admin))
        aborted = ok(
            api.post(f"{V1}/models/fraud/rollout/abort", json={"reason": "pager"}, token=admin)
        )
        assert (aborted["status"], aborted["reason"], aborted["weight"]) == ("aborted", "pager", 0)
        assert mp.get_model("fraud").aliases["champion"] == 1
        before = snapshot(platform)
        for action in ("abort", "promote"):
            response = api.post(f"{V1}/models/fraud/rollout/{action}", token=admin)
            assert_error(response, 404, "rollout_not_found", "model")
        assert snapshot(platform) == before

    def test_promote_and_abort_without_a_body_use_the_default_reason(
        self, api: Api, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        assert ok(api.post(f"{V1}/models/fraud/rollout/abort", token=admin))["reason"] == (
            "aborted by hand"
        )
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        promoted = ok(api.post(f"{V1}/models/fraud/rollout/promote", json={}, token=admin))
        assert promoted["reason"] == "promoted by hand"

    def test_a_second_rollout_is_409_and_changes_nothing(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        before = snapshot(platform)
        response = api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 3}, token=admin)
        assert_error(response, 409, "conflict", "model")
        assert snapshot(platform) == before

    def test_an_ungated_candidate_is_409_gate_blocked_unless_forced(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        before = snapshot(platform)
        response = api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 4}, token=admin)
        error = assert_error(response, 409, "gate_blocked", "version")
        assert "gate" in error["message"]
        assert snapshot(platform) == before
        forced = created(
            api.post(
                f"{V1}/models/fraud/rollouts", json={"candidate": 4, "force": True}, token=admin
            )
        )
        assert forced["forced"] is True

    @pytest.mark.parametrize(
        ("model", "body", "status", "code", "field"),
        [
            ("fraud", {"candidate": 99}, 404, "version_not_found", "version"),
            ("fraud", {"candidate": "fraud@ghost"}, 404, "alias_not_found", None),
            ("fraud", {"candidate": "other/1"}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": 0}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": 2**40}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": True}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": ""}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": 1}, 422, "invalid_input", "candidate"),
            ("fraud", {"candidate": 2, "steps": [5, 3, 100]}, 422, "invalid_input", "steps"),
            ("fraud", {"candidate": 2, "steps": [5, 50]}, 422, "invalid_input", "steps"),
            ("fraud", {"candidate": 2, "steps": []}, 422, "invalid_input", "body.steps"),
            ("fraud", {"candidate": 2, "steps": "5,100"}, 422, "invalid_input", "body.steps"),
            (
                "fraud",
                {"candidate": 2, "step_duration_s": -1},
                422,
                "invalid_input",
                "body.step_duration_s",
            ),
            (
                "fraud",
                {"candidate": 2, "step_duration_s": 1e300},
                422,
                "invalid_input",
                "body.step_duration_s",
            ),
            (
                "fraud",
                {"candidate": 2, "min_requests": 0},
                422,
                "invalid_input",
                "body.min_requests",
            ),
            (
                "fraud",
                {"candidate": 2, "min_requests": 2**40},
                422,
                "invalid_input",
                "body.min_requests",
            ),
            (
                "fraud",
                {"candidate": 2, "max_error_rate": 1.5},
                422,
                "invalid_input",
                "max_error_rate",
            ),
            (
                "fraud",
                {"candidate": 2, "max_latency_ratio": 0.5},
                422,
                "invalid_input",
                "max_latency_ratio",
            ),
            ("fraud", {"candidate": 2, "alpha": 0.7}, 422, "invalid_input", "alpha"),
            ("fraud", {"steps": [100]}, 422, "invalid_input", "body.candidate"),
            ("fraud", {"candidate": 2, "wait": True}, 422, "invalid_input", "body.wait"),
            ("ghost", {"candidate": 2}, 404, "model_not_found", "name"),
            ("Not%20Valid", {"candidate": 2}, 422, "invalid_name", "name"),
        ],
    )
    def test_bad_start_is_refused_and_changes_nothing(
        self,
        api: Api,
        platform: Platform,
        mp: Client,
        admin: str,
        model: str,
        body: dict[str, Any],
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        before = snapshot(platform)
        response = api.post(f"{V1}/models/{model}/rollouts", json=body, token=admin)
        assert_error(response, status, code, field)
        assert snapshot(platform) == before

    def test_a_model_without_a_champion_cannot_start_a_rollout(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        mp.record_gate_result("other", 1, passed=True)
        register_versions(platform, "other", 1)
        mp.record_gate_result("other", 2, passed=True)
        before = snapshot(platform)
        response = api.post(f"{V1}/models/other/rollouts", json={"candidate": 2}, token=admin)
        assert_error(response, 409, "conflict", "model")
        assert snapshot(platform) == before

    def test_status_of_a_model_without_rollouts_is_404(self, api: Api, mp: Client) -> None:
        assert_error(api.get(f"{V1}/models/fraud/rollout"), 404, "rollout_not_found")
        assert_error(api.get(f"{V1}/models/ghost/rollout"), 404, "model_not_found")

    def test_bad_rollout_list_filters_are_422(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/rollouts?status=done"), 422, "invalid_input", "query.status")
        assert_error(api.get(f"{V1}/rollouts?limit=0"), 422, "invalid_input", "query.limit")

    def test_promote_reason_must_be_text(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        before = snapshot(platform)
        for body in ({"reason": 5}, {"reason": ""}, {"why": "x"}, [1]):
            response = api.post(f"{V1}/models/fraud/rollout/promote", json=body, token=admin)
            assert response.status_code == 422, (body, response.text)
        assert snapshot(platform) == before


# -- blue-green deploys ----------------------------------------------------------------------
class TestDeployments:
    def test_deploy_list_and_roll_back(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        deployment = created(
            api.post(
                f"{V1}/models/fraud/deployments",
                json={"version": "fraud/2", "keep_blue_s": 60},
                token=admin,
            )
        )
        assert set(deployment) == DEPLOYMENT_KEYS
        assert (deployment["blue"], deployment["green"], deployment["status"]) == (1, 2, "switched")
        assert deployment["forced"] is False
        assert mp.get_model("fraud").aliases["champion"] == 2
        listed = ok(api.get(f"{V1}/deployments", params={"model": "fraud"}))["deployments"]
        assert [d["deployment"] for d in listed] == [deployment["deployment"]]
        assert ok(api.get(f"{V1}/deployments", params={"model": "other"}))["deployments"] == []

        rolled = ok(api.post(f"{V1}/models/fraud/deployments/rollback", token=admin))
        assert (rolled["status"], rolled["deployment"]) == ("rolled_back", deployment["deployment"])
        assert mp.get_model("fraud").aliases["champion"] == 1
        assert [t for t in event_types(platform) if t.startswith("Deployment")] == [
            "DeploymentSwitched",
            "DeploymentRolledBack",
        ]

        before = snapshot(platform)
        response = api.post(f"{V1}/models/fraud/deployments/rollback", token=admin)
        assert_error(response, 409, "conflict", "model")
        assert snapshot(platform) == before

    def test_an_ungated_version_is_409_gate_blocked_unless_forced(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        before = snapshot(platform)
        response = api.post(f"{V1}/models/fraud/deployments", json={"version": 4}, token=admin)
        assert_error(response, 409, "gate_blocked", "version")
        assert snapshot(platform) == before
        forced = created(
            api.post(
                f"{V1}/models/fraud/deployments", json={"version": 4, "force": True}, token=admin
            )
        )
        assert forced["forced"] is True
        assert mp.get_model("fraud").aliases["champion"] == 4

    def test_deploy_while_a_rollout_runs_is_409(
        self, api: Api, platform: Platform, mp: Client, admin: str
    ) -> None:
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        before = snapshot(platform)
        response = api.post(f"{V1}/models/fraud/deployments", json={"version": 3}, token=admin)
        assert_error(response, 409, "conflict", "model")
        assert snapshot(platform) == before

    @pytest.mark.parametrize(
        ("model", "body", "status", "code", "field"),
        [
            ("fraud", {"version": 1}, 409, "conflict", "version"),
            ("fraud", {"version": 99}, 404, "version_not_found", "version"),
            ("fraud", {"version": "other/1"}, 422, "invalid_input", "body.version"),
            ("fraud", {"version": 2, "keep_blue_s": -1}, 422, "invalid_input", "body.keep_blue_s"),
            (
                "fraud",
                {"version": 2, "keep_blue_s": 1e300},
                422,
                "invalid_input",
                "body.keep_blue_s",
            ),
            ("fraud", {"version": 2, "strategy": "canary"}, 422, "invalid_input", "body.strategy"),
            ("fraud", {}, 422, "invalid_input", "body.version"),
            ("ghost", {"version": 1}, 404, "model_not_found", "name"),
        ],
    )
    def test_bad_deploy_is_refused_and_changes_nothing(
        self,
        api: Api,
        platform: Platform,
        mp: Client,
        admin: str,
        model: str,
        body: dict[str, Any],
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        before = snapshot(platform)
        response = api.post(f"{V1}/models/{model}/deployments", json=body, token=admin)
        assert_error(response, status, code, field)
        assert snapshot(platform) == before


# -- auth ------------------------------------------------------------------------------------
WRITES = [
    ("/experiments", SPLIT),
    ("/experiments/ab1/start", None),
    ("/experiments/ab1/pause", None),
    ("/experiments/ab1/stop", None),
    ("/models/fraud/rollouts", {"candidate": 2}),
    ("/models/fraud/rollout/promote", None),
    ("/models/fraud/rollout/abort", None),
    ("/models/fraud/deployments", {"version": 2}),
    ("/models/fraud/deployments/rollback", None),
]
READS = [
    "/experiments",
    "/experiments/ab1",
    "/experiments/ab1/report",
    "/rollouts",
    "/models/fraud/rollout",
    "/deployments",
]


class TestAuth:
    @pytest.mark.parametrize(("path", "body"), WRITES)
    def test_writes_need_an_admin_token(
        self,
        api: Api,
        platform: Platform,
        mp: Client,
        tokens: dict[str, str],
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        created(api.post(f"{V1}/experiments", json=SPLIT | {"name": "ab1"}, token=tokens["admin"]))
        before = snapshot(platform)
        response = api.post(f"{V1}{path}", json=body)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(api.post(f"{V1}{path}", json=body, token="mp_nope_nope"), 401, "unauthorized")
        for scope in ("read", "write"):
            response = api.post(f"{V1}{path}", json=body, token=tokens[scope])
            assert_error(response, 403, "forbidden")
        assert snapshot(platform) == before

    def test_reads_are_open_by_default(self, api: Api, mp: Client, admin: str) -> None:
        created(api.post(f"{V1}/experiments", json=SPLIT, token=admin))
        created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
        for path in READS:
            assert api.get(f"{V1}{path}").status_code == 200, path

    def test_require_auth_makes_reads_need_a_token(self, settings: Settings) -> None:
        platform = bootstrap(
            Settings(home=settings.home, require_auth=True), raise_on_event_error=True
        )
        try:
            register_versions(platform, "fraud", 2)
            client = Client(platform=platform)
            client.set_alias("fraud", "champion", 1)
            client.record_gate_result("fraud", 2, passed=True)
            reader = platform.bus.handle(CreateToken(name="reader", scope="read")).secret
            admin = platform.bus.handle(CreateToken(name="admin", scope="admin")).secret
            for api in open_api(create_app(platform)):
                created(api.post(f"{V1}/experiments", json=SPLIT, token=admin))
                created(api.post(f"{V1}/models/fraud/rollouts", json={"candidate": 2}, token=admin))
                for path in READS:
                    assert_error(api.get(f"{V1}{path}"), 401, "unauthorized")
                    assert api.get(f"{V1}{path}", token=reader).status_code == 200, path
        finally:
            platform.close()
