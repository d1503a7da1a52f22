"""The serving app in process: OIP v2 REST, /predict, admin, resilience, cache, hot switch.

The app runs with its real lifespan (platform, pool, batcher, cache, prediction log) behind
``httpx.ASGITransport``; requests are real HTTP semantics without a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.api.server import create_serving_app
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.serving.options import ModelOptions, ServeOptions
from tests.e2e import harness, serving_models

RNG = np.random.default_rng(3)
X = RNG.normal(size=(300, 4))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


@pytest.fixture
def fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


@pytest.fixture
def registered(client: Client, fitted: LogisticRegression) -> Client:
    client.log_model(fitted, name="fraud", input_example=X, alias="champion")
    client.log_model(
        LogisticRegression(C=0.01).fit(X, Y), name="fraud", input_example=X, alias="challenger"
    )
    frame = pd.DataFrame(X, columns=["amount", "hour", "km", "txns"])
    client.log_model(LogisticRegression().fit(frame, Y), name="tabular", input_example=frame)
    client.log_model(serving_models.row_sums, trust=True, name="sums", input_example=X)
    return client


def options(**model_opts: Any) -> ServeOptions:
    return ServeOptions(
        grpc_port=None, poll_interval_s=3600, access_log=False, defaults=ModelOptions(**model_opts)
    )


@pytest.fixture
async def api(platform: Platform, registered: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(platform) as http:
        yield http


class serve(harness.serve):
    def __init__(self, platform: Platform, opts: ServeOptions | None = None) -> None:
        super().__init__(platform, opts or options())


def oip_body(rows: np.ndarray[Any, Any], name: str = "input-0", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        **extra,
    }


def output(body: dict[str, Any], name: str) -> np.ndarray[Any, Any]:
    for out in body["outputs"]:
        if out["name"] == name:
            return np.asarray(out["data"]).reshape(out["shape"])
    raise AssertionError(f"no output {name} in {body}")


pytestmark = pytest.mark.anyio


class TestProtocol:
    async def test_server_metadata_and_health(self, api: httpx.AsyncClient) -> None:
        meta = (await api.get("/v2")).json()
        assert meta["name"] == "modelplane"
        assert "binary_tensor_data" in meta["extensions"]
        assert (await api.get("/v2/health/live")).status_code == 200
        assert (await api.get("/v2/health/ready")).status_code == 200

    async def test_model_metadata_comes_from_the_signature(self, api: httpx.AsyncClient) -> None:
        meta = (await api.get("/v2/models/fraud")).json()
        assert meta["name"] == "fraud"
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        outputs = {o["name"]: o for o in meta["outputs"]}
        assert outputs["predict"]["datatype"] == "INT64"  # seen at warm-up: labels
        assert outputs["predict_proba"] == {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [-1, 2],
        }
        tab = (await api.get("/v2/models/tabular/versions/1")).json()
        assert [i["name"] for i in tab["inputs"]] == ["amount", "hour", "km", "txns"]

    async def test_infer_matches_the_model_and_echoes_the_id(
        self, api: httpx.AsyncClient, fitted: LogisticRegression
    ) -> None:
        rows = X[:5]
        r = await api.post(
            "/v2/models/fraud/infer",
            json=oip_body(
                rows, id="req-1", outputs=[{"name": "predict"}, {"name": "predict_proba"}]
            ),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == "req-1"
        assert body["model_name"] == "fraud"
        assert body["model_version"] == "1"
        np.testing.assert_array_equal(output(body, "predict"), fitted.predict(rows))
        np.testing.assert_allclose(output(body, "predict_proba"), fitted.predict_proba(rows))

    async def test_alias_in_the_name_and_version_in_the_path(self, api: httpx.AsyncClient) -> None:
        name = urllib.parse.quote("fraud@challenger", safe="")
        r = await api.post(f"/v2/models/{name}/infer", json=oip_body(X[:2]))
        assert r.json()["model_version"] == "2"
        r = await api.post("/v2/models/fraud/versions/2/infer", json=oip_body(X[:2]))
        assert r.json()["model_version"] == "2"
        assert (await api.get(f"/v2/models/{name}/ready")).json()["ready"] is True

    async def test_binary_tensor_extension(
        self, api: httpx.AsyncClient, fitted: LogisticRegression
    ) -> None:
        rows = np.ascontiguousarray(X[:3])
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [3, 4],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": rows.nbytes},
                    }
                ],
                "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
            }
        ).encode()
        r = await api.post(
            "/v2/models/fraud/infer",
            content=header + rows.tobytes(),
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 200, r.text
        length = int(r.headers["Inference-Header-Content-Length"])
        meta = json.loads(r.content[:length])
        out = meta["outputs"][0]
        dtype = {"INT64": np.int64, "FP64": np.float64, "INT32": np.int32}[out["datatype"]]
        got = np.frombuffer(r.content[length:], dtype=dtype)
        np.testing.assert_array_equal(got, fitted.predict(rows))

    async def test_columnar_model_takes_one_tensor_per_column(self, api: httpx.AsyncClient) -> None:
        inputs = [
            {"name": c, "shape": [2], "datatype": "FP64", "data": X[:2, i].tolist()}
            for i, c in enumerate(["amount", "hour", "km", "txns"])
        ]
        r = await api.post("/v2/models/tabular/infer", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        assert output(r.json(), "predict").shape == (2,)


class TestErrors:
    @pytest.mark.parametrize(
        "path",
        [
            "/v2/models/nope/infer",
            "/v2/models/fraud/versions/9/infer",
            "/v2/models/fraud%40ghost/infer",
        ],
    )
    async def test_unknown_model_version_or_alias_is_404(
        self, api: httpx.AsyncClient, path: str
    ) -> None:
        r = await api.post(path, json=oip_body(X[:1]))
        assert r.status_code == 404
        assert isinstance(r.json()["error"], str)

    async def test_malformed_json_is_400(self, api: httpx.AsyncClient) -> None:
        r = await api.post(
            "/v2/models/fraud/infer",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400

    @pytest.mark.parametrize(
        ("tensor", "needle"),
        [
            (
                {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]},
                "input-0",
            ),
            (
                {"name": "wrong", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]},
                "input-0",
            ),
            (
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "BYTES",
                    "data": ["a", "b", "c", "d"],
                },
                "input-0",
            ),
        ],
    )
    async def test_tensor_that_does_not_match_the_signature_is_422(
        self, api: httpx.AsyncClient, tensor: dict[str, Any], needle: str
    ) -> None:
        r = await api.post("/v2/models/fraud/infer", json={"inputs": [tensor]})
        assert r.status_code == 422, r.text
        assert needle in r.json()["error"]

    async def test_missing_column_is_422_naming_it(self, api: httpx.AsyncClient) -> None:
        inputs = [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
            for c in ["amount", "hour", "km"]
        ]
        r = await api.post("/v2/models/tabular/infer", json={"inputs": inputs})
        assert r.status_code == 422
        assert "txns" in r.json()["error"]

    async def test_body_over_the_limit_is_413(self, platform: Platform, registered: Client) -> None:
        platform.settings.max_body_bytes = 1000
        async with serve(platform) as http:
            r = await http.post("/v2/models/fraud/infer", json=oip_body(X[:100]))
        assert r.status_code == 413

    async def test_unknown_output_is_422(self, api: httpx.AsyncClient) -> None:
        r = await api.post(
            "/v2/models/fraud/infer", json=oip_body(X[:1], outputs=[{"name": "embedding"}])
        )
        assert r.status_code == 422


class TestPlainPredict:
    async def test_records_for_a_columnar_model(self, api: httpx.AsyncClient) -> None:
        records = pd.DataFrame(X[:3], columns=["amount", "hour", "km", "txns"]).to_dict(
            orient="records"
        )
        r = await api.post(
            "/predict", json={"model": "tabular", "inputs": records, "unit_id": "card-7"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["version"]) == ("tabular", 1)
        assert len(body["predictions"]) == 3
        assert body["request_id"]

    async def test_rows_for_a_tensor_model_with_probabilities(
        self, api: httpx.AsyncClient, fitted: LogisticRegression
    ) -> None:
        r = await api.post(
            "/predict",
            json={"model": "fraud", "inputs": X[:2].tolist(), "outputs": ["predict_proba"]},
        )
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["predict_proba"], fitted.predict_proba(X[:2]))

    @pytest.mark.parametrize(
        ("body", "status", "field"),
        [
            ({"inputs": [[1, 2, 3, 4]]}, 422, "model"),
            ({"model": "fraud", "inputs": []}, 422, "inputs"),
            ({"model": "fraud", "inputs": [[1, 2, 3]]}, 422, "input-0"),
            ({"model": "nope", "inputs": [[1, 2, 3, 4]]}, 404, "name"),
            ({"model": "Bad Name", "inputs": [[1, 2, 3, 4]]}, 422, "name"),
        ],
    )
    async def test_bad_requests_name_the_field(
        self, api: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
    ) -> None:
        r = await api.post("/predict", json=body)
        assert r.status_code == status, r.text
        assert r.json()["error"]["field"] == field

    async def test_not_json_is_400(self, api: httpx.AsyncClient) -> None:
        r = await api.post("/predict", content=b"[1,", headers={"content-type": "application/json"})
        assert r.status_code == 400


class TestAdmin:
    async def test_admin_routes_need_an_admin_token(
        self, api: httpx.AsyncClient, platform: Platform
    ) -> None:
        assert (await api.get("/models")).status_code == 401
        write = Client(platform=platform).create_token("w", "write").secret
        r = await api.get("/models", headers={"Authorization": f"Bearer {write}"})
        assert r.status_code == 403
        admin = Client(platform=platform).create_token("a", "admin").secret
        auth = {"Authorization": f"Bearer {admin}"}
        await api.post("/v2/models/fraud/infer", json=oip_body(X[:1]))
        models = (await api.get("/models", headers=auth)).json()["models"]
        assert models[0]["name"] == "fraud"
        assert models[0]["batching"]["max_batch_size"] == 256
        assert (await api.post("/models/fraud/unload", headers=auth)).json()["unloaded"] == [1]
        assert (await api.get("/models", headers=auth)).json()["models"] == []

    async def test_repository_extension(self, api: httpx.AsyncClient, platform: Platform) -> None:
        admin = Client(platform=platform).create_token("a", "admin").secret
        auth = {"Authorization": f"Bearer {admin}"}
        assert (await api.post("/v2/repository/models/sums/load", headers=auth)).status_code == 200
        index = (await api.post("/v2/repository/index", headers=auth)).json()
        states = {(m["name"], m["state"]) for m in index}
        assert ("sums", "READY") in states
        assert ("fraud", "UNAVAILABLE") in states
        r = await api.post("/v2/repository/models/sums/unload", headers=auth)
        assert r.status_code == 200

    async def test_prediction_routes_need_a_token_when_required(
        self, platform: Platform, registered: Client
    ) -> None:
        platform.settings.require_auth = True
        async with serve(platform) as http:
            assert (
                await http.post("/v2/models/fraud/infer", json=oip_body(X[:1]))
            ).status_code == 401
            read = Client(platform=platform).create_token("r", "read").secret
            r = await http.post(
                "/v2/models/fraud/infer",
                json=oip_body(X[:1]),
                headers={"Authorization": f"Bearer {read}"},
            )
            assert r.status_code == 200

    async def test_metrics_are_exposed(self, api: httpx.AsyncClient) -> None:
        await api.post("/v2/models/fraud/infer", json=oip_body(X[:1]))
        text = (await api.get("/metrics")).text
        assert "modelplane_requests_total" in text
        assert "modelplane_batch_size" in text


class TestBatching:
    async def test_hundreds_of_concurrent_requests_each_get_their_own_answer(
        self, api: httpx.AsyncClient
    ) -> None:
        rows = [RNG.normal(size=(1 + i % 3, 4)) for i in range(300)]

        async def call(r: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            resp = await api.post("/v2/models/sums/infer", json=oip_body(r))
            assert resp.status_code == 200, resp.text
            return output(resp.json(), "predict")

        answers = await asyncio.gather(*(call(r) for r in rows))
        for r, got in zip(rows, answers, strict=True):
            np.testing.assert_allclose(got, r.sum(axis=1))


class TestResilience:
    async def test_open_breaker_answers_from_the_fallback(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(serving_models.times_ten, trust=True, name="flaky", input_example=X)
        client.log_model(
            serving_models.always_fails, trust=True, name="flaky", input_example=X, alias="champion"
        )
        client.set_tag("flaky", "serving.fallback", "flaky/1")
        async with serve(platform) as http:
            statuses = [
                (await http.post("/v2/models/flaky/infer", json=oip_body(X[:1]))).status_code
                for _ in range(25)
            ]
            assert statuses[:20] == [500] * 20
            r = await http.post("/predict", json={"model": "flaky", "inputs": X[:1].tolist()})
        assert r.status_code == 200, r.text
        assert r.json()["fallback"] is True
        assert r.json()["predictions"][0] == pytest.approx(X[0].sum() * 10)

    async def test_slow_prediction_times_out_with_504(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.slow,
            trust=True,
            name="slow",
            input_example=X,
            tags={"serving.timeout_ms": "50"},
        )
        async with serve(platform) as http:
            r = await http.post("/v2/models/slow/infer", json=oip_body(X[:1]))
        assert r.status_code == 504

    async def test_full_bulkhead_sheds_with_503_and_retry_after(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.slow,
            trust=True,
            name="slow",
            input_example=X,
            tags={"serving.max_concurrency": "1", "serving.max_queue": "0"},
        )
        async with serve(platform) as http:
            await http.get("/v2/models/slow")  # loaded and warm
            first = asyncio.create_task(http.post("/v2/models/slow/infer", json=oip_body(X[:1])))
            await asyncio.sleep(0.05)
            second = await http.post("/v2/models/slow/infer", json=oip_body(X[1:2]))
            assert (await first).status_code == 200
        assert second.status_code == 503
        assert int(second.headers["Retry-After"]) >= 1

    async def test_one_bad_request_in_a_batch_fails_alone(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.fails_on_negative, trust=True, name="picky", input_example=X
        )
        async with serve(platform) as http:
            bodies = [np.abs(RNG.normal(size=(1, 4))) for _ in range(30)]
            bodies[7] = -bodies[7]
            responses = await asyncio.gather(
                *(http.post("/v2/models/picky/infer", json=oip_body(b)) for b in bodies)
            )
        statuses = [r.status_code for r in responses]
        assert statuses[7] == 422  # the model's ValueError: the caller's input
        assert "rejected the input" in responses[7].json()["error"]
        assert statuses[:7] + statuses[8:] == [200] * 29


class TestCache:
    async def test_identical_requests_hit_the_cache_unless_no_cache(
        self, platform: Platform, registered: Client
    ) -> None:
        async with serve(platform, options(cache=True)) as http:
            body = oip_body(X[:2])
            first = await http.post("/v2/models/fraud/infer", json=body)
            second = await http.post("/v2/models/fraud/infer", json=body)
            fresh = await http.post(
                "/v2/models/fraud/infer", json=body, headers={"Cache-Control": "no-cache"}
            )
            metrics = (await http.get("/metrics")).text
        assert output(first.json(), "predict").tolist() == output(second.json(), "predict").tolist()
        assert fresh.status_code == 200
        hits = [
            line
            for line in metrics.splitlines()
            if line.startswith("modelplane_cache_events_total") and 'outcome="hit"' in line
        ]
        assert hits
        assert float(hits[0].split()[-1]) >= 1
        held = [line for line in metrics.splitlines() if line.startswith("modelplane_cache_bytes")]
        assert held
        assert float(held[0].split()[-1]) > 0  # the served cache's real size, read at scrape


class TestHotSwitch:
    async def test_alias_moves_under_load_with_no_failed_request(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.row_sums, trust=True, name="live", input_example=X, alias="champion"
        )
        client.log_model(serving_models.times_ten, trust=True, name="live", input_example=X)
        async with serve(platform) as http:
            view = http._transport.app.state.serving.view  # type: ignore[attr-defined]
            seen: list[tuple[int, str]] = []
            stop = asyncio.Event()

            async def load() -> None:
                while not stop.is_set():
                    r = await http.post("/v2/models/live/infer", json=oip_body(X[:1]))
                    seen.append((r.status_code, r.json().get("model_version", "")))

            workers = [asyncio.create_task(load()) for _ in range(8)]
            await asyncio.sleep(0.2)
            await asyncio.to_thread(client.set_alias, "live", "champion", 2)
            await view.refresh()
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*workers)
        assert all(status == 200 for status, _ in seen)
        versions = [v for _, v in seen]
        assert versions[0] == "1"
        assert versions[-1] == "2"


class TestPredictionLog:
    async def test_predictions_are_logged_with_their_request_id(
        self, platform: Platform, registered: Client
    ) -> None:
        from modelplane.predlog import read_log

        async with serve(platform) as http:
            r = await http.post(
                "/predict", json={"model": "fraud", "inputs": X[:1].tolist(), "unit_id": "u1"}
            )
        log = read_log(platform.settings.resolved_prediction_log)
        row = log[log["request_id"] == r.json()["request_id"]]
        assert len(row) == 1
        assert row.iloc[0]["unit_id"] == "u1"


class TestFuzz:
    """Random and malformed requests never get a 5xx (hypothesis drives the real app)."""

    def test_random_requests_never_yield_a_server_error(
        self, platform: Platform, registered: Client
    ) -> None:
        import anyio.from_thread
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        scalars = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=True),
            st.text(max_size=8),
        )
        json_values = st.recursive(
            scalars,
            lambda inner: (
                st.lists(inner, max_size=5)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=20,
        )
        tensor = st.fixed_dictionaries(
            {
                "name": st.sampled_from(["input-0", "amount", "x", ""]),
                "shape": st.lists(st.integers(-2, 5), max_size=3),
                "datatype": st.sampled_from(
                    ["FP64", "FP32", "INT64", "BOOL", "BYTES", "FP16", "UINT8", "NOPE"]
                ),
                "data": json_values,
            },
            optional={"parameters": json_values},
        )
        oip_doc = st.fixed_dictionaries(
            {"inputs": st.lists(tensor, max_size=3)},
            optional={"id": json_values, "outputs": json_values, "parameters": json_values},
        )
        plain_doc = st.fixed_dictionaries(
            {
                "model": st.sampled_from(["fraud", "tabular", "sums", "nope", "Bad", "fraud@x"]),
                "inputs": json_values,
            },
            optional={"unit_id": json_values, "outputs": json_values},
        )
        bodies = st.one_of(
            oip_doc.map(lambda d: json.dumps(d).encode()),
            plain_doc.map(lambda d: json.dumps(d).encode()),
            json_values.map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=64),
        )
        paths = st.sampled_from(
            [
                "/v2/models/fraud/infer",
                "/v2/models/tabular/infer",
                "/v2/models/sums/infer",
                "/v2/models/nope/infer",
                "/v2/models/fraud/versions/7/infer",
                "/predict",
                "/v2/models/fraud%40x/infer",
                "/v2/models/%2e%2e/infer",
            ]
        )
        headers = st.one_of(
            st.just({}),
            st.fixed_dictionaries(
                {"Inference-Header-Content-Length": st.integers(-5, 300).map(str)}
            ),
        )

        with anyio.from_thread.start_blocking_portal() as portal:
            server = serve(platform)
            http = portal.call(server.__aenter__)
            try:

                @settings(
                    max_examples=300,
                    deadline=None,
                    suppress_health_check=[
                        HealthCheck.function_scoped_fixture,
                        HealthCheck.too_slow,
                    ],
                )
                @given(path=paths, body=bodies, extra=headers)
                def check(path: str, body: bytes, extra: dict[str, str]) -> None:
                    r = portal.call(lambda: http.post(path, content=body, headers=extra))
                    assert r.status_code < 500, (path, body, r.status_code, r.text)
                    assert r.status_code == 200 or "error" in r.json()

                check()
            finally:
                portal.call(server.__aexit__, None, None, None)


class TestPool:
    async def test_least_recently_used_version_is_unloaded_past_the_limit(
        self, platform: Platform, registered: Client
    ) -> None:
        admin = Client(platform=platform).create_token("a", "admin").secret
        auth = {"Authorization": f"Bearer {admin}"}
        opts = ServeOptions(grpc_port=None, poll_interval_s=3600, access_log=False, max_models=2)
        async with serve(platform, opts) as http:
            for name in ("fraud", "sums", "fraud", "tabular"):
                r = await http.post(
                    "/predict",
                    json={
                        "model": name,
                        "inputs": [dict.fromkeys(["amount", "hour", "km", "txns"], 1.0)]
                        if name == "tabular"
                        else X[:1].tolist(),
                    },
                )
                assert r.status_code == 200, r.text
            loaded = {m["name"] for m in (await http.get("/models", headers=auth)).json()["models"]}
        assert loaded == {"fraud", "tabular"}  # sums was the least recently used


class TestTracing:
    async def test_responses_carry_a_traceparent_when_tracing_is_on(
        self, platform: Platform, registered: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from modelplane.serving import tracing

        exporter = InMemorySpanExporter()
        real_setup = tracing.setup_tracing
        monkeypatch.setattr(
            tracing,
            "setup_tracing",
            lambda *args, **kw: real_setup("modelplane", exporter=exporter),
        )
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        try:
            async with serve(platform) as http:
                r = await http.post(
                    "/v2/models/fraud/infer", json=oip_body(X[:1]), headers={"traceparent": parent}
                )
                tracing.active_tracer().force_flush()
        finally:
            tracing.shutdown_tracing()
        assert r.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
        names = {span.name for span in exporter.get_finished_spans()}
        assert {"infer", "route", "validate", "predict"} <= names


class TestInlinePrediction:
    """``--threads 0`` (the default on one CPU): predict on the event loop, still batched."""

    async def test_concurrent_requests_each_get_their_own_answer(
        self, platform: Platform, registered: Client, client: Client
    ) -> None:
        client.log_model(serving_models.deliberate_sums, trust=True, name="picky", input_example=X)
        opts = ServeOptions(
            grpc_port=None, poll_interval_s=3600, access_log=False, executor_threads=0
        )
        rows = [np.abs(RNG.normal(size=(1 + i % 3, 4))) for i in range(200)]
        rows[13] = -rows[13]
        async with serve(platform, opts) as http:
            responses = await asyncio.gather(
                *(http.post("/v2/models/picky/infer", json=oip_body(r)) for r in rows)
            )
            metrics = (await http.get("/metrics")).text
        for i, (r, resp) in enumerate(zip(rows, responses, strict=True)):
            if i == 13:
                assert resp.status_code == 422
                continue
            assert resp.status_code == 200, resp.text
            np.testing.assert_allclose(output(resp.json(), "predict"), r.sum(axis=1))
        batches = [
            line
            for line in metrics.splitlines()
            if line.startswith("modelplane_batch_size_rows_count")
        ]
        assert batches
        assert float(batches[0].split()[-1]) < 200


class TestProcessPool:
    async def test_process_pool_workers_load_the_version_and_answer(
        self, platform: Platform, registered: Client, fitted: LogisticRegression
    ) -> None:
        opts = ServeOptions(
            grpc_port=None,
            poll_interval_s=3600,
            access_log=False,
            process_pool=True,
            executor_threads=1,
        )
        async with serve(platform, opts) as http:
            r = await http.post("/v2/models/fraud/infer", json=oip_body(X[:3]))
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(output(r.json(), "predict"), fitted.predict(X[:3]))


class TestInlineDeadline:
    async def test_request_queued_behind_a_slow_prediction_times_out(
        self, platform: Platform, client: Client
    ) -> None:
        client.log_model(
            serving_models.slow,
            trust=True,
            name="slow",
            input_example=X,
            tags={"serving.timeout_ms": "100", "serving.max_batch_size": "1"},
        )
        opts = ServeOptions(
            grpc_port=None, poll_interval_s=3600, access_log=False, executor_threads=0
        )
        async with serve(platform, opts) as http:
            await http.get("/v2/models/slow")  # loaded and warm
            first, second = await asyncio.gather(
                http.post("/v2/models/slow/infer", json=oip_body(X[:1])),
                http.post("/v2/models/slow/infer", json=oip_body(X[1:2])),
            )
        # The first prediction runs on the loop (it cannot be interrupted); the second waited
        # past its deadline behind it and is refused before it starts.
        assert sorted([first.status_code, second.status_code]) == [200, 504]


class TestUnknownModels:
    async def test_unknown_model_is_looked_up_once_per_poll_interval(
        self, platform: Platform, registered: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from modelplane.bootstrap.serving import PlatformViewSource

        calls: list[str] = []
        real = PlatformViewSource.model

        def counting(self: PlatformViewSource, name: str) -> Any:
            calls.append(name)
            return real(self, name)

        monkeypatch.setattr(PlatformViewSource, "model", counting)
        async with serve(platform) as http:
            statuses = [
                (await http.post("/v2/models/ghost/infer", json=oip_body(X[:1]))).status_code
                for _ in range(5)
            ]
        assert statuses == [404] * 5
        assert calls.count("ghost") == 1


class TestSoleRequest:
    """Under uvicorn with ``ServingHttpProtocol`` (what ``modelplane serve`` runs), a request the
    server holds alone is predicted at once by an idle inline model; under plain uvicorn (no
    hint) it is deferred one loop turn as before. Answers are the same either way."""

    @staticmethod
    @contextlib.asynccontextmanager
    async def uvicorn_serving(platform: Platform, http: Any) -> AsyncIterator[tuple[str, Any]]:
        import socket

        import uvicorn

        app = create_serving_app(
            platform=platform,
            options=ServeOptions(
                grpc_port=None,
                poll_interval_s=3600,
                access_log=False,
                executor_threads=0,
                defaults=ModelOptions(max_batch_size=32),
            ),
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, http=http, log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
        finally:
            server.should_exit = True
            await task
            sock.close()

    @pytest.mark.parametrize("protocol", ["ours", "httptools"])
    async def test_one_client_at_a_time(
        self,
        platform: Platform,
        registered: Client,
        fitted: LogisticRegression,
        protocol: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from modelplane.serving import http_server

        monkeypatch.setattr(http_server, "_tasks", None)
        http = http_server.ServingHttpProtocol if protocol == "ours" else "httptools"
        async with (
            self.uvicorn_serving(platform, http) as (url, app),
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            answers = []
            for i in range(10):
                r = await client.post("/v2/models/fraud/infer", json=oip_body(X[i : i + 1]))
                assert r.status_code == 200, r.text
                answers.append(int(output(r.json(), "predict")[0]))
            r = await client.post("/predict", json={"model": "fraud", "inputs": [X[10].tolist()]})
            assert r.status_code == 200, r.text
            served = await app.state.serving.view.get("fraud")
            at_once = sum(b.at_once for b in served.batchers.values())
            together = await asyncio.gather(
                *(
                    client.post("/v2/models/fraud/infer", json=oip_body(X[i : i + 1]))
                    for i in range(30)
                )
            )
        assert answers == fitted.predict(X[:10]).tolist()
        assert r.json()["predictions"] == fitted.predict(X[10:11]).tolist()
        assert at_once == (11 if protocol == "ours" else 0)
        assert [int(output(t.json(), "predict")[0]) for t in together] == fitted.predict(
            X[:30]
        ).tolist()


def test_predict_records_keep_text_as_sent() -> None:
    """Text in /predict records reaches the model as Python str, trailing NUL included (a
    fixed-width numpy string array would drop it)."""
    from types import SimpleNamespace

    from modelplane.serving.app import plain_inputs

    served: Any = SimpleNamespace(signature=None, name="m")
    columns = plain_inputs([{"city": "Lyon\x00", "n": 1}, {"city": "Nice", "n": 2}], served)
    assert columns["city"].tolist() == ["Lyon\x00", "Nice"]
    assert columns["n"].tolist() == [1, 2]
