"""A real ``modelplane serve`` process: readiness, REST and gRPC agree, graceful SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from modelplane.client import Client
from modelplane.config import Settings
from tests.e2e import serving_models
from tests.e2e.harness import Server, wait_for

RNG = np.random.default_rng(11)
X = RNG.normal(size=(200, 5))
Y = (X[:, 0] + X[:, 3] > 0).astype(int)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "serve-home"
    client = Client(Settings(home=home))
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3).fit(X, Y)
    client.log_model(model, name="fraud", input_example=X, alias="champion")
    client.log_model(serving_models.slow, trust=True, name="slow", input_example=X)
    client.log_model(serving_models.held, trust=True, name="held", input_example=X)
    client.close()
    return home


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    s = Server(home, "--model", "fraud@champion")
    yield s
    s.stop()


def rest_infer(url: str, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    r = httpx.post(f"{url}/v2/models/fraud/infer", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def test_rest_and_grpc_give_identical_outputs(server: Server) -> None:
    from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
    from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    rows = X[:7]
    rest = rest_infer(server.url, rows)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest()).ready
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="input-0",
            datatype="FP64",
            shape=list(rows.shape),
            contents=pb.InferTensorContents(fp64_contents=rows.ravel().tolist()),
        )
        reply = stub.ModelInfer(
            pb.ModelInferRequest(
                model_name="fraud",
                inputs=[tensor],
                outputs=[
                    pb.ModelInferRequest.InferRequestedOutputTensor(name="predict"),
                    pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"),
                ],
            )
        )
    got: dict[str, np.ndarray[Any, Any]] = {}
    for out in reply.outputs:
        field = {"INT64": "int64_contents", "FP64": "fp64_contents", "INT32": "int_contents"}[
            out.datatype
        ]
        got[out.name] = np.asarray(getattr(out.contents, field)).reshape(list(out.shape))
    np.testing.assert_array_equal(got["predict"], rest["predict"])
    np.testing.assert_array_equal(got["predict_proba"], rest["predict_proba"])


def _ready(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_lets_in_flight_requests_finish(home: Path, tmp_path: Path) -> None:
    """The request is provably inside the model (it said so through a file) when SIGTERM is
    sent, and the model lets it go only after the signal: no sleep decides the order."""
    gate = tmp_path / "gate"
    gate.mkdir()
    server = Server(home, "--model", "held", env={"MODELPLANE_TEST_GATE": str(gate)})
    result: dict[str, int] = {}

    def held_call() -> None:
        rows = X[:1].copy()
        rows[0, 0] = serving_models.HOLD
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 5],
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        r = httpx.post(f"{server.url}/v2/models/held/infer", json=body, timeout=60)
        result["status"] = r.status_code

    try:
        assert httpx.get(f"{server.url}/v2/models/held", timeout=30).status_code == 200
        caller = threading.Thread(target=held_call)
        caller.start()
        wait_for((gate / "started").exists, "the request to reach the model")
        server.proc.send_signal(signal.SIGTERM)
        # the server has taken the signal: not ready, or not listening
        wait_for(lambda: not _ready(server), "the server to take SIGTERM")
        (gate / "release").touch()
        caller.join(timeout=60)
        assert result.get("status") == 200
        assert server.proc.wait(timeout=60) == 0
    finally:
        server.stop()


def test_grpc_carries_the_unit_and_names_the_variant(tmp_path: Path) -> None:
    """In a real process (a grpc.aio server in the test process would bind the test's event
    loop, which closes after the test): REST and gRPC route a unit to the same variant."""
    from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
    from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    home = tmp_path / "ab-home"
    client = Client(Settings(home=home))
    client.log_model(
        serving_models.row_sums, trust=True, name="live", input_example=X, alias="champion"
    )
    client.log_model(serving_models.times_ten, trust=True, name="live", input_example=X)
    client.create_experiment("ab", "live", {"a": (1, 50.0), "b": (2, 50.0)})
    client.experiment_action("ab", "start")
    client.close()
    server = Server(home, "--model", "live", "--poll-interval", "0.2")
    try:
        expected = {}
        for i in range(8):
            r = httpx.post(
                f"{server.url}/predict",
                timeout=10,
                json={"model": "live", "inputs": X[:1].tolist(), "unit_id": f"g{i}"},
            )
            assert r.status_code == 200, r.text
            expected[f"g{i}"] = (r.json()["variant"], r.json()["version"])
        assert {v for v, _ in expected.values()} == {"a", "b"}
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for unit, (variant, version) in expected.items():
                request = pb.ModelInferRequest(model_name="live")
                tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, 5])
                tensor.contents.fp64_contents.extend(X[0].tolist())
                request.parameters["unit_id"].string_param = unit
                reply = stub.ModelInfer(request)
                assert reply.parameters["variant"].string_param == variant
                assert reply.parameters["experiment"].string_param == "ab"
                assert reply.model_version == str(version)
    finally:
        assert server.stop() == 0


def test_inline_model_answers_one_client_and_many_alike(home: Path) -> None:
    """``--threads 0``: predictions on the event loop. One client at a time takes the sole-request
    path (predicted at once); concurrent clients are batched; both give the model's answers, and
    a NaN (JSON null in an FP64 tensor) is refused with 422 on either path."""
    from concurrent.futures import ThreadPoolExecutor

    expected = [int(v) for v in Client(Settings(home=home)).load_model("fraud").predict(X[:40])]
    s = Server(home, "--model", "fraud@champion", "--threads", "0", "--max-batch-size", "32")
    try:
        one_by_one = [int(rest_infer(s.url, X[i : i + 1])["predict"][0]) for i in range(40)]
        with httpx.Client(base_url=s.url, timeout=10) as http:

            def call(i: int) -> httpx.Response:
                data = X[i].tolist() if i != 13 else [None] * 5
                body = {
                    "inputs": [
                        {"name": "input-0", "shape": [1, 5], "datatype": "FP64", "data": data}
                    ]
                }
                return http.post("/v2/models/fraud/infer", json=body)

            with ThreadPoolExecutor(16) as pool:
                together = list(pool.map(call, range(40)))
            alone_nan = call(13)
    finally:
        assert s.stop() == 0
    assert one_by_one == expected
    assert together[13].status_code == 422
    assert alone_nan.status_code == 422
    assert "NaN" in alone_nan.json()["error"]
    answers = [int(r.json()["outputs"][0]["data"][0]) for i, r in enumerate(together) if i != 13]
    assert answers == [v for i, v in enumerate(expected) if i != 13]


def test_the_access_log_writes_one_json_line_per_request_on_stderr(home: Path) -> None:
    import orjson

    server = Server(home, "--model", "fraud@champion", "--access-log")
    try:
        ids = []
        for _ in range(3):
            r = httpx.post(
                f"{server.url}/v2/models/fraud/infer",
                json={
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, 5],
                            "datatype": "FP64",
                            "data": X[0].tolist(),
                        }
                    ]
                },
                timeout=10,
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])

        def lines() -> list[dict[str, Any]]:
            text = server.log_path.read_text()
            return [orjson.loads(x) for x in text.splitlines() if x.startswith('{"ts"')]

        wait_for(lambda: len([x for x in lines() if x["path"].endswith("/infer")]) == 3,
                 "three access lines")  # fmt: skip
        infer = [x for x in lines() if x["path"].endswith("/infer")]
        assert [x["request_id"] for x in infer] == ids
        assert {(x["model"], x["status"], x["method"]) for x in infer} == {("fraud", 200, "POST")}
    finally:
        assert server.stop() == 0
