"""OIP: a request that names no ``outputs`` gets every output of the model, as the protocol says
(the prediction, and the probabilities when the model has them), on REST JSON, REST binary and
gRPC of a real ``modelplane serve`` process; a request that names some gets those alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.e2e.harness import Server
from tests.e2e.test_tensor_types_property import HEADER

RNG = np.random.default_rng(17)
X = RNG.normal(size=(100, 3))
Y = (X[:, 0] > 0).astype(int)
ROWS = X[:4]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("oip-outputs")
    client = Client(Settings(home=home))
    client.log_model(LogisticRegression().fit(X, Y), name="classifier", input_example=X)
    client.log_model(LinearRegression().fit(X, X[:, 1]), name="regressor", input_example=X)
    client.close()
    s = Server(home, "--model", "classifier", "--model", "regressor")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stub(server: Server) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def body(**extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": list(ROWS.shape),
                "data": ROWS.ravel().tolist(),
            }
        ],
        **extra,
    }


def metadata_outputs(server: Server, model: str) -> list[str]:
    meta = httpx.get(f"{server.url}/v2/models/{model}", timeout=10).json()
    return [o["name"] for o in meta["outputs"]]


def rest_names(server: Server, model: str, doc: dict[str, Any]) -> list[str]:
    r = httpx.post(f"{server.url}/v2/models/{model}/infer", json=doc, timeout=30)
    assert r.status_code == 200, r.text
    return [o["name"] for o in r.json()["outputs"]]


def grpc_names(
    stub: pb_grpc.GRPCInferenceServiceStub, model: str, *names: str, raw: bool = False
) -> list[str]:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=list(ROWS.shape)
    )
    raws = [ROWS.astype("<f8").tobytes()] if raw else []
    if not raw:
        tensor.contents.fp64_contents.extend(ROWS.ravel().tolist())
    reply = stub.ModelInfer(
        pb.ModelInferRequest(
            model_name=model,
            inputs=[tensor],
            raw_input_contents=raws,
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in names],
        ),
        timeout=30,
    )
    if raw:
        assert len(reply.raw_output_contents) == len(reply.outputs)
    return [o.name for o in reply.outputs]


class TestNoOutputsMeansEveryOutput:
    def test_rest_json(self, server: Server) -> None:
        assert rest_names(server, "classifier", body()) == ["predict", "predict_proba"]
        assert rest_names(server, "classifier", body(outputs=None)) == ["predict", "predict_proba"]

    def test_rest_binary(self, server: Server) -> None:
        raw = ROWS.astype("<f8").tobytes()
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "datatype": "FP64",
                        "shape": list(ROWS.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        )
        r = httpx.post(
            f"{server.url}/v2/models/classifier/infer",
            content=header + raw,
            headers={HEADER: str(len(header))},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        length = int(r.headers[HEADER])
        outputs = orjson.loads(r.content[:length])["outputs"]
        assert [o["name"] for o in outputs] == ["predict", "predict_proba"]
        sizes = [o["parameters"]["binary_data_size"] for o in outputs]
        assert length + sum(sizes) == len(r.content)
        proba = np.frombuffer(r.content[length + sizes[0] :], dtype="<f8").reshape(4, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    @pytest.mark.parametrize("raw", [False, True])
    def test_grpc(self, stub: pb_grpc.GRPCInferenceServiceStub, raw: bool) -> None:
        assert grpc_names(stub, "classifier", raw=raw) == ["predict", "predict_proba"]

    def test_the_outputs_are_those_the_metadata_lists(
        self, server: Server, stub: pb_grpc.GRPCInferenceServiceStub
    ) -> None:
        for model in ("classifier", "regressor"):
            listed = metadata_outputs(server, model)
            assert rest_names(server, model, body()) == listed
            assert grpc_names(stub, model) == listed

    def test_a_model_without_probabilities_answers_its_prediction(
        self, server: Server, stub: pb_grpc.GRPCInferenceServiceStub
    ) -> None:
        assert rest_names(server, "regressor", body()) == ["predict"]
        assert grpc_names(stub, "regressor") == ["predict"]


class TestNamedOutputs:
    def test_only_those_named_come_back(
        self, server: Server, stub: pb_grpc.GRPCInferenceServiceStub
    ) -> None:
        only_proba = body(outputs=[{"name": "predict_proba"}])
        assert rest_names(server, "classifier", only_proba) == ["predict_proba"]
        assert rest_names(server, "classifier", body(outputs=[{"name": "predict"}])) == ["predict"]
        assert grpc_names(stub, "classifier", "predict_proba") == ["predict_proba"]

    def test_an_empty_list_is_every_output_too(self, server: Server) -> None:
        assert rest_names(server, "classifier", body(outputs=[])) == ["predict", "predict_proba"]

    def test_binary_data_output_applies_to_every_output_of_an_empty_list(self) -> None:
        from modelplane.serving.oip import binary_outputs_requested, decode_infer_request

        doc = body(outputs=[], parameters={"binary_data_output": True})
        request = decode_infer_request(
            orjson.dumps(doc), header_length=None, model="m", version=None
        )
        assert request.outputs == ()
        assert binary_outputs_requested(request) is True
