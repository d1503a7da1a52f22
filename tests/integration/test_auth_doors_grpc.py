"""The gRPC bearer check on a real ``grpc.aio`` server: an RPC with no rule of its own needs an
admin token (closed by default), and a too-small scope is PERMISSION_DENIED.

The service has no admin RPC today, so the server here also holds a generic
``RepositoryModelLoad`` handler (a name the protocol's repository extension uses) next to the
real servicer; the interceptor is the one ``modelplane serve`` installs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from modelplane.auth.access import Authenticator
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb2
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from modelplane.serving.grpc.auth import auth_interceptors
from modelplane.serving.grpc.server import InferenceServicer
from tests.integration.test_grpc_server import FakeCore

pytestmark = pytest.mark.anyio

ADMIN_RPC = "/inference.GRPCInferenceService/RepositoryModelLoad"


@pytest.fixture(scope="module")
async def one_loop() -> AsyncIterator[None]:
    """Hold the event loop for the module (see tests/integration/test_grpc_server.py)."""
    yield  # noqa: PT022 - the yield is the point: the loop is held until the module ends


async def _loaded(request: bytes, context: Any) -> bytes:
    return b"loaded"


@pytest.fixture
async def target(one_loop: None, platform: Platform) -> AsyncIterator[str]:
    auth = Authenticator(platform.tokens, require_auth=True)
    server = grpc.aio.server(interceptors=auth_interceptors(auth))
    pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(FakeCore()), server)
    admin_only = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {"RepositoryModelLoad": grpc.unary_unary_rpc_method_handler(_loaded)},
    )
    server.add_generic_rpc_handlers((admin_only,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def call(target: str, token: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await channel.unary_unary(ADMIN_RPC)(b"fraud", metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    return grpc.StatusCode.OK


async def test_read_token_on_an_admin_rpc_is_permission_denied(target: str,
                                                               client: Client) -> None:  # fmt: skip
    read = client.create_token("r", "read").secret
    assert await call(target, read) == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_rpc_without_a_token_is_unauthenticated(target: str) -> None:
    assert await call(target, None) == grpc.StatusCode.UNAUTHENTICATED


async def test_admin_token_passes_the_admin_rpc(target: str, client: Client) -> None:
    admin = client.create_token("a", "admin").secret
    assert await call(target, admin) == grpc.StatusCode.OK


async def test_read_token_reaches_the_model_rpcs(target: str, client: Client) -> None:
    read = client.create_token("r", "read").secret
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb2_grpc.GRPCInferenceServiceStub(channel)
        metadata = (("authorization", f"Bearer {read}"),)
        reply = await stub.ModelMetadata(pb2.ModelMetadataRequest(name="echo"), metadata=metadata)
        assert reply.name == "echo"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelMetadata(pb2.ModelMetadataRequest(name="echo"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await stub.ServerLive(pb2.ServerLiveRequest())).live


def test_no_interceptor_when_every_rpc_is_open(platform: Platform) -> None:
    assert auth_interceptors(Authenticator(platform.tokens, require_auth=False)) == ()
