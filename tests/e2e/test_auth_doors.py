"""Every door of the serving process follows one rule table: REST, gRPC, /metrics, /feedback.

A real ``modelplane serve`` process with ``MODELPLANE_REQUIRE_AUTH=true`` and
``MODELPLANE_METRICS_AUTH=true`` is called over HTTP and gRPC (sync clients: a grpc.aio server
in the test process would bind the test's event loop). In-process apps cover the defaults
(/metrics open) and the order of checks (a token is refused before the body is read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.api.server import create_serving_app
from modelplane.auth.access import MEMO_S, OPERATIONS, Authenticator
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.errors import Forbidden, Unauthorized
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from modelplane.serving.grpc.auth import RPC_OPERATIONS
from modelplane.serving.options import ServeOptions
from tests.e2e.harness import Server, serve

RNG = np.random.default_rng(5)
X = RNG.normal(size=(100, 4))
Y = (X[:, 0] > 0).astype(int)


@dataclass
class Secured:
    url: str
    grpc_target: str
    read: str
    admin: str
    revoked: str


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("auth") / "home"
    client = Client(Settings(home=home))
    client.log_model(LogisticRegression().fit(X, Y), name="fraud", input_example=X,
                     alias="champion")  # fmt: skip
    read = client.create_token("reader", "read").secret
    admin = client.create_token("boss", "admin").secret
    gone = client.create_token("gone", "admin")
    client.revoke_token(gone.token.id)  # revoked before any use: no memo can hold it
    client.close()
    env = {"MODELPLANE_REQUIRE_AUTH": "true", "MODELPLANE_METRICS_AUTH": "true"}
    server = Server(home, "--model", "fraud", env=env)
    try:
        yield Secured(server.url, f"127.0.0.1:{server.grpc_port}", read, admin, gone.secret)
    finally:
        server.stop()


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def oip_body(rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}  # fmt: skip


def infer_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend(X[0].tolist())
    return request


# -- the rule table ----------------------------------------------------------------------------
class TestRuleTable:
    def test_every_grpc_rpc_has_the_rule_of_its_rest_twin(self) -> None:
        service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
        assert set(RPC_OPERATIONS) == {m.name for m in service.methods}
        assert set(RPC_OPERATIONS.values()) <= set(OPERATIONS)

    def test_unknown_operations_need_admin(self, platform: Platform) -> None:
        auth = Authenticator(platform.tokens, require_auth=False)
        assert auth.scope_for("some_new_route") == "admin"
        assert auth.scope_for("infer") is None
        assert auth.scope_for("repository_load") == "admin"

    def test_a_revoked_token_is_refused_once_its_memo_expires(self, platform: Platform,
                                                              client: Client) -> None:  # fmt: skip
        now = [0.0]
        auth = Authenticator(platform.tokens, require_auth=True, clock=lambda: now[0])
        made = client.create_token("t", "read")
        auth.check("infer", f"Bearer {made.secret}")
        client.revoke_token(made.token.id)
        auth.check("infer", f"Bearer {made.secret}")  # remembered: no database query
        now[0] += MEMO_S + 0.001
        with pytest.raises(Unauthorized):
            auth.check("infer", f"Bearer {made.secret}")

    def test_a_remembered_read_token_is_no_admin_token(self, platform: Platform,
                                                       client: Client) -> None:  # fmt: skip
        auth = Authenticator(platform.tokens, require_auth=True)
        secret = client.create_token("t", "read").secret
        auth.check("infer", f"Bearer {secret}")
        with pytest.raises(Forbidden):
            auth.check("admin_load", f"Bearer {secret}")


# -- REST ----------------------------------------------------------------------------------------
class TestRest:
    @pytest.mark.parametrize("token", [None, "nonsense", "mp_abc_def"])
    def test_infer_without_a_valid_token_is_401(self, secured: Secured,
                                                token: str | None) -> None:  # fmt: skip
        r = httpx.post(f"{secured.url}/v2/models/fraud/infer", json=oip_body(X[:1]),
                       headers=bearer(token))  # fmt: skip
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert isinstance(r.json()["error"], str)  # OIP's shape under /v2

    def test_revoked_token_is_401(self, secured: Secured) -> None:
        for path, body in [("/v2/models/fraud/infer", oip_body(X[:1])),
                           ("/predict", {"model": "fraud", "inputs": X[:1].tolist()})]:  # fmt: skip
            r = httpx.post(secured.url + path, json=body, headers=bearer(secured.revoked))
            assert r.status_code == 401, (path, r.text)

    def test_read_token_predicts_and_reads_metadata(self, secured: Secured) -> None:
        auth = bearer(secured.read)
        assert httpx.post(f"{secured.url}/v2/models/fraud/infer", json=oip_body(X[:1]),
                          headers=auth).status_code == 200  # fmt: skip
        assert httpx.get(f"{secured.url}/v2/models/fraud", headers=auth).status_code == 200
        assert httpx.get(f"{secured.url}/v2/models/fraud/ready", headers=auth).status_code == 200
        assert httpx.get(f"{secured.url}/v2/models/fraud").status_code == 401
        r = httpx.post(f"{secured.url}/predict", headers=auth,
                       json={"model": "fraud", "inputs": X[:1].tolist()})  # fmt: skip
        assert r.status_code == 200, r.text

    def test_read_token_on_admin_routes_is_403(self, secured: Secured) -> None:
        auth = bearer(secured.read)
        assert httpx.get(f"{secured.url}/models", headers=auth).status_code == 403
        r = httpx.post(f"{secured.url}/v2/repository/models/fraud/load", headers=auth)
        assert r.status_code == 403
        assert isinstance(r.json()["error"], str)
        admin = bearer(secured.admin)
        assert httpx.get(f"{secured.url}/models", headers=admin).status_code == 200

    def test_health_and_server_metadata_stay_open(self, secured: Secured) -> None:
        for path in ("/v2/health/live", "/v2/health/ready", "/v2"):
            assert httpx.get(secured.url + path).status_code == 200, path

    def test_feedback_follows_the_prediction_routes(self, secured: Secured) -> None:
        body = {"request_id": "r-auth", "reward": 1.0}
        assert httpx.post(f"{secured.url}/feedback", json=body).status_code == 401
        r = httpx.post(f"{secured.url}/feedback", json=body, headers=bearer(secured.revoked))
        assert r.status_code == 401
        r = httpx.post(f"{secured.url}/feedback", json=body, headers=bearer(secured.read))
        assert r.status_code == 202, r.text

    def test_metrics_need_a_read_token_when_metrics_auth_is_on(self, secured: Secured) -> None:
        assert httpx.get(f"{secured.url}/metrics").status_code == 401
        assert httpx.get(f"{secured.url}/metrics", headers=bearer("bad")).status_code == 401
        r = httpx.get(f"{secured.url}/metrics", headers=bearer(secured.read))
        assert r.status_code == 200
        assert "modelplane_" in r.text


# -- gRPC ----------------------------------------------------------------------------------------
def grpc_code(call: Any, request: Any, token: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    try:
        call(request, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


class TestGrpc:
    @pytest.fixture
    def stub(self, secured: Secured) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
        with grpc.insecure_channel(secured.grpc_target) as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel)

    def calls(self, stub: pb_grpc.GRPCInferenceServiceStub) -> list[tuple[Any, Any]]:
        return [
            (stub.ModelInfer, infer_request()),
            (stub.ModelMetadata, pb.ModelMetadataRequest(name="fraud")),
            (stub.ModelReady, pb.ModelReadyRequest(name="fraud")),
        ]

    @pytest.mark.parametrize("token", [None, "nonsense", "mp_abc_def"])
    def test_model_rpcs_without_a_valid_token_are_unauthenticated(
        self, stub: pb_grpc.GRPCInferenceServiceStub, token: str | None
    ) -> None:
        for call, request in self.calls(stub):
            assert grpc_code(call, request, token) == grpc.StatusCode.UNAUTHENTICATED

    def test_revoked_token_is_unauthenticated(
        self, stub: pb_grpc.GRPCInferenceServiceStub, secured: Secured
    ) -> None:
        for call, request in self.calls(stub):
            assert grpc_code(call, request, secured.revoked) == grpc.StatusCode.UNAUTHENTICATED

    def test_refusal_is_one_line_naming_the_reason(
        self, stub: pb_grpc.GRPCInferenceServiceStub
    ) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(infer_request(), timeout=10)
        details = caught.value.details()
        assert "bearer token" in details
        assert "\n" not in details

    def test_read_token_infers_like_rest(
        self, stub: pb_grpc.GRPCInferenceServiceStub, secured: Secured
    ) -> None:
        for call, request in self.calls(stub):
            assert grpc_code(call, request, secured.read) == grpc.StatusCode.OK
        metadata = (("authorization", f"Bearer {secured.read}"),)
        answer = stub.ModelInfer(infer_request(), timeout=10, metadata=metadata)
        rest = httpx.post(f"{secured.url}/v2/models/fraud/infer", json=oip_body(X[:1]),
                          headers=bearer(secured.read)).json()  # fmt: skip
        assert list(answer.outputs[0].contents.int64_contents) == rest["outputs"][0]["data"]

    def test_health_rpcs_stay_open(self, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        assert stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10).name == "modelplane"


# -- in process: defaults, admin RPCs, order of checks -----------------------------------------
@pytest.fixture
def fraud(client: Client) -> Client:
    client.log_model(LogisticRegression().fit(X, Y), name="fraud", input_example=X)
    return client


@pytest.mark.anyio
class TestInProcess:
    async def test_metrics_are_open_by_default_even_with_require_auth(
        self, platform: Platform, fraud: Client
    ) -> None:
        platform.settings.require_auth = True
        async with serve(platform) as http:
            assert (await http.get("/metrics")).status_code == 200

    async def test_metrics_auth_alone_closes_metrics(self, platform: Platform,
                                                     fraud: Client) -> None:  # fmt: skip
        platform.settings.metrics_auth = True
        read = fraud.create_token("r", "read").secret
        async with serve(platform) as http:
            r = await http.get("/metrics")
            assert r.status_code == 401
            assert isinstance(r.json()["error"], dict)  # not a /v2 route: the API's shape
            assert (await http.get("/metrics", headers=bearer(read))).status_code == 200
            # prediction routes stay open: require_auth is off
            r = await http.post("/v2/models/fraud/infer", json=oip_body(X[:1]))
            assert r.status_code == 200

    @pytest.mark.parametrize("path", ["/v2/models/fraud/infer", "/predict", "/feedback"])
    async def test_a_token_is_refused_before_the_body_is_read(
        self, platform: Platform, fraud: Client, path: str
    ) -> None:
        """The body never arrives (``receive`` never returns): the 401 comes anyway."""
        platform.settings.require_auth = True
        app = create_serving_app(platform=platform, options=ServeOptions(
            grpc_port=None, poll_interval_s=3600, access_log=False))  # fmt: skip
        never = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            await never.wait()
            raise AssertionError("the body was read")  # pragma: no cover

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "server": ("modelplane", 80),
                 "client": ("127.0.0.1", 1),
                 "headers": [(b"host", b"modelplane"), (b"content-type", b"application/json"),
                             (b"content-length", b"100000")]}  # fmt: skip
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
        assert sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] == 401
