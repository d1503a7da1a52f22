"""Bearer tokens over gRPC: the REST doors' rules, checked by the same :class:`Authenticator`.

A client sends ``authorization: Bearer <token>`` in the call's metadata. Each RPC is the twin of
a REST operation (:data:`RPC_OPERATIONS`) and has its rule
(:data:`modelplane.auth.access.OPERATIONS`): the health RPCs and ``ServerMetadata`` are open,
``ModelMetadata``, ``ModelReady`` and ``ModelInfer`` need a ``read`` token when
``require_auth`` is set; an RPC not in the table needs ``admin``. A missing, invalid or revoked
token ends the call with ``UNAUTHENTICATED``, too small a scope with ``PERMISSION_DENIED``,
before the request message is read.

The check is a server interceptor, installed only when some RPC needs a token on this server
(:func:`auth_interceptors`): with authentication off, a call pays nothing for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import grpc

from modelplane.errors import ModelplaneError
from modelplane.serving.errors import public_message
from modelplane.serving.grpc.server import status_code
from modelplane.serving.ports import Authenticator

__all__ = ["RPC_OPERATIONS", "AuthInterceptor", "auth_interceptors"]

#: Every RPC of ``inference.GRPCInferenceService`` → the REST operation it is the twin of.
RPC_OPERATIONS: Mapping[str, str] = {
    "ServerLive": "live",
    "ServerReady": "ready",
    "ServerMetadata": "server_metadata",
    "ModelMetadata": "model_metadata",
    "ModelReady": "model_ready",
    "ModelInfer": "infer",
}
_UNKNOWN = "grpc_unknown_rpc"  # no rule in the table: admin
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _operation(method: str) -> str:
    """``/inference.GRPCInferenceService/ModelInfer`` → ``infer``."""
    service, _, rpc = method.rpartition("/")
    if service != "/inference.GRPCInferenceService":
        return _UNKNOWN
    return RPC_OPERATIONS.get(rpc, _UNKNOWN)


def _authorization(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _refusal(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of ``handler``'s kind that ends the call with ``code`` and ``message``."""

    async def unary(request: Any, context: Context) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # type: ignore[unreachable]  # abort raises; the yield makes a generator

    make: Callable[..., Handler]
    behaviour: Callable[..., Any]
    codec: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        make, behaviour = grpc.stream_stream_rpc_method_handler, stream
    elif handler.request_streaming:
        make, behaviour = grpc.stream_unary_rpc_method_handler, unary
    elif handler.response_streaming:
        make, behaviour = grpc.unary_stream_rpc_method_handler, stream
    else:
        make, behaviour = grpc.unary_unary_rpc_method_handler, unary
    return make(behaviour, **codec)


Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks each call's bearer token against its RPC's rule before the RPC runs."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler: Handler | None = await continuation(handler_call_details)
        if handler is None:  # no such RPC: UNIMPLEMENTED, as without the interceptor
            return None
        operation = _operation(handler_call_details.method)
        if self._auth.scope_for(operation) is None:
            return handler
        try:
            self._auth.check(operation, _authorization(handler_call_details.invocation_metadata))
        except ModelplaneError as exc:
            return _refusal(handler, status_code(exc), public_message(exc))
        return handler


def auth_interceptors(auth: Authenticator) -> tuple[grpc.aio.ServerInterceptor, ...]:
    """The interceptors that enforce ``auth`` over gRPC: none when every RPC is open here
    (the server holds no other service, so an unknown RPC is UNIMPLEMENTED either way)."""
    if all(auth.scope_for(op) is None for op in RPC_OPERATIONS.values()):
        return ()
    return (AuthInterceptor(auth),)
