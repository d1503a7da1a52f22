"""The ASGI entry: :class:`ServingApp` matches the hot routes with string operations
(``_hot_route``) and hands everything else to the FastAPI app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request

from modelplane.serving.edge import Endpoint
from modelplane.serving.routes_oip import health_ready, infer
from modelplane.serving.routes_predict import predict

__all__ = ["ServingApp"]


class ServingApp:
    """The ASGI entry: prediction routes go straight to their endpoints, the rest to FastAPI.

    Measured (benchmarks/serving.py, py-spy): FastAPI's middleware stack and router (which tries
    every registry route first) cost 60-90 µs per request, as much as a small model's predict.
    So ``/v2/models/{name}[/versions/{v}]/infer``, ``/predict`` and the health probes are
    matched here with string operations; everything else (registry API, docs, admin) is served
    by the FastAPI app, which also runs the lifespan.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    @property
    def state(self) -> Any:
        return self.app.state

    @property
    def router(self) -> Any:
        return self.app.router

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            found = _hot_route(scope["method"], scope["path"])
            if found is not None:
                endpoint, params = found
                scope["app"] = self.app
                scope["path_params"] = params
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_INFER_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"


def _hot_route(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    if method == "POST":
        if path.startswith(_INFER_PREFIX) and path.endswith(_INFER_SUFFIX):
            middle = path[len(_INFER_PREFIX) : -len(_INFER_SUFFIX)]
            name, sep, version = middle.partition("/versions/")
            if name and "/" not in name and (not sep or (version and "/" not in version)):
                return infer, ({"name": name, "version": version} if sep else {"name": name})
            return None
        if path == "/predict":
            return predict, {}
    elif method == "GET" and path == "/v2/health/ready":
        return health_ready, {}
    return None
