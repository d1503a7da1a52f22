"""The OIP v2 gRPC server on a real port, called through the generated stub over ``grpc.aio``.

A small fake :class:`InferenceCore` stands behind it: model ``echo`` returns its inputs,
``double`` doubles ``input-0``, ``fail`` raises the error class named by its ``raise``
parameter, and any other model is not found. With ``tritonclient[grpc]`` installed, Triton's own
client is run against the server in a subprocess (its copy of the protocol cannot share a
process with ours: see ``modelplane.serving.grpc``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest

from modelplane import errors
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb2
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from modelplane.serving.grpc.server import GrpcServer, start_grpc_server
from modelplane.serving.types import InferRequest, InferResult, ModelInfo, TensorMeta

pytestmark = pytest.mark.anyio

Array = np.ndarray[Any, Any]


class FakeCore:
    """An InferenceCore that records its requests."""

    def __init__(self) -> None:
        self.is_ready = True
        self.requests: list[InferRequest] = []

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.is_ready

    def _check(self, model: str) -> str:
        base = model.split("@", 1)[0]
        if base not in ("echo", "double", "fail"):
            raise errors.ModelNotFound(f"model {model!r} is not registered", field="model")
        return base

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        return self._check(model) != "fail"

    async def model_info(self, model: str, version: str | None = None) -> ModelInfo:
        self._check(model)
        return ModelInfo(
            name=model,
            versions=("3",),
            platform="modelplane_sklearn",
            inputs=(TensorMeta("input-0", "FP64", (-1, 4)),),
            outputs=(TensorMeta("predict", "FP64", (-1,)),),
        )

    async def infer(self, request: InferRequest) -> InferResult:
        self.requests.append(request)
        base = self._check(request.model)
        if base == "fail":
            kind = getattr(errors, str(request.parameters.get("raise")), RuntimeError)
            raise kind("it went wrong")
        outputs = dict(request.inputs)
        if base == "double":
            outputs = {"output-0": request.inputs["input-0"] * 2}
        return InferResult(
            model=request.model,
            version=int(request.version or 3),
            outputs=outputs,
            id=request.id,
            fallback=request.model.endswith("@challenger"),
            parameters=dict(request.parameters),
        )


@pytest.fixture
def core() -> FakeCore:
    return FakeCore()


@pytest.fixture(scope="module")
async def one_loop() -> AsyncIterator[None]:
    """Hold the test runner's event loop for the whole module: anyio closes it between tests
    when nothing holds it, and grpc.aio's poller, bound to an earlier loop, then posts to a
    closed one ("Event loop is closed", intermittently)."""
    yield  # noqa: PT022 - the yield is the point: the loop is held until the module ends


@pytest.fixture
async def server(one_loop: None, core: FakeCore) -> AsyncIterator[GrpcServer]:
    running = await start_grpc_server(core, host="127.0.0.1", port=0, extensions=["x"])
    yield running
    await running.stop(None)


@pytest.fixture
async def stub(server: GrpcServer) -> AsyncIterator[pb2_grpc.GRPCInferenceServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        yield pb2_grpc.GRPCInferenceServiceStub(channel)


SAMPLES: dict[str, Array] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "INT8": np.array([[-128, 127], [0, 1]], dtype=np.int8),
    "INT16": np.array([[-32768, 32767], [0, 1]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [0, 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [0, 1]], dtype=np.int64),
    "UINT8": np.array([[0, 255], [1, 2]], dtype=np.uint8),
    "UINT16": np.array([[0, 65535], [1, 2]], dtype=np.uint16),
    "UINT32": np.array([[0, 2**32 - 1], [1, 2]], dtype=np.uint32),
    "UINT64": np.array([[0, 2**64 - 1], [1, 2]], dtype=np.uint64),
    "FP16": np.array([[0.5, -1.25], [65504.0, 0.0]], dtype=np.float16),
    "FP32": np.array([[0.1, -1e30], [3.5, 0.0]], dtype=np.float32),
    "FP64": np.array([[0.1, -1e300], [3.5, 0.0]], dtype=np.float64),
    "BYTES": np.array([[b"a", b""], [b"\xff\x00", "é".encode()]], dtype=object),
}
TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def typed_input(name: str, datatype: str, array: Array) -> pb2.ModelInferRequest.InferInputTensor:
    tensor = pb2.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=list(array.shape)
    )
    getattr(tensor.contents, TYPED_FIELD[datatype]).extend(array.ravel().tolist())
    return tensor


def raw_bytes(datatype: str, array: Array) -> bytes:
    if datatype != "BYTES":
        return array.astype(array.dtype.newbyteorder("<")).tobytes()
    return b"".join(len(x).to_bytes(4, "little") + x for x in array.ravel())


def typed_output(output: pb2.ModelInferResponse.InferOutputTensor) -> Array:
    values = list(getattr(output.contents, TYPED_FIELD[output.datatype]))
    dtype = object if output.datatype == "BYTES" else SAMPLES[output.datatype].dtype
    array = np.empty(len(values), dtype=dtype)
    array[:] = values
    return array.reshape(tuple(output.shape))


class TestHealthAndMetadata:
    async def test_server_live_and_ready_follow_the_core(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, core: FakeCore
    ) -> None:
        assert (await stub.ServerLive(pb2.ServerLiveRequest())).live
        assert (await stub.ServerReady(pb2.ServerReadyRequest())).ready
        core.is_ready = False
        assert not (await stub.ServerReady(pb2.ServerReadyRequest())).ready

    async def test_server_metadata_names_the_server_and_its_extensions(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        meta = await stub.ServerMetadata(pb2.ServerMetadataRequest())
        assert meta.name == "modelplane"
        assert meta.version
        assert list(meta.extensions) == ["x"]

    async def test_model_ready_for_a_known_model_and_alias(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        assert (await stub.ModelReady(pb2.ModelReadyRequest(name="echo"))).ready
        assert (await stub.ModelReady(pb2.ModelReadyRequest(name="double@challenger"))).ready
        assert not (await stub.ModelReady(pb2.ModelReadyRequest(name="fail"))).ready

    async def test_model_ready_for_an_unknown_model_is_not_found(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelReady(pb2.ModelReadyRequest(name="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in (caught.value.details() or "")

    async def test_model_metadata_carries_the_signature(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        meta = await stub.ModelMetadata(pb2.ModelMetadataRequest(name="echo", version="3"))
        assert meta.name == "echo"
        assert list(meta.versions) == ["3"]
        assert meta.platform == "modelplane_sklearn"
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
            ("input-0", "FP64", [-1, 4])
        ]
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
            ("predict", "FP64", [-1])
        ]

    async def test_a_missing_name_is_invalid_argument(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelMetadata(pb2.ModelMetadataRequest())
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestModelInfer:
    async def test_typed_contents_of_every_datatype_round_trip_typed(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, core: FakeCore
    ) -> None:
        typed = {k: v for k, v in SAMPLES.items() if k != "FP16"}
        request = pb2.ModelInferRequest(
            model_name="echo",
            inputs=[typed_input(dt, dt, array) for dt, array in typed.items()],
        )
        response = await stub.ModelInfer(request)
        assert not response.raw_output_contents
        for dt, array in typed.items():
            got = core.requests[-1].inputs[dt]
            assert got.dtype == array.dtype
            np.testing.assert_array_equal(got, array)
        returned = {o.name: o for o in response.outputs}
        for dt, array in typed.items():
            assert returned[dt].datatype == dt
            assert list(returned[dt].shape) == [2, 2]
            np.testing.assert_array_equal(typed_output(returned[dt]), array)

    async def test_raw_contents_of_every_datatype_round_trip_raw(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, core: FakeCore
    ) -> None:
        request = pb2.ModelInferRequest(
            model_name="echo",
            inputs=[
                pb2.ModelInferRequest.InferInputTensor(name=dt, datatype=dt, shape=[2, 2])
                for dt in SAMPLES
            ],
            raw_input_contents=[raw_bytes(dt, array) for dt, array in SAMPLES.items()],
        )
        response = await stub.ModelInfer(request)
        for dt, array in SAMPLES.items():
            got = core.requests[-1].inputs[dt]
            assert got.dtype == array.dtype
            np.testing.assert_array_equal(got, array)
        assert [o.name for o in response.outputs] == list(SAMPLES)
        assert list(response.raw_output_contents) == [raw_bytes(dt, a) for dt, a in SAMPLES.items()]
        assert all(not o.HasField("contents") for o in response.outputs)

    async def test_fp16_output_goes_raw_even_for_a_typed_request(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        half = SAMPLES["FP16"]
        request = pb2.ModelInferRequest(
            model_name="echo",
            inputs=[
                pb2.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[2, 2])
            ],
            raw_input_contents=[raw_bytes("FP16", half)],
        )
        response = await stub.ModelInfer(request)
        assert response.raw_output_contents[0] == raw_bytes("FP16", half)

    async def test_fp16_in_typed_contents_is_refused(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        tensor = pb2.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[1])
        tensor.contents.fp32_contents.append(1.0)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(pb2.ModelInferRequest(model_name="echo", inputs=[tensor]))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents" in (caught.value.details() or "")

    async def test_double_answers_with_id_version_parameters_and_fallback(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, core: FakeCore
    ) -> None:
        x = np.array([[1.0, 2.0], [3.0, 4.0]])
        request = pb2.ModelInferRequest(
            model_name="double@challenger",
            model_version="7",
            id="req-1",
            inputs=[typed_input("input-0", "FP64", x)],
            outputs=[pb2.ModelInferRequest.InferRequestedOutputTensor(name="output-0")],
        )
        request.parameters["unit"].string_param = "u-9"
        request.parameters["n"].int64_param = -3
        request.parameters["flag"].bool_param = True
        request.parameters["ratio"].double_param = 0.25
        response = await stub.ModelInfer(request)
        seen = core.requests[-1]
        assert (seen.model, seen.version, seen.id) == ("double@challenger", "7", "req-1")
        assert seen.outputs == ("output-0",)
        assert dict(seen.parameters) == {"unit": "u-9", "n": -3, "flag": True, "ratio": 0.25}
        assert (response.model_name, response.model_version, response.id) == (
            "double@challenger",
            "7",
            "req-1",
        )
        assert response.parameters["fallback"].bool_param is True
        assert response.parameters["unit"].string_param == "u-9"
        assert response.parameters["n"].int64_param == -3
        assert response.parameters["ratio"].double_param == 0.25
        np.testing.assert_array_equal(typed_output(response.outputs[0]), x * 2)

    @pytest.mark.parametrize(
        ("make", "needle"),
        [
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    inputs=[typed_input("input-0", "FP64", np.ones(2))],
                ),
                "model_name",
                id="no-model-name",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(
                            name="x", datatype="FP64", shape=[3], contents={"fp64_contents": [1.0]}
                        )
                    ],
                ),
                "holds 3",
                id="count-mismatch",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP64")],
                    raw_input_contents=[b"", b""],
                ),
                "raw_input_contents",
                id="raw-count",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[2])
                    ],
                    raw_input_contents=[b"\x00" * 15],
                ),
                "takes 16",
                id="raw-size",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(
                            name="x", datatype="FP64", shape=[1], contents={"fp64_contents": [1]}
                        )
                    ],
                    raw_input_contents=[b"\x00" * 8],
                ),
                "raw_input_contents",
                id="contents-and-raw",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(
                            name="x", datatype="INT8", shape=[1], contents={"int_contents": [300]}
                        )
                    ],
                ),
                "range",
                id="int8-out-of-range",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(name="x", datatype="BF16", shape=[0])
                    ],
                ),
                "unknown datatype",
                id="unknown-datatype",
            ),
            pytest.param(
                lambda: pb2.ModelInferRequest(
                    model_name="echo",
                    inputs=[
                        pb2.ModelInferRequest.InferInputTensor(
                            name="x", datatype="FP64", shape=[-1]
                        )
                    ],
                ),
                "negative",
                id="negative-dim",
            ),
        ],
    )
    async def test_bad_requests_are_invalid_argument(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, make: Any, needle: str
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(make())
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in (caught.value.details() or "")


class TestErrorCodes:
    @pytest.mark.parametrize(
        ("error", "code"),
        [
            ("InvalidInput", grpc.StatusCode.INVALID_ARGUMENT),
            ("SignatureMismatch", grpc.StatusCode.INVALID_ARGUMENT),
            ("MalformedRequest", grpc.StatusCode.INVALID_ARGUMENT),
            ("VersionNotFound", grpc.StatusCode.NOT_FOUND),
            ("Unauthorized", grpc.StatusCode.UNAUTHENTICATED),
            ("Forbidden", grpc.StatusCode.PERMISSION_DENIED),
            ("Overloaded", grpc.StatusCode.UNAVAILABLE),
            ("CircuitOpen", grpc.StatusCode.UNAVAILABLE),
            ("NotReady", grpc.StatusCode.UNAVAILABLE),
            ("DeadlineExceeded", grpc.StatusCode.DEADLINE_EXCEEDED),
            ("PayloadTooLarge", grpc.StatusCode.RESOURCE_EXHAUSTED),
            ("ArtifactMissing", grpc.StatusCode.INTERNAL),
            ("ModelplaneError", grpc.StatusCode.INTERNAL),
        ],
    )
    async def test_core_errors_map_to_status_codes_with_their_message(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, error: str, code: grpc.StatusCode
    ) -> None:
        request = pb2.ModelInferRequest(model_name="fail")
        request.parameters["raise"].string_param = error
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert caught.value.code() == code
        if code == grpc.StatusCode.INTERNAL:  # a 500 says its stable code, never the cause
            assert "it went wrong" not in (caught.value.details() or "")
            assert "internal error" in (caught.value.details() or "")
        else:
            assert caught.value.details() == "it went wrong"

    async def test_overloaded_says_when_to_retry(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        request = pb2.ModelInferRequest(model_name="fail")
        request.parameters["raise"].string_param = "Overloaded"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert ("retry-after", "1") in tuple(caught.value.trailing_metadata() or ())

    async def test_an_unexpected_exception_is_internal_without_its_details(
        self, stub: pb2_grpc.GRPCInferenceServiceStub, caplog: pytest.LogCaptureFixture
    ) -> None:
        request = pb2.ModelInferRequest(model_name="fail")
        request.parameters["raise"].string_param = "NoSuchThing"  # -> RuntimeError
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert "it went wrong" not in (caught.value.details() or "")
        assert "unexpected error" in caplog.text

    async def test_unknown_model_is_not_found(
        self, stub: pb2_grpc.GRPCInferenceServiceStub
    ) -> None:
        request = pb2.ModelInferRequest(
            model_name="nope", inputs=[typed_input("input-0", "FP64", np.ones(1))]
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


class TestServer:
    async def test_port_zero_binds_a_free_port(self, server: GrpcServer) -> None:
        assert server.bound_port > 0

    async def test_a_message_over_the_limit_is_resource_exhausted(self, core: FakeCore) -> None:
        running = await start_grpc_server(core, host="127.0.0.1", port=0, max_message_bytes=1024)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.bound_port}") as channel:
                stub = pb2_grpc.GRPCInferenceServiceStub(channel)
                request = pb2.ModelInferRequest(
                    model_name="echo", inputs=[typed_input("input-0", "FP64", np.ones(512))]
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.ModelInfer(request)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await running.stop(None)


TRITON_CLIENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(sys.argv[1])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("double")
    meta = client.get_model_metadata("double")
    assert meta.inputs[0].datatype == "FP64", meta
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    words = np.array([b"ab", b"c"], dtype=object)
    inputs = [grpcclient.InferInput("input-0", [2, 3], "FP32"),
              grpcclient.InferInput("words", [2], "BYTES")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(words)
    result = client.infer("double", inputs, request_id="t-1")
    np.testing.assert_array_equal(result.as_numpy("output-0"), x * 2)
    assert result.get_response().id == "t-1"
    result = client.infer("echo", inputs)
    assert list(result.as_numpy("words")) == [b"ab", b"c"]
    try:
        client.infer("nope", inputs)
    except grpcclient.InferenceServerException as exc:
        assert exc.status() == "StatusCode.NOT_FOUND", exc.status()
    else:
        raise AssertionError("no error for an unknown model")
    print("ok")
    """
)


@pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None, reason="tritonclient is not installed"
)
async def test_tritons_grpc_client_works_with_its_defaults(server: GrpcServer) -> None:
    import anyio.to_thread

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", TRITON_CLIENT, f"127.0.0.1:{server.bound_port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = await anyio.to_thread.run_sync(run)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
