"""``POST /feedback`` is no open door into delivery decisions.

It follows /predict's authentication, refuses values that are not finite or out of range (422
naming the field), refuses a second outcome for a request (409) unless an overwrite is asked
for — and then records it — and the experiment report keeps outcomes of request ids nobody
served apart from the arms'. The store's rules run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.errors import Conflict
from modelplane.serving.delivery import LABEL_LIMIT, REWARD_LIMIT, TrafficRouter
from modelplane.serving.options import ServeOptions
from modelplane.traffic.commands import RecordFeedback
from modelplane.traffic.outcomes import match_feedback
from modelplane.traffic.report import report_of
from tests.e2e import harness

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(8)
X = RNG.normal(size=(100, 4))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


def options() -> ServeOptions:
    return ServeOptions(grpc_port=None, poll_interval_s=3600, access_log=False,
                        controller=False, stats_flush_s=3600)  # fmt: skip


class serve(harness.serve):
    def __init__(self, platform: Platform) -> None:
        super().__init__(platform, options())

    @property
    def router(self) -> TrafficRouter:
        router = self.app.state.serving.service.router
        assert router is not None
        return router


@pytest.fixture
def experiment(client: Client) -> Client:
    """``clf`` v1 and v2 (both gated) split 50/50 by experiment ``acc``."""
    client.log_model(LogisticRegression().fit(X, Y), name="clf", input_example=X,
                     alias="champion")  # fmt: skip
    client.log_model(LogisticRegression(C=0.01).fit(X, Y), name="clf", input_example=X)
    for v in (1, 2):
        client.record_gate_result("clf", v, passed=True)
    client.create_experiment("acc", "clf", {"a": (1, 50.0), "b": (2, 50.0)})
    client.experiment_action("acc", "start")
    return client


@pytest.fixture
async def http(platform: Platform, experiment: Client) -> AsyncIterator[httpx.AsyncClient]:
    server = serve(platform)
    async with server as client:
        await server.router.refresh()
        yield client


async def predicted(http: httpx.AsyncClient, i: int) -> dict[str, Any]:
    r = await http.post("/predict", json={"model": "clf", "unit_id": f"u{i}",
                                          "inputs": X[i : i + 1].tolist()})  # fmt: skip
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def stored(platform: Platform, request_id: str) -> dict[str, Any]:
    rows = platform.traffic.store.feedback([request_id])
    assert len(rows) == 1
    return rows[0]


# -- values ------------------------------------------------------------------------------------
class TestValues:
    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            (b'{"request_id": "r", "label": NaN}', "label"),
            (b'{"request_id": "r", "label": Infinity}', "label"),
            (b'{"request_id": "r", "label": -Infinity}', "label"),
            (b'{"request_id": "r", "label": 1e308}', "label"),
            (b'{"request_id": "r", "label": 1e400}', "label"),
            (b'{"request_id": "r", "label": -1e10}', "label"),
            (b'{"request_id": "r", "label": ' + b"9" * 400 + b"}", "label"),
            (b'{"request_id": "r", "reward": NaN}', "reward"),
            (b'{"request_id": "r", "reward": Infinity}', "reward"),
            (b'{"request_id": "r", "reward": 1e308}', "reward"),
            (b'{"request_id": "r", "reward": -1e308}', "reward"),
            (b'{"request_id": "r", "reward": 1000001}', "reward"),
            (b'{"request_id": "r", "reward": 1, "overwrite": "yes"}', "overwrite"),
            (b'{"request_id": "' + b"x" * 129 + b'", "reward": 1}', "request_id"),
        ],
    )
    async def test_out_of_range_or_non_finite_is_422_naming_the_field(
        self, http: httpx.AsyncClient, platform: Platform, raw: bytes, field: str
    ) -> None:
        r = await http.post("/feedback", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
        assert platform.traffic.store.feedback() == []

    async def test_the_bounds_themselves_are_accepted(self, http: httpx.AsyncClient) -> None:
        for i, body in enumerate([{"label": LABEL_LIMIT}, {"label": -LABEL_LIMIT},
                                  {"reward": REWARD_LIMIT}, {"reward": -REWARD_LIMIT},
                                  {"label": True}, {"reward": 0}]):  # fmt: skip
            r = await http.post("/feedback", json={"request_id": f"edge-{i}", **body})
            assert r.status_code == 202, (body, r.text)

    async def test_not_json_at_all_is_still_400(self, http: httpx.AsyncClient) -> None:
        r = await http.post("/feedback", content=b'{"request_id": "r", "label": nope}')
        assert r.status_code == 400
        assert r.json()["error"]["field"] == "body"


# -- one outcome per request -------------------------------------------------------------------
class TestOneOutcome:
    async def test_a_second_label_is_409_and_changes_nothing(
        self, http: httpx.AsyncClient, platform: Platform
    ) -> None:
        answer = await predicted(http, 0)
        rid = answer["request_id"]
        first = await http.post("/feedback", json={"request_id": rid, "label": 1})
        assert first.status_code == 202
        r = await http.post("/feedback", json={"request_id": rid, "label": 0})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["field"] == "request_id"
        assert "overwrite" in r.json()["error"]["message"]
        r = await http.post("/feedback", json={"request_id": rid, "reward": 3.0})
        assert r.status_code == 409
        row = stored(platform, rid)
        assert (row["label"], row["reward"], row["revision"]) == (1.0, None, 1)

    async def test_an_overwrite_is_recorded(self, http: httpx.AsyncClient,
                                            platform: Platform) -> None:  # fmt: skip
        rid = (await predicted(http, 1))["request_id"]
        await http.post("/feedback", json={"request_id": rid, "label": 1})
        r = await http.post("/feedback", json={"request_id": rid, "label": 0, "overwrite": True})
        assert r.status_code == 202, r.text
        assert r.json()["revision"] == 2
        row = stored(platform, rid)
        assert row["label"] == 0.0
        assert row["previous_label"] == 1.0
        assert row["revision"] == 2
        assert row["overwritten_at"] is not None
        assert row["variant"] in ("a", "b")

    async def test_an_overwrite_is_counted_once_by_the_live_counters(
        self, http: httpx.AsyncClient, platform: Platform
    ) -> None:
        rid = (await predicted(http, 2))["request_id"]
        for label in (1, 0, 1):
            r = await http.post("/feedback", json={"request_id": rid, "label": label,
                                                   "overwrite": True})  # fmt: skip
            assert r.status_code == 202
        app = http._transport.app  # type: ignore[attr-defined]
        await app.state.serving.service.router.flush()
        counters = platform.traffic.experiment_counters(platform.traffic.get_experiment("acc"))
        assert sum(c.outcome_n for c in counters.values()) == 1


# -- authentication ------------------------------------------------------------------------------
class TestAuthentication:
    async def test_unauthenticated_feedback_is_refused_when_auth_is_required(
        self, platform: Platform, experiment: Client
    ) -> None:
        platform.settings.require_auth = True
        read = experiment.create_token("r", "read").secret
        async with serve(platform) as http:
            body = {"request_id": "r-1", "reward": 1.0}
            r = await http.post("/feedback", json=body)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            r = await http.post("/feedback", json=body, headers={"Authorization": "Bearer no"})
            assert r.status_code == 401
            assert platform.traffic.store.feedback() == []
            r = await http.post("/feedback", json=body, headers={"Authorization": f"Bearer {read}"})
            assert r.status_code == 202


# -- the report --------------------------------------------------------------------------------
class TestReport:
    async def test_unknown_request_ids_are_counted_apart_from_the_arms(
        self, platform: Platform, experiment: Client
    ) -> None:
        server = serve(platform)
        async with server as http_client:
            await server.router.refresh()
            answers = [await predicted(http_client, i) for i in range(6)]
            for i, answer in enumerate(answers[:4]):  # this replica knew these requests
                r = await http_client.post("/feedback", json={"request_id": answer["request_id"],
                                                              "label": int(Y[i])})  # fmt: skip
                assert r.json()["variant"] == answer["variant"]
            for ghost in ("ghost-1", "ghost-2", "ghost-3"):  # nobody served these
                r = await http_client.post("/feedback", json={"request_id": ghost, "label": 1})
                assert r.status_code == 202
                assert r.json()["variant"] is None
        # another replica's requests: stored without a variant, found in the prediction log
        for i, answer in enumerate(answers[4:], start=4):
            platform.bus.handle(
                RecordFeedback(
                    answer["request_id"], label=float(Y[i]), reward=None, subject=None, variant=None
                )
            )
        exp = platform.traffic.get_experiment("acc")
        log = platform.settings.resolved_prediction_log
        found = match_feedback(platform.traffic, exp, prediction_log=log)
        assert (found.matched, found.unmatched) == (6, 3)
        assert sum(len(v) for v in found.per_arm.values()) == 6
        report = report_of(platform.traffic, exp, prediction_log=log).to_dict()
        assert report["feedback"] == {"matched": 6, "unmatched": 3}
        assert sum(v["outcome_n"] for v in report["variants"]) == 6

    async def test_without_a_prediction_log_unattributed_rows_are_unmatched(
        self, platform: Platform, experiment: Client
    ) -> None:
        platform.bus.handle(
            RecordFeedback("ghost", label=1.0, reward=None, subject=None, variant=None)
        )
        exp = platform.traffic.get_experiment("acc")
        found = match_feedback(platform.traffic, exp, prediction_log=None)
        assert (found.matched, found.unmatched) == (0, 1)
        assert found.per_arm == {"a": [], "b": []}


# -- the store (written through the bus), on both databases ----------------------------------------
@pytest.fixture
def any_platform(any_db_url: str, tmp_path: Path) -> Iterator[Platform]:
    home = tmp_path / "store-home"
    home.mkdir()
    p = bootstrap(Settings(home=home, db_url=any_db_url), raise_on_event_error=True)
    yield p
    p.close()


class TestStore:
    def test_one_outcome_per_request_unless_overwritten(self, any_platform: Platform) -> None:
        store, handle = any_platform.traffic.store, any_platform.bus.handle
        assert handle(RecordFeedback("r1", label=1.0, reward=None, subject="experiment:e",
                                     variant="a")) == 1  # fmt: skip
        with pytest.raises(Conflict) as caught:
            handle(RecordFeedback("r1", label=0.0, reward=None, subject=None, variant=None))
        assert caught.value.field == "request_id"
        revision = handle(
            RecordFeedback("r1", label=None, reward=2.5, subject=None, variant=None, overwrite=True)
        )
        assert revision == 2
        row = store.feedback(["r1"])[0]
        assert (row["label"], row["reward"]) == (None, 2.5)
        assert (row["previous_label"], row["previous_reward"]) == (1.0, None)
        assert (row["subject"], row["variant"]) == ("experiment:e", "a")  # kept
        assert row["overwritten_at"] is not None
        assert handle(RecordFeedback("r1", label=3.0, reward=None, subject=None, variant=None,
                                     overwrite=True)) == 3  # fmt: skip
        assert store.feedback(["r1"])[0]["previous_reward"] == 2.5

    def test_a_first_outcome_may_ask_to_overwrite(self, any_platform: Platform) -> None:
        store, handle = any_platform.traffic.store, any_platform.bus.handle
        assert handle(RecordFeedback("r2", label=1.0, reward=None, subject=None, variant=None,
                                     overwrite=True)) == 1  # fmt: skip
        row = store.feedback(["r2"])[0]
        assert row["overwritten_at"] is None
        assert row["previous_label"] is None
