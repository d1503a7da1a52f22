"""The admin routes: ``/models`` (what is loaded, and how), load and unload, and ``/metrics``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelplane.errors import ModelplaneError
from modelplane.serving.edge import (
    JSON,
    AnyResponse,
    ServingState,
    _error_response,
    _observed,
)
from modelplane.serving.served import ServedModel

__all__ = ["admin_load", "admin_models", "admin_unload", "metrics_endpoint"]


# -- admin ---------------------------------------------------------------------------------------
def _describe(served: ServedModel, state: ServingState) -> dict[str, Any]:
    batchers = list(served.batchers.values())
    return {
        "name": served.name,
        "version": served.version,
        "flavor": served.loaded.flavor,
        "state": "READY",
        "bytes": served.nbytes,
        "load_seconds": round(served.load_seconds, 4),
        "in_flight": served.in_flight,
        "queue_depth": sum(b.queue_depth for b in batchers),
        "breaker": served.breaker.state,
        "batching": {
            "max_batch_size": served.options.max_batch_size,
            "max_wait_ms": served.options.max_wait_ms,
        },
        "cache": served.options.cache,
        "timeout_ms": served.options.timeout_ms,
        "fallback": served.options.fallback,
    }


@_observed("admin_models", oip_errors=False)
async def admin_models(request: Request, state: ServingState) -> Response:
    return Response(
        orjson.dumps({"models": [_describe(s, state) for s in state.pool.loaded()]}),
        media_type=JSON,
    )


@_observed("admin_load", oip_errors=False)
async def admin_load(request: Request, state: ServingState) -> Response:
    served = await state.view.load(request.path_params["name"])
    return Response(orjson.dumps(_describe(served, state)), media_type=JSON)


@_observed("admin_unload", oip_errors=False)
async def admin_unload(request: Request, state: ServingState) -> Response:
    name = request.path_params["name"]
    versions = state.view.unload(name.split("/")[0])
    return Response(orjson.dumps({"name": name, "unloaded": versions}), media_type=JSON)


async def metrics_endpoint(request: Request) -> AnyResponse:
    state: ServingState | None = getattr(request.app.state, "serving", None)
    if state is None:
        return Response(b"", 503)
    try:
        state.authorize(request, "metrics")  # MODELPLANE_METRICS_AUTH
    except ModelplaneError as exc:
        return _error_response(exc, oip_shape=False)
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
