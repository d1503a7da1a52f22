"""The OIP v2 REST routes: server and model metadata, health, readiness, infer, and the model
repository extension (index, load, unload). ``infer`` is a hot route (``entry.py``)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelplane.core.version import VERSION
from modelplane.errors import MalformedRequest
from modelplane.serving import oip
from modelplane.serving.edge import (
    JSON,
    RawResponse,
    ServingState,
    _body,
    _header,
    _header_unit_id,
    _observed,
)
from modelplane.serving.http_server import sole_request

__all__ = [
    "health_live",
    "health_ready",
    "infer",
    "model_metadata",
    "model_ready",
    "repository_index",
    "repository_load",
    "repository_unload",
    "server_metadata",
]

EXTENSIONS = ("binary_tensor_data", "model_repository")


@_observed("server_metadata")
async def server_metadata(request: Request, state: ServingState) -> Response:
    return Response(oip.server_metadata_json("modelplane", VERSION, EXTENSIONS), media_type=JSON)


@_observed("live")
async def health_live(request: Request, state: ServingState) -> Response:
    return Response(orjson.dumps({"live": True}), media_type=JSON)


async def health_ready(request: Request) -> Response:
    state: ServingState | None = getattr(request.app.state, "serving", None)
    ready = state is not None and state.service.ready()
    return Response(orjson.dumps({"ready": ready}), 200 if ready else 503, media_type=JSON)


@_observed("model_metadata")
async def model_metadata(request: Request, state: ServingState) -> Response:
    info = await state.service.model_info(
        request.path_params["name"], request.path_params.get("version")
    )
    return Response(oip.model_metadata_json(info), media_type=JSON)


@_observed("model_ready")
async def model_ready(request: Request, state: ServingState) -> Response:
    name, version = request.path_params["name"], request.path_params.get("version")
    served = await state.view.get(name, version)
    ready = state.service.ready()
    body = {"name": served.name, "version": str(served.version), "ready": ready}
    return Response(orjson.dumps(body), 200 if ready else 503, media_type=JSON)


@_observed("infer")
async def infer(request: Request, state: ServingState) -> RawResponse:
    body = await _body(request, state.max_body)
    raw_length = _header(request, b"inference-header-content-length")
    header_length: int | None = None
    if raw_length is not None:
        if not raw_length.isdigit():
            raise MalformedRequest(
                "Inference-Header-Content-Length must be an integer",
                field="Inference-Header-Content-Length",
            )
        header_length = int(raw_length)
    name = request.path_params["name"]
    req = oip.decode_infer_request(
        body, header_length=header_length, model=name, version=request.path_params.get("version")
    )
    req.no_cache = "no-cache" in (_header(request, b"cache-control") or "")
    req.sole = sole_request()
    if req.unit_id is None:
        req.unit_id = _header_unit_id(request)
    result = await state.service.infer(req)
    binary = oip.binary_outputs_requested(req)
    payload, headers = oip.encode_infer_response(
        result, model_name=result.model, binary_outputs=binary
    )
    headers["x-model-name"] = result.model
    headers["x-model-version"] = str(result.version)
    headers["x-request-id"] = result.id or ""
    return RawResponse(
        payload, headers=headers, media_type="application/octet-stream" if binary else JSON
    )


# -- model repository ---------------------------------------------------------------------------
@_observed("repository_index")
async def repository_index(request: Request, state: ServingState) -> Response:
    names = await run_in_threadpool(state.source.model_names)
    loaded = {(s.name, s.version) for s in state.pool.loaded()}
    index: list[dict[str, Any]] = []
    for name in names:
        versions = sorted(v for (n, v) in loaded if n == name)
        if versions:
            index += [
                {"name": name, "version": str(v), "state": "READY", "reason": ""} for v in versions
            ]
        else:
            index.append(
                {"name": name, "version": "", "state": "UNAVAILABLE", "reason": "not loaded"}
            )
    return Response(orjson.dumps(index), media_type=JSON)


@_observed("repository_load")
async def repository_load(request: Request, state: ServingState) -> Response:
    await state.view.load(request.path_params["name"])
    return Response(b"", 200)


@_observed("repository_unload")
async def repository_unload(request: Request, state: ServingState) -> Response:
    state.view.unload(request.path_params["name"].split("@")[0].split("/")[0])
    return Response(b"", 200)
