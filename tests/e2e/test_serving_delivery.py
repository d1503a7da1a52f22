"""Safe delivery in the serving app: routing by experiments and rollouts, live counters,
feedback, shadows, blue-green keep and the canary controller — the real app, its real lifespan,
behind ``httpx.ASGITransport`` (and a real gRPC port for the gRPC test).

The routing table is re-read by calling the router's ``refresh`` (the poll interval is an hour
here), so a test never waits for a poll.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.serving.delivery import TrafficRouter, compare_outputs
from modelplane.serving.options import ServeOptions
from modelplane.serving.service import InferenceService
from modelplane.traffic.commands import RecordTrafficCounters
from modelplane.traffic.live import LiveStats
from modelplane.traffic.model import rollout_subject
from tests.e2e import serving_models
from tests.e2e.test_serving_app import oip_body, output, serve

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(5)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


def opts(**changes: Any) -> ServeOptions:
    base: dict[str, Any] = {
        "grpc_port": None,
        "poll_interval_s": 3600,
        "access_log": False,
        "controller": False,
        "stats_flush_s": 3600,
    }
    return ServeOptions(**(base | changes))


def router_of(http: httpx.AsyncClient) -> TrafficRouter:
    service: InferenceService = http._transport.app.state.serving.service  # type: ignore[attr-defined]
    assert service.router is not None
    return service.router


@pytest.fixture
def models(client: Client) -> Client:
    """``live``: v1 row sums (champion), v2 row sums × 10, v3 row sums again; all gated."""
    client.log_model(
        serving_models.row_sums, trust=True, name="live", input_example=X, alias="champion"
    )
    client.log_model(serving_models.times_ten, trust=True, name="live", input_example=X)
    client.log_model(serving_models.row_sums, trust=True, name="live", input_example=X)
    for v in (1, 2, 3):
        client.record_gate_result("live", v, passed=True)
    return client


def split(client: Client, name: str = "ab", a: float = 50.0) -> None:
    client.create_experiment(name, "live", {"a": (1, a), "b": (2, 100.0 - a)})
    client.experiment_action(name, "start")


async def predict(
    http: httpx.AsyncClient, rows: np.ndarray[Any, Any], unit: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "live", "inputs": rows.tolist()}
    if unit is not None:
        body["unit_id"] = unit
    r = await http.post("/predict", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def answered_by(answer: dict[str, Any], rows: np.ndarray[Any, Any]) -> int:
    """Which version computed it: v2 multiplies by ten."""
    got = np.asarray(answer["predictions"])
    return 2 if np.allclose(got, rows.sum(axis=1) * 10) else 1


class TestRouting:
    async def test_a_unit_stays_on_its_variant_and_every_door_names_it(
        self, platform: Platform, models: Client
    ) -> None:
        split(models)
        async with serve(platform, opts()) as http:
            await router_of(http).refresh()
            seen: dict[str, str] = {}
            for i in range(30):
                unit, rows = f"user-{i}", X[i : i + 1]
                first = await predict(http, rows, unit)
                again = await predict(http, rows, unit)
                assert first["variant"] == again["variant"]
                assert first["experiment"] == "ab"
                assert first["version"] == {"a": 1, "b": 2}[first["variant"]]
                assert answered_by(first, rows) == first["version"]
                seen[unit] = first["variant"]
                by_header = await http.post(
                    "/predict",
                    json={"model": "live", "inputs": rows.tolist()},
                    headers={"X-Unit-Id": unit},
                )
                assert by_header.json()["variant"] == seen[unit]
                # OIP: the X-Unit-Id header, or the unit_id request parameter
                by_header = await http.post(
                    "/v2/models/live/infer", json=oip_body(rows), headers={"X-Unit-Id": unit}
                )
                by_param = await http.post(
                    "/v2/models/live/infer", json=oip_body(rows, parameters={"unit_id": unit})
                )
                for r in (by_header, by_param):
                    assert r.status_code == 200, r.text
                    body = r.json()
                    assert body["parameters"] == {"variant": seen[unit], "experiment": "ab"}
                    assert body["model_version"] == str(first["version"])
            assert set(seen.values()) == {"a", "b"}
            # an alias or a version is not routed
            r = await http.post("/v2/models/live/versions/1/infer", json=oip_body(X[:1]))
            assert "parameters" not in r.json()
            r = await http.post("/predict", json={"model": "live@champion", "inputs": [[1] * 4]})
            assert "variant" not in r.json()

    async def test_random_requests_split_close_to_the_weights(
        self, platform: Platform, models: Client
    ) -> None:
        split(models, a=70.0)
        async with serve(platform, opts()) as http:
            await router_of(http).refresh()
            answers = await asyncio.gather(
                *(predict(http, X[i % 50 : i % 50 + 1]) for i in range(800))
            )
        tally = Tally(a["variant"] for a in answers)
        assert 0.64 < tally["a"] / 800 < 0.76, tally

    async def test_start_and_stop_are_followed_without_a_restart(
        self, platform: Platform, models: Client
    ) -> None:
        models.create_experiment("later", "live", {"a": (1, 0.0), "b": (2, 100.0)})
        async with serve(platform, opts()) as http:
            router = router_of(http)
            assert "variant" not in await predict(http, X[:1], "u")
            models.experiment_action("later", "start")
            await router.refresh()
            answer = await predict(http, X[:1], "u")
            assert (answer["variant"], answer["version"]) == ("b", 2)
            models.experiment_action("later", "stop")
            await router.refresh()
            answer = await predict(http, X[:1], "u")
            assert "variant" not in answer
            assert answer["version"] == 1

    async def test_a_new_route_is_warm_before_it_takes_traffic(
        self, platform: Platform, models: Client
    ) -> None:
        async with serve(platform, opts()) as http:
            await predict(http, X[:1])
            pool = http._transport.app.state.serving.pool  # type: ignore[attr-defined]
            assert not pool.has("live", 2)
            split(models)
            await router_of(http).refresh()
            assert pool.has("live", 2)  # loaded and warmed by the refresh itself

    async def test_rollout_steps_are_followed(self, platform: Platform, models: Client) -> None:
        models.start_rollout("live", 2, steps=(10, 60, 100), step_duration_s=3600, min_requests=5)
        async with serve(platform, opts()) as http:
            router = router_of(http)
            route = router.routes["live"]
            assert route.source == "rollout"
            assert [(a.name, a.version, a.weight) for a in route.arms] == [
                ("candidate", 2, 10.0),
                ("baseline", 1, 90.0),
            ]
            models.decide_rollout("live", "advance", reason="test", expected_step=0)
            await router.refresh()
            assert router.routes["live"].arms[0].weight == 60.0
            answers = [await predict(http, X[:1], f"u{i}") for i in range(60)]
            assert {a["experiment"] for a in answers} == {router.routes["live"].name}
            assert 20 < sum(a["variant"] == "candidate" for a in answers) < 55
            models.decide_rollout("live", "rollback", reason="test")
            await router.refresh()
            assert "live" not in router.routes


class TestCounters:
    async def test_routed_requests_land_in_the_shared_totals(
        self, platform: Platform, models: Client
    ) -> None:
        split(models)
        async with serve(platform, opts()) as http:
            await router_of(http).refresh()
            for i in range(40):
                await predict(http, X[i : i + 1], f"c{i}")
            # a client input error is the caller's: not counted
            bad = await http.post("/predict", json={"model": "live", "inputs": [[1, 2]],
                                                    "unit_id": "c1"})  # fmt: skip
            assert bad.status_code == 422
            await router_of(http).flush()
            experiment = platform.traffic.get_experiment("ab")
            counters = platform.traffic.experiment_counters(experiment)
        assert counters["a"].requests > 0
        assert counters["b"].requests > 0
        assert counters["a"].requests + counters["b"].requests == 40
        assert counters["a"].errors == counters["b"].errors == 0
        assert counters["a"].p(0.5) is not None

    async def test_server_failures_count_as_errors_of_their_arm(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.row_sums, trust=True, name="flaky", input_example=X, alias="champion"
        )
        client.log_model(serving_models.always_fails, trust=True, name="flaky", input_example=X)
        for v in (1, 2):
            client.record_gate_result("flaky", v, passed=True)
        client.create_experiment("f", "flaky", {"good": (1, 50.0), "bad": (2, 50.0)})
        client.experiment_action("f", "start")
        async with serve(platform, opts()) as http:
            await router_of(http).refresh()
            statuses = [
                (await http.post("/predict", json={"model": "flaky", "inputs": X[:1].tolist(),
                                                   "unit_id": f"u{i}"})).status_code
                for i in range(30)
            ]  # fmt: skip
        # the lifespan's shutdown flushed the counters
        counters = platform.traffic.experiment_counters(platform.traffic.get_experiment("f"))
        assert counters["bad"].errors == counters["bad"].requests == statuses.count(500) > 0
        assert counters["good"].errors == 0
        assert counters["good"].requests == statuses.count(200)

    def test_two_postgres_replicas_add_up(self, pg_url: str, tmp_path: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        replicas = []
        for i in range(2):
            home = tmp_path / f"r{i}"
            home.mkdir()
            replicas.append(bootstrap(Settings(home=home, db_url=pg_url)))
        try:
            lives = [LiveStats(), LiveStats()]

            def replica(i: int) -> None:
                live, handle = lives[i], replicas[i].bus.handle
                for _ in range(20):
                    for k in range(25):
                        live.request("experiment:pg", "ab"[k % 2], 1.0 + i + k % 3, ok=k != 7)
                    live.outcome("experiment:pg", "a", 1.0)
                    handle(RecordTrafficCounters(live.drain()))

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(replica, range(2)))
            totals = replicas[0].traffic.store.counters(["experiment:pg"])
        finally:
            for p in replicas:
                p.close()
        a, b = totals[("experiment:pg", "a")], totals[("experiment:pg", "b")]
        assert a.requests + b.requests == 2 * 20 * 25
        assert b.errors == 2 * 20  # k == 7 is a b request
        assert a.outcome_n == 40
        assert sum(b.buckets.values()) == b.requests - b.errors


class TestFeedback:
    @pytest.fixture
    def labelled(self, client: Client) -> Client:
        fitted = LogisticRegression().fit(X, Y)
        client.log_model(fitted, name="clf", input_example=X, alias="champion")
        client.log_model(LogisticRegression(C=0.01).fit(X, Y), name="clf", input_example=X)
        for v in (1, 2):
            client.record_gate_result("clf", v, passed=True)
        client.create_experiment("acc", "clf", {"a": (1, 50.0), "b": (2, 50.0)})
        client.experiment_action("acc", "start")
        return client

    async def test_labels_become_outcomes_of_the_variant(
        self, platform: Platform, labelled: Client
    ) -> None:
        async with serve(platform, opts()) as http:
            router = router_of(http)
            await router.refresh()
            right = wrong = 0
            for i in range(20):
                r = await http.post("/predict", json={"model": "clf", "unit_id": f"f{i}",
                                                      "inputs": X[i : i + 1].tolist()})  # fmt: skip
                answer = r.json()
                label = int(Y[i])
                right += answer["predictions"][0] == label
                wrong += answer["predictions"][0] != label
                fb = await http.post("/feedback", json={"request_id": answer["request_id"],
                                                        "label": label})  # fmt: skip
                assert fb.status_code == 202, fb.text
                assert fb.json() == {"request_id": answer["request_id"], "accepted": True,
                                     "variant": answer["variant"], "revision": 1}  # fmt: skip
            r = await http.post("/feedback", json={"request_id": "elsewhere-1", "reward": 0.5})
            assert r.status_code == 202
            assert r.json()["variant"] is None
            await router.flush()
            counters = platform.traffic.experiment_counters(platform.traffic.get_experiment("acc"))
        assert counters["a"].outcome_n + counters["b"].outcome_n == 20
        assert counters["a"].outcome_sum + counters["b"].outcome_sum == right
        rows = {row["request_id"]: row for row in platform.traffic.store.feedback()}
        assert len(rows) == 21
        assert rows["elsewhere-1"]["variant"] is None
        assert rows["elsewhere-1"]["reward"] == 0.5

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"label": 1}, "request_id"),
            ({"request_id": "", "label": 1}, "request_id"),
            ({"request_id": 7, "label": 1}, "request_id"),
            ({"request_id": "r"}, "label"),
            ({"request_id": "r", "label": 1, "reward": 1.0}, "reward"),
            ({"request_id": "r", "label": "yes"}, "label"),
            ({"request_id": "r", "reward": True}, "reward"),
            ({"request_id": "r", "reward": [1]}, "reward"),
            ({"request_id": "r", "label": 1, "lable": 0}, "lable"),
        ],
    )
    async def test_bad_feedback_is_422_naming_the_field(
        self, platform: Platform, models: Client, body: dict[str, Any], field: str
    ) -> None:
        async with serve(platform, opts()) as http:
            r = await http.post("/feedback", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field

    async def test_malformed_feedback_is_400(self, platform: Platform, models: Client) -> None:
        async with serve(platform, opts()) as http:
            r = await http.post("/feedback", content=b"{nope", headers={"content-type": "a/json"})
            assert r.status_code == 400
            r = await http.post("/feedback", json=[1, 2])
            assert r.status_code == 400


class TestShadow:
    async def wait_idle(self, router: TrafficRouter) -> None:
        for _ in range(200):
            if router.shadow_pending == 0:
                await asyncio.sleep(0.05)  # the last batch finishes
                if router.shadow_pending == 0:
                    return
            await asyncio.sleep(0.01)

    async def test_the_client_gets_the_primary_and_the_candidate_is_compared(
        self, platform: Platform, models: Client
    ) -> None:
        models.create_experiment("same", "live", {"cand": (3, 100.0)}, kind="shadow",
                                 shadow_percent=100.0)  # fmt: skip
        models.experiment_action("same", "start")
        async with serve(platform, opts()) as http:
            router = router_of(http)
            await router.refresh()
            answers = await asyncio.gather(
                *(http.post("/v2/models/live/infer", json=oip_body(X[i : i + 2]))
                  for i in range(50))
            )  # fmt: skip
            for i, r in enumerate(answers):
                assert r.status_code == 200
                assert r.json()["model_version"] == "1"
                np.testing.assert_allclose(output(r.json(), "predict"), X[i : i + 2].sum(axis=1))
            await self.wait_idle(router)
            await router.flush()
            metrics = (await http.get("/metrics")).text
        c = platform.traffic.experiment_counters(platform.traffic.get_experiment("same"))["cand"]
        assert c.shadow_compared == c.shadow_agree == c.requests == 50
        assert c.shadow_absdiff == 0.0
        assert 'modelplane_shadow_calls_total{model="live",outcome="agree"} 50.0' in metrics

    async def test_a_different_candidate_disagrees(
        self, platform: Platform, models: Client
    ) -> None:
        models.create_experiment("ten", "live", {"cand": (2, 100.0)}, kind="shadow",
                                 shadow_percent=100.0)  # fmt: skip
        models.experiment_action("ten", "start")
        async with serve(platform, opts()) as http:
            router = router_of(http)
            await router.refresh()
            for i in range(10):
                answer = await predict(http, np.abs(X[i : i + 1]) + 1)
                assert answer["version"] == 1
                assert "variant" not in answer  # a shadow does not route
            await self.wait_idle(router)
        c = platform.traffic.experiment_counters(platform.traffic.get_experiment("ten"))["cand"]
        assert c.shadow_compared == 10
        assert c.shadow_agree == 0
        assert c.shadow_absdiff > 0

    async def test_a_full_queue_drops_and_counts(self, platform: Platform, models: Client) -> None:
        models.create_experiment("full", "live", {"cand": (3, 100.0)}, kind="shadow",
                                 shadow_percent=100.0)  # fmt: skip
        models.experiment_action("full", "start")
        async with serve(platform, opts(shadow_queue=2, shadow_workers=1)) as http:
            router = router_of(http)
            await router.refresh()
            answers = await asyncio.gather(*(predict(http, X[i : i + 1]) for i in range(60)))
            assert all(a["version"] == 1 for a in answers)
            dropped = router.shadow_dropped
            assert dropped > 0
            await self.wait_idle(router)
            metrics = (await http.get("/metrics")).text
        c = platform.traffic.experiment_counters(platform.traffic.get_experiment("full"))["cand"]
        assert c.shadow_dropped == dropped
        assert c.shadow_compared == 60 - dropped
        assert f'modelplane_shadow_dropped_total{{model="live"}} {float(dropped)}' in metrics


class TestBlueGreen:
    async def test_deploy_and_rollback_under_load_fail_nothing(
        self, platform: Platform, models: Client
    ) -> None:
        async with serve(platform, opts()) as http:
            state = http._transport.app.state.serving  # type: ignore[attr-defined]
            router = router_of(http)
            seen: list[tuple[int, int]] = []
            stop = asyncio.Event()

            async def hammer(k: int) -> None:
                while not stop.is_set():
                    rows = X[k : k + 1]
                    r = await http.post("/predict", json={"model": "live", "inputs": rows.tolist()})
                    version = r.json().get("version", 0) if r.status_code == 200 else 0
                    if r.status_code == 200:
                        assert answered_by(r.json(), rows) == version
                    seen.append((r.status_code, version))

            async def follow() -> None:  # what the view's loop does every poll interval
                await router.refresh()

            workers = [asyncio.create_task(hammer(k)) for k in range(8)]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(models.deploy, "live", 2, keep_blue_s=600)
            await follow()
            assert ("live", 1, True) in {(k.model, k.version, k.until > time.time())
                                         for k in router.table.keep}  # fmt: skip
            await asyncio.sleep(0.5)
            state.pool._evict()  # blue is protected: not evicted even when the pool trims
            assert state.pool.has("live", 1)
            await asyncio.to_thread(models.rollback_deploy, "live")
            await follow()
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*workers)
        statuses = Tally(status for status, _ in seen)
        assert statuses == {200: len(seen)}, statuses
        versions = [v for _, v in seen]
        assert versions[0] == 1
        assert 2 in versions
        assert versions[-1] == 1

    async def test_kept_blue_is_preloaded_and_protected(
        self, platform: Platform, models: Client
    ) -> None:
        opts_small = opts(max_models=1)
        models.deploy("live", 2, keep_blue_s=600)
        async with serve(platform, opts_small) as http:
            pool = http._transport.app.state.serving.pool  # type: ignore[attr-defined]
            assert pool.has("live", 1)  # the router's start loaded the kept blue
            answer = await predict(http, X[:1])
            assert answer["version"] == 2
            assert pool.has("live", 1)  # over max_models, but kept


class TestController:
    async def test_the_server_drives_a_canary(self, platform: Platform, models: Client) -> None:
        models.start_rollout("live", 3, steps=(50, 100), step_duration_s=0, min_requests=5)
        fast = opts(controller=True, controller_interval_s=0.05, stats_flush_s=0.05)
        async with serve(platform, fast) as http:
            router = router_of(http)
            deadline = time.monotonic() + 10
            rollout = platform.traffic.latest_rollout("live")
            while time.monotonic() < deadline:
                for i in range(10):
                    await predict(http, X[i : i + 1], f"c{time.monotonic()}{i}")
                await asyncio.sleep(0.1)
                rollout = platform.traffic.latest_rollout("live")
                if rollout.step_index >= 1 or rollout.status != "running":
                    break
            assert rollout.step_index >= 1 or rollout.status == "promoted", rollout
            await router.refresh()
            assert rollout.id is not None
            if rollout.status == "running":
                assert router.routes["live"].arms[0].weight == 100.0
                assert router.routes["live"].subject == rollout_subject(rollout.id, 1)


def test_compare_outputs() -> None:
    assert compare_outputs(np.array([1, 2]), np.array([1, 2])) == (True, None)
    assert compare_outputs(np.array(["x", "y"]), np.array(["x", "z"])) == (False, None)
    agree, diff = compare_outputs(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    assert (agree, diff) == (False, 0.25)
    assert compare_outputs(np.array([1.0]), np.array([1.0 + 1e-9]))[0] is True
    assert compare_outputs(None, np.array([1])) == (None, None)
    assert compare_outputs(np.array([1, 2]), np.array([1])) == (False, None)


def test_prediction_log_files_without_delivery_columns_still_read(tmp_path: Path) -> None:
    import datetime as dt

    import pyarrow.parquet as pq

    from modelplane.predlog import PredictionLog, PredictionRecord, _to_table, read_log

    def record(request_id: str, **extra: Any) -> PredictionRecord:
        return PredictionRecord(
            request_id,
            dt.datetime.now(dt.UTC),
            "m",
            1,
            {"x": np.ones((1, 2))},
            {"y": np.ones(1)},
            1.0,
            None,
            **extra,
        )

    old = _to_table([record("old")]).drop_columns(["experiment", "variant"])
    folder = tmp_path / "model=m" / f"date={dt.datetime.now(dt.UTC).date().isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "part-0.parquet")
    log = PredictionLog(str(tmp_path))
    log.log(record("new", experiment="ab", variant="b"))
    log.close()
    frame = read_log(str(tmp_path)).set_index("request_id")
    assert frame.loc["new", "experiment"] == "ab"
    assert frame.loc["new", "variant"] == "b"
    assert frame.loc["old", "experiment"] is None or np.isnan(frame.loc["old", "experiment"])
