"""gRPC status messages say what a REST body would: no server path, no cause of a 500.

A core whose errors name server paths stands behind a real ``grpc.aio`` server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from modelplane import errors
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb2
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from modelplane.serving.grpc.server import start_grpc_server
from modelplane.serving.types import InferRequest, InferResult, ModelInfo
from tests.integration.test_grpc_server import FakeCore

pytestmark = pytest.mark.anyio

SECRET = "/srv/modelplane/home/artifacts/ab/cdef"


class PathCore(FakeCore):
    """Model ``input`` fails as the caller's fault, ``artifact`` as the server's, both naming
    a server path."""

    async def model_info(self, model: str, version: str | None = None) -> ModelInfo:
        raise errors.ArtifactMissing(f"no model file at {SECRET}/model.skops")

    async def infer(self, request: InferRequest) -> InferResult:
        if request.model == "input":
            raise errors.InvalidInput(f"cannot read {SECRET}/lookup.parquet", field="inputs")
        raise errors.ArtifactCorrupted(f"{SECRET}/model.skops: digest mismatch")


@pytest.fixture(scope="module")
async def one_loop() -> AsyncIterator[None]:
    """Hold the event loop for the module (see tests/integration/test_grpc_server.py)."""
    yield  # noqa: PT022 - the yield is the point: the loop is held until the module ends


@pytest.fixture
async def stub(one_loop: None) -> AsyncIterator[pb2_grpc.GRPCInferenceServiceStub]:
    server = await start_grpc_server(PathCore(), host="127.0.0.1", port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        yield pb2_grpc.GRPCInferenceServiceStub(channel)
    await server.stop(None)


async def test_a_client_error_names_the_file_not_its_path(
    stub: pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(pb2.ModelInferRequest(model_name="input"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "cannot read lookup.parquet"


@pytest.mark.parametrize("rpc", ["ModelInfer", "ModelMetadata"])
async def test_a_server_error_says_its_code_only(
    stub: pb2_grpc.GRPCInferenceServiceStub, rpc: str
) -> None:
    request = (
        pb2.ModelInferRequest(model_name="artifact")
        if rpc == "ModelInfer"
        else pb2.ModelMetadataRequest(name="artifact")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, rpc)(request)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    details = caught.value.details() or ""
    assert "/srv" not in details
    assert "model.skops" not in details
    assert details.startswith("internal error (artifact_")
