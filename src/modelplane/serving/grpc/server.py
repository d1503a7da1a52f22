"""The OIP v2 gRPC service on ``grpc.aio``, over the same :class:`InferenceCore` as REST.

``ModelInfer`` takes tensor contents in either form the protocol allows: the typed
``InferTensorContents`` fields (``fp32_contents``…), or ``raw_input_contents`` (what Triton's
client sends by default; decoded zero-copy by the REST codec's binary reader). The answer comes
back in the form the request used: raw when the request was raw, typed otherwise; raw in any
case when an output is FP16, which has no typed field.

Errors become gRPC status codes::

    InvalidInput (SignatureMismatch…), MalformedRequest   INVALID_ARGUMENT
    NotFound (ModelNotFound, VersionNotFound…)           NOT_FOUND
    Unauthorized                                         UNAUTHENTICATED
    Forbidden                                            PERMISSION_DENIED
    Unavailable (Overloaded, CircuitOpen, NotReady)      UNAVAILABLE (+ retry-after trailer)
    DeadlineExceeded                                     DEADLINE_EXCEEDED
    PayloadTooLarge                                      RESOURCE_EXHAUSTED
    any other ModelplaneError                            INTERNAL, with a fixed message
    anything else                                        INTERNAL, logged

A status message is what a REST client would read (``serving.errors.public_message``): a 500 says
its stable code only (the exception is logged), and absolute paths are cut to file names.
Authentication is an interceptor (``auth.py``), passed in by the serving app.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias

import grpc
import numpy as np

from modelplane.core.version import VERSION
from modelplane.errors import (
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    MalformedRequest,
    ModelplaneError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from modelplane.serving import oip
from modelplane.serving.errors import public_message
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb2
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from modelplane.serving.types import InferenceCore, InferRequest, InferResult, TensorMeta

__all__ = [
    "GrpcServer",
    "InferenceServicer",
    "decode_infer_request",
    "encode_infer_response",
    "start_grpc_server",
    "status_code",
]

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_STATUS: dict[type[ModelplaneError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    MalformedRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# The typed field of InferTensorContents for each datatype, and the dtype it arrives in.
# FP16 has none: the protocol says it travels raw.
_CONTENTS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}
_MAX_DIMS = 32


def status_code(exc: ModelplaneError) -> grpc.StatusCode:
    """The gRPC status for a modelplane error (the nearest class in :data:`_STATUS`)."""
    for cls in type(exc).__mro__:
        code = _STATUS.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


class _StatusOnError:
    """``async with _StatusOnError(context):`` ends the RPC with the error's status code."""

    def __init__(self, context: Context) -> None:
        self._context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, ModelplaneError):
            trailer: tuple[tuple[str, str], ...] = ()
            if isinstance(exc, Overloaded):
                trailer = (("retry-after", str(max(1, round(exc.retry_after)))),)
            if exc.status == 500:
                log.error("%s in a gRPC call: %s", type(exc).__name__, exc.message, exc_info=exc)
            await self._context.abort(status_code(exc), public_message(exc), trailer)
        if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
            log.error("unexpected error in a gRPC call", exc_info=exc)
            await self._context.abort(
                grpc.StatusCode.INTERNAL, "internal error; see the server log"
            )


# -- ModelInfer: protobuf <-> InferRequest/InferResult ----------------------------------------
def decode_infer_request(request: pb2.ModelInferRequest) -> tuple[InferRequest, bool]:
    """The :class:`InferRequest` of a ModelInferRequest, and whether it used raw contents."""
    if not request.model_name:
        raise MalformedRequest("model_name is required", field="model_name")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise MalformedRequest(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: give one per input",
            field="raw_input_contents",
        )
    inputs: dict[str, Array] = {}
    for i, tensor in enumerate(request.inputs):
        name, where = tensor.name, f"inputs[{i}]"
        if not name:
            raise MalformedRequest(f"{where}.name is required", field=f"{where}.name")
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice", field=f"{where}.name")
        shape = tuple(tensor.shape)
        if len(shape) > _MAX_DIMS or any(d < 0 for d in shape):
            raise InvalidInput(
                f"input {name!r}: shape {list(shape)} must have at most {_MAX_DIMS} dimensions, "
                "none negative",
                field=f"{where}.shape",
            )
        if raw:
            if tensor.HasField("contents"):
                raise MalformedRequest(
                    f"input {name!r} has contents, but the request uses raw_input_contents",
                    field=f"{where}.contents",
                )
            field = f"raw_input_contents[{i}]"
            inputs[name] = oip.decode_raw_tensor(
                raw[i], tensor.datatype, shape, name=name, field=field
            )
        else:
            inputs[name] = _from_contents(tensor, shape, where)
    parameters = _parameters_from_pb(request.parameters)
    infer_request = InferRequest(
        model=request.model_name,
        inputs=inputs,
        version=request.model_version or None,
        id=request.id or None,
        outputs=tuple(dict.fromkeys(o.name for o in request.outputs)),
        parameters=parameters,
        unit_id=oip.unit_id_parameter(parameters.get("unit_id"), "parameters.unit_id"),
    )
    return infer_request, bool(raw)


def _from_contents(
    tensor: pb2.ModelInferRequest.InferInputTensor, shape: tuple[int, ...], where: str
) -> Array:
    name, datatype = tensor.name, tensor.datatype
    dtype = oip.DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {name!r}: unknown datatype {datatype!r}; expected one of "
            f"{', '.join(oip.DATATYPES)}",
            field=f"{where}.datatype",
        )
    if datatype not in _CONTENTS:
        raise InvalidInput(
            f"input {name!r}: {datatype} has no typed contents field; send it in "
            "raw_input_contents",
            field=f"{where}.contents",
        )
    attr, wire = _CONTENTS[datatype]
    values = getattr(tensor.contents, attr)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r}: {len(values)} values in contents.{attr} for shape {list(shape)}, "
            f"which holds {count}",
            field=f"{where}.contents.{attr}",
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    array = np.fromiter(values, dtype=wire, count=count)
    if wire != dtype:
        info = np.iinfo(dtype)
        if count and (array.min() < info.min or array.max() > info.max):
            raise InvalidInput(
                f"input {name!r}: values outside {datatype}'s range [{info.min}, {info.max}]",
                field=f"{where}.contents.{attr}",
            )
        array = array.astype(dtype)
    return array.reshape(shape)


def _parameters_from_pb(params: Mapping[str, pb2.InferParameter]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(param, choice)
    return out


def _set_parameter(param: pb2.InferParameter, value: Any) -> None:
    if isinstance(value, bool | np.bool_):
        param.bool_param = bool(value)
    elif isinstance(value, int | np.integer) and -(1 << 63) <= int(value) < 1 << 63:
        param.int64_param = int(value)
    elif isinstance(value, int | np.integer) and 0 <= int(value) < 1 << 64:
        param.uint64_param = int(value)
    elif isinstance(value, float | np.floating):
        param.double_param = float(value)
    else:
        param.string_param = str(value)


def encode_infer_response(result: InferResult, *, raw: bool) -> pb2.ModelInferResponse:
    """The ModelInferResponse of a result: raw output contents if ``raw``, typed otherwise."""
    response = pb2.ModelInferResponse(
        model_name=result.model, model_version=str(result.version), id=result.id or ""
    )
    parameters = dict(result.parameters)
    if result.fallback:
        parameters["fallback"] = True
    for key, value in parameters.items():
        _set_parameter(response.parameters[key], value)
    arrays = [(name, np.asarray(value)) for name, value in result.outputs.items()]
    datatypes = [oip.oip_datatype(array.dtype) for _, array in arrays]
    raw = raw or "FP16" in datatypes
    for (name, array), datatype in zip(arrays, datatypes, strict=True):
        out = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(oip.encode_raw_tensor(array))
        elif datatype == "BYTES":
            out.contents.bytes_contents.extend(_as_bytes(x) for x in array.ravel().tolist())
        else:
            getattr(out.contents, _CONTENTS[datatype][0]).extend(array.ravel().tolist())
    return response


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    return str(item).encode("utf-8", "surrogatepass")


def _tensor_metadata(t: TensorMeta) -> pb2.ModelMetadataResponse.TensorMetadata:
    return pb2.ModelMetadataResponse.TensorMetadata(
        name=t.name, datatype=t.datatype, shape=list(t.shape)
    )


# -- the service -------------------------------------------------------------------------------
class InferenceServicer(pb2_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over an :class:`InferenceCore`."""

    def __init__(
        self,
        core: InferenceCore,
        *,
        server_name: str = "modelplane",
        server_version: str = VERSION,
        extensions: Sequence[str] = (),
    ) -> None:
        self._core = core
        self._metadata = pb2.ServerMetadataResponse(
            name=server_name, version=server_version, extensions=list(extensions)
        )

    async def ServerLive(
        self, request: pb2.ServerLiveRequest, context: Context
    ) -> pb2.ServerLiveResponse:
        async with _StatusOnError(context):
            return pb2.ServerLiveResponse(live=self._core.live())

    async def ServerReady(
        self, request: pb2.ServerReadyRequest, context: Context
    ) -> pb2.ServerReadyResponse:
        async with _StatusOnError(context):
            return pb2.ServerReadyResponse(ready=self._core.ready())

    async def ModelReady(
        self, request: pb2.ModelReadyRequest, context: Context
    ) -> pb2.ModelReadyResponse:
        async with _StatusOnError(context):
            _require_name(request.name)
            ready = await self._core.model_ready(request.name, request.version or None)
            return pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb2.ServerMetadataRequest, context: Context
    ) -> pb2.ServerMetadataResponse:
        return self._metadata

    async def ModelMetadata(
        self, request: pb2.ModelMetadataRequest, context: Context
    ) -> pb2.ModelMetadataResponse:
        async with _StatusOnError(context):
            _require_name(request.name)
            info = await self._core.model_info(request.name, request.version or None)
            return pb2.ModelMetadataResponse(
                name=info.name,
                versions=list(info.versions),
                platform=info.platform,
                inputs=[_tensor_metadata(t) for t in info.inputs],
                outputs=[_tensor_metadata(t) for t in info.outputs],
            )

    async def ModelInfer(
        self, request: pb2.ModelInferRequest, context: Context
    ) -> pb2.ModelInferResponse:
        async with _StatusOnError(context):
            infer_request, raw = decode_infer_request(request)
            result = await self._core.infer(infer_request)
            return encode_infer_response(result, raw=raw)


def _require_name(name: str) -> None:
    if not name:
        raise MalformedRequest("name is required", field="name")


# -- the server --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrpcServer:
    """A started gRPC server and the port it is bound to (useful when asked for port 0)."""

    server: grpc.aio.Server
    bound_port: int

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls; let calls in flight finish for up to ``grace`` seconds."""
        await self.server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(await self.server.wait_for_termination(timeout))


# protoc's registration helper is untyped; this gives it a type for mypy --strict.
_register: Callable[[InferenceServicer, grpc.aio.Server], None] = (
    pb2_grpc.add_GRPCInferenceServiceServicer_to_server
)


async def start_grpc_server(
    core: InferenceCore,
    *,
    host: str,
    port: int,
    max_message_bytes: int = 64 << 20,
    extensions: Sequence[str] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Serve ``inference.GRPCInferenceService`` on ``host:port`` (0: any free port); started.

    Stop it with ``await server.stop(grace)``. Messages over ``max_message_bytes`` are refused
    by gRPC itself with RESOURCE_EXHAUSTED.
    """
    server = grpc.aio.server(
        interceptors=tuple(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    _register(InferenceServicer(core, extensions=extensions), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"gRPC could not bind {address}")
    await server.start()
    return GrpcServer(server, bound)
