"""The serving ASGI app: OIP v2 REST, ``/predict``, admin and ``/metrics``, beside the registry API.

The prediction routes are plain Starlette endpoints added to the FastAPI app (``add_route``): no
dependency injection, no pydantic per request, JSON parsed by orjson straight into numpy (see
``oip.py``). FastAPI's machinery serves the registry routes and ``/docs`` next to them.

Built by :func:`create_serving_app`; its lifespan bootstraps the platform, starts the model pool
(loading and warming every ``--model`` before readiness), the gRPC server, the prediction log,
and freezes the warm heap (``gc.freeze``) so collections stay short under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from modelplane import __version__
from modelplane.api.app import DESCRIPTION, include_routers
from modelplane.api.errors import add_error_handlers, public_message
from modelplane.auth.access import Authenticator
from modelplane.bootstrap import Platform, bootstrap
from modelplane.config import Settings
from modelplane.errors import (
    InvalidInput,
    MalformedRequest,
    ModelplaneError,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
)
from modelplane.serving import accesslog, oip, tracing
from modelplane.serving.delivery import LABEL_LIMIT, REWARD_LIMIT, TrafficRouter, run_controller
from modelplane.serving.http_server import sole_request
from modelplane.serving.metrics import ServingMetrics, mark_process_dead
from modelplane.serving.options import ServeOptions
from modelplane.serving.pool import ModelPool, ServedModel
from modelplane.serving.predlog import PredictionLog
from modelplane.serving.service import InferenceService
from modelplane.serving.types import InferRequest

__all__ = ["ServingState", "create_serving_app", "factory"]

log = logging.getLogger(__name__)
JSON = "application/json"
EXTENSIONS = ("binary_tensor_data", "model_repository")
NO_SPAN = contextlib.nullcontext()  # reusable: the request span while tracing is off


class ServingState:
    """What the routes share; built in the lifespan."""

    def __init__(
        self,
        platform: Platform,
        service: InferenceService,
        pool: ModelPool,
        metrics: ServingMetrics,
        options: ServeOptions,
        auth: Authenticator,
    ) -> None:
        self.platform = platform
        self.service = service
        self.pool = pool
        self.metrics = metrics
        self.options = options
        self.max_body = platform.settings.max_body_bytes
        self.auth = auth
        self._needs = auth.needs

    def authorize(self, request: Request, operation: str) -> None:
        """Refuse the request unless its bearer token may call ``operation``
        (:data:`modelplane.auth.access.OPERATIONS`; the gRPC doors use the same check)."""
        if self._needs.get(operation, "admin") is not None:
            self.auth.check(operation, _header(request, b"authorization"))


# -- helpers -----------------------------------------------------------------------------------
class RawResponse:
    """A response sent as two raw ASGI messages, without building a Starlette ``Response``.

    The prediction routes' answer: Starlette's ``Response`` (``MutableHeaders``, header
    normalisation) costs ~10 µs per request on the hot path (measured in process). ``headers``
    is a plain dict with lower-case names; ``content-length`` and ``content-type`` are added
    when sent.
    """

    __slots__ = ("body", "headers", "media_type", "status_code")

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str = JSON,
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.headers: dict[str, str] = headers if headers is not None else {}
        self.media_type = media_type

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = [
            (b"content-length", b"%d" % len(self.body)),
            (b"content-type", self.media_type.encode("latin-1")),
        ]
        for name, value in self.headers.items():
            raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


AnyResponse = Response | RawResponse


def _state(request: Request) -> ServingState:
    state: ServingState | None = getattr(request.app.state, "serving", None)
    if state is None:
        raise NotReady("the server is starting or stopping")
    return state


def _header(request: Request, name: bytes) -> str | None:
    """A request header by lower-case name: one dict of the raw headers per request, not a
    scan of Starlette's ``Headers`` per lookup (the first of a repeated name wins, as there)."""
    scope = request.scope
    found: dict[bytes, bytes] | None = scope.get("modelplane.headers")
    if found is None:
        found = scope["modelplane.headers"] = dict(reversed(scope["headers"]))
    value = found.get(name)
    return None if value is None else value.decode("latin-1")


async def _body(request: Request, limit: int) -> bytes:
    declared = _header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", field="body")
    # Straight from ``receive`` (not ``request.stream()``): a body is one message, usually.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", field="body")
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


def _error_response(exc: ModelplaneError, *, oip_shape: bool) -> RawResponse:
    """OIP routes answer ``{"error": "…"}``; the others the registry's ``{"error": {code, …}}``.
    A shed request (bulkhead full) says when to retry; a 401 says how to authenticate. The
    message is what a client may read (:func:`~modelplane.api.errors.public_message`)."""
    message = public_message(exc)
    body = (
        oip.encode_error(message)
        if oip_shape
        else orjson.dumps({"error": {"code": exc.code, "message": message, "field": exc.field}})
    )
    headers: dict[str, str] | None = None
    if isinstance(exc, Overloaded):
        headers = {"retry-after": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, Unauthorized):
        headers = {"www-authenticate": "Bearer"}
    return RawResponse(body, exc.status, headers=headers)


Endpoint = Callable[[Request], Awaitable[AnyResponse]]


def _observed(
    route: str, *, oip_errors: bool = True
) -> Callable[[Callable[[Request, ServingState], Awaitable[AnyResponse]]], Endpoint]:
    """Wrap an endpoint: span, error translation, metrics, access log, traceparent."""

    def wrap(fn: Callable[[Request, ServingState], Awaitable[AnyResponse]]) -> Endpoint:
        async def endpoint(request: Request) -> AnyResponse:
            response: AnyResponse
            started = time.perf_counter()
            state: ServingState | None = None
            model = request.path_params.get("name", "")
            spanned = tracing.enabled()  # off, Starlette's Headers need not be built
            with tracing.start_request_span(request.headers, route) if spanned else NO_SPAN:
                try:
                    state = _state(request)
                    state.metrics.request_started()
                    try:
                        # Every route's rule, checked before anything reads the body.
                        state.authorize(request, route)
                        response = await fn(request, state)
                    finally:
                        state.metrics.request_finished()
                except ModelplaneError as exc:
                    if exc.status == 500:
                        log.error("%s on %s: %s", type(exc).__name__, request.url.path,
                                  exc.message, exc_info=exc)  # fmt: skip
                    response = _error_response(exc, oip_shape=oip_errors)
                except Exception:
                    log.exception("unexpected error on %s", request.url.path)
                    err = ModelplaneError("internal error; see the server log")
                    response = _error_response(err, oip_shape=oip_errors)
                # Off, there is no span of ours to read (~4 µs of OTel context lookups saved).
                parent = tracing.traceparent_of_current() if spanned else None
            if parent:
                response.headers["traceparent"] = parent
            elapsed = time.perf_counter() - started
            version = response.headers.get("x-model-version", "")
            model = response.headers.get("x-model-name") or model
            if state is not None:
                state.metrics.observe_request(model, version, route, response.status_code, elapsed)
                if state.options.access_log:
                    accesslog.log_request(
                        request_id=response.headers.get("x-request-id", ""),
                        method=request.method,
                        path=request.url.path,
                        model=model,
                        version=version,
                        status=response.status_code,
                        latency_ms=elapsed * 1000,
                        trace_id=parent.split("-")[1] if parent else None,
                    )
            return response

        return endpoint

    return wrap


# -- OIP v2 ------------------------------------------------------------------------------------
@_observed("server_metadata")
async def server_metadata(request: Request, state: ServingState) -> Response:
    return Response(
        oip.server_metadata_json("modelplane", __version__, EXTENSIONS), media_type=JSON
    )


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
    served = await state.pool.get(name, version)
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


async def _json_object(request: Request, state: ServingState) -> dict[str, Any]:
    """The body as a JSON object (size-limited; 400 when it is not one)."""
    body = await _body(request, state.max_body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the body is not valid JSON", field="body") from None
    if not isinstance(doc, dict):
        raise MalformedRequest("the body must be a JSON object", field="body")
    return doc


# -- the plain route for people ------------------------------------------------------------------
@_observed("predict", oip_errors=False)
async def predict(request: Request, state: ServingState) -> RawResponse:
    doc = await _json_object(request, state)
    model = doc.get("model")
    if not isinstance(model, str):
        raise InvalidInput("'model' is required: a model name or reference", field="model")
    raw_unit = doc.get("unit_id")
    if raw_unit is not None and (isinstance(raw_unit, bool) or not isinstance(raw_unit, str | int)):
        raise InvalidInput("'unit_id' must be a string or an integer", field="unit_id")
    unit_id = str(raw_unit) if raw_unit is not None else _header_unit_id(request)
    outputs = doc.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise InvalidInput("'outputs' must be a list of output names", field="outputs")
    router = state.service.router
    route = router.routes.get(model) if router is not None else None
    arm = None
    if route is not None:  # the arm's version decodes the inputs (its signature) and answers
        arm = route.pick(unit_id)
        served = await state.pool.get(f"{model}/{arm.version}")
    else:
        served = await state.pool.get(model)
    inputs = plain_inputs(doc.get("inputs"), served)
    req = InferRequest(
        model=f"{served.name}/{served.version}",
        inputs=inputs,
        id=doc.get("request_id") if isinstance(doc.get("request_id"), str) else None,
        outputs=(served.predict_output, *(o for o in outputs if o != served.predict_output)),
        unit_id=unit_id,
        no_cache="no-cache" in (_header(request, b"cache-control") or ""),
        route=route,
        arm=arm,
        routed=router is not None,  # looked up above: one dict lookup when there is no route
        sole=sole_request(),
    )
    result = await state.service.infer(req)
    answer: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "request_id": result.id,
        "predictions": result.outputs[served.predict_output],
    }
    for name, value in result.outputs.items():
        if name != served.predict_output:
            answer[name] = value
    if result.fallback:
        answer["fallback"] = True
    if arm is not None and route is not None:
        answer["variant"] = arm.name
        answer["experiment"] = route.name
    headers = {
        "x-model-name": result.model,
        "x-model-version": str(result.version),
        "x-request-id": result.id or "",
    }
    # oip.json_default: string labels (object arrays) and the like; numeric answers never reach it
    body = orjson.dumps(answer, default=oip.json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    return RawResponse(body, headers=headers)


def _header_unit_id(request: Request) -> str | None:
    value = _header(request, b"x-unit-id")
    if value is None:
        return None
    return value.strip() or None


# -- feedback ------------------------------------------------------------------------------------
_FEEDBACK_FIELDS = ("request_id", "label", "reward", "overwrite")


@_observed("feedback", oip_errors=False)
async def feedback(request: Request, state: ServingState) -> Response:
    """``{"request_id": …, "label": number|bool}`` or ``{"request_id": …, "reward": number}``
    (``"overwrite": true`` to replace an earlier outcome): the outcome of one prediction,
    stored and counted for its variant (202). The authentication of ``/predict``
    (:data:`~modelplane.auth.access.OPERATIONS`), checked before the body is read."""
    body = await _body(request, state.max_body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses NaN, Infinity and 1e400; the standard parser reads them, so that the
        # caller hears which field is wrong (422) rather than "not JSON" (only on this path).
        import json

        try:
            doc = json.loads(body)
        except ValueError:
            raise MalformedRequest("the body is not valid JSON", field="body") from None
    if not isinstance(doc, dict):
        raise MalformedRequest("the body must be a JSON object", field="body")
    unknown = sorted(set(doc) - set(_FEEDBACK_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}: feedback takes request_id, label or reward, "
            "and overwrite",
            field=unknown[0],
        )
    request_id = doc.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
        raise InvalidInput(
            "'request_id' is required: the request id of a prediction (1-128 characters)",
            field="request_id",
        )
    has_label, has_reward = doc.get("label") is not None, doc.get("reward") is not None
    if has_label == has_reward:
        field = "reward" if has_label else "label"
        raise InvalidInput("give exactly one of 'label' and 'reward'", field=field)
    overwrite = doc.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise InvalidInput("'overwrite' must be true or false", field="overwrite")
    label = reward = None
    if has_label:
        label = _bounded(doc["label"], "label", LABEL_LIMIT, booleans=True)
    else:
        reward = _bounded(doc["reward"], "reward", REWARD_LIMIT, booleans=False)
    router = state.service.router
    if router is None:
        raise NotReady("the server is starting or stopping")
    variant, revision = await router.feedback(
        request_id, label=label, reward=reward, overwrite=overwrite
    )
    answer = {
        "request_id": request_id,
        "accepted": True,
        "variant": variant,
        "revision": revision,
    }
    return Response(orjson.dumps(answer), 202, media_type=JSON)


def _bounded(value: Any, field: str, limit: float, *, booleans: bool) -> float:
    """``value`` as a finite float within ``[-limit, limit]``; else 422 naming ``field``."""
    kinds = "a number or a boolean" if booleans else "a number"
    if (isinstance(value, bool) and not booleans) or not isinstance(value, bool | int | float):
        raise InvalidInput(f"'{field}' must be {kinds}", field=field)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number) or abs(number) > limit:
        raise InvalidInput(
            f"'{field}' must be a finite number within [-{limit:g}, {limit:g}]", field=field
        )
    return number


def plain_inputs(value: Any, served: ServedModel) -> dict[str, Any]:
    """``[{col: v}, …]`` (records) or ``[[…], …]`` (rows) → named arrays for the signature."""
    import numpy as np

    if not isinstance(value, list) or not value:
        raise InvalidInput("'inputs' must be a non-empty list of records or rows", field="inputs")
    sig = served.signature
    if all(isinstance(r, dict) for r in value):
        columns: dict[str, list[Any]] = {}
        for i, record in enumerate(value):
            if i and record.keys() != value[0].keys():
                raise InvalidInput(
                    f"record {i} has other fields than record 0", field=f"inputs[{i}]"
                )
            for k, v in record.items():
                columns.setdefault(k, []).append(v)
        try:
            return {k: _column(v) for k, v in columns.items()}
        except ValueError as exc:
            raise InvalidInput(f"inputs: {exc}", field="inputs") from None
    if all(isinstance(r, list) for r in value):
        name = sig.inputs[0].name if sig is not None and len(sig.inputs) == 1 else "input-0"
        if sig is not None and sig.is_columnar:
            raise InvalidInput(
                f"model {served.name} takes named columns "
                f"({', '.join(s.name for s in sig.inputs)}): send records",
                field="inputs",
            )
        try:
            return {name: np.asarray(value)}
        except ValueError as exc:
            raise InvalidInput(f"inputs: rows of unequal length ({exc})", field="inputs") from None
    raise InvalidInput("'inputs' must be all records (objects) or all rows (lists)", field="inputs")


def _column(values: list[Any]) -> Any:
    """A record field's values as an array; text as Python ``str`` objects (a ``<U`` array
    would drop trailing NUL characters of the strings)."""
    import numpy as np

    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    return np.asarray(values)


# -- admin and model repository ----------------------------------------------------------------
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
    served = await state.pool.load(request.path_params["name"])
    return Response(orjson.dumps(_describe(served, state)), media_type=JSON)


@_observed("admin_unload", oip_errors=False)
async def admin_unload(request: Request, state: ServingState) -> Response:
    name = request.path_params["name"]
    versions = await state.pool.unload(name.split("/")[0])
    return Response(orjson.dumps({"name": name, "unloaded": versions}), media_type=JSON)


@_observed("repository_index")
async def repository_index(request: Request, state: ServingState) -> Response:
    page = await run_in_threadpool(state.platform.registry.list_models, limit=1000)
    loaded = {(s.name, s.version) for s in state.pool.loaded()}
    index: list[dict[str, Any]] = []
    for model in page.items:
        versions = sorted(v for (n, v) in loaded if n == model.name)
        if versions:
            index += [
                {"name": model.name, "version": str(v), "state": "READY", "reason": ""}
                for v in versions
            ]
        else:
            index.append(
                {"name": model.name, "version": "", "state": "UNAVAILABLE", "reason": "not loaded"}
            )
    return Response(orjson.dumps(index), media_type=JSON)


@_observed("repository_load")
async def repository_load(request: Request, state: ServingState) -> Response:
    await state.pool.load(request.path_params["name"])
    return Response(b"", 200)


@_observed("repository_unload")
async def repository_unload(request: Request, state: ServingState) -> Response:
    await state.pool.unload(request.path_params["name"].split("@")[0].split("/")[0])
    return Response(b"", 200)


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


# -- the app -----------------------------------------------------------------------------------
def _drain_on_sigterm(service: InferenceService) -> None:
    """On SIGTERM readiness goes false at once; then uvicorn's own handler stops accepting,
    lets in-flight requests finish and runs the lifespan shutdown (which drains the rest)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        service.drain()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def inference_threads(options: ServeOptions) -> int:
    """Threads for inference; 0 = predict on the event loop.

    Auto (``--threads`` not given): on one CPU a thread only adds a hand-off, two context
    switches and a fight for the GIL (measured: 30-60 µs per request, ~10 % of a small
    model's request), so predict runs on the loop; with more CPUs, two threads per CPU up to 4.
    """
    if options.executor_threads is not None:
        return options.executor_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if (cpus or 1) <= 1 else min(4, 2 * (cpus or 1))


def _executor(options: ServeOptions) -> Executor | None:
    threads = inference_threads(options)
    if options.process_pool:
        return ProcessPoolExecutor(max_workers=max(1, threads))
    if threads == 0:
        return None
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelplane-predict")


def create_serving_app(
    settings: Settings | None = None,
    options: ServeOptions | None = None,
    *,
    platform: Platform | None = None,
) -> ServingApp:
    """The whole server: OIP v2, /predict, admin, /metrics and the registry API under /api/v1."""
    opts = options or ServeOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_platform = platform is None
        plat: Platform = (
            platform if platform is not None else await run_in_threadpool(bootstrap, settings)
        )
        app.state.platform = plat
        tracing.setup_tracing("modelplane", otlp_endpoint=plat.settings.otlp_endpoint)
        accesslog.configure_access_log(enabled=opts.access_log)
        metrics = ServingMetrics()
        executor = _executor(opts)
        cache = None
        if opts.defaults.cache or plat.settings.cache_url:
            from modelplane.cache import open_cache

            cache = open_cache(
                l1_bytes=opts.cache_bytes,
                ttl_s=opts.cache_ttl_s,
                redis_url=plat.settings.cache_url,
                on_event=metrics.cache_event,
            )
            metrics.watch_cache(cache.bytes_used)
        predlog = None
        if opts.prediction_log:
            predlog = PredictionLog(
                plat.settings.resolved_prediction_log, on_drop=metrics.log_dropped
            )
            predlog.start()
        pool = ModelPool(
            plat,
            opts,
            executor=executor,
            on_batch=lambda name, n, rows: metrics.observe_batch(name, rows),
            on_loaded=lambda s: metrics.model_loaded(
                s.name, str(s.version), s.load_seconds, s.nbytes
            ),
            on_unloaded=lambda s: metrics.model_unloaded(s.name, str(s.version)),
            on_breaker=lambda name, number, st: metrics.breaker_state(name, str(number), st),
        )
        service = InferenceService(
            pool, executor=executor, cache=cache, metrics=metrics, predlog=predlog
        )
        router = TrafficRouter(
            plat,
            pool,
            service.predict_unlogged,
            poll_interval_s=opts.poll_interval_s,
            flush_interval_s=opts.stats_flush_s,
            shadow_queue=opts.shadow_queue,
            shadow_workers=opts.shadow_workers,
            registry=metrics.registry,
        )
        service.router = router
        grpc_server = None
        controller: asyncio.Task[None] | None = None
        try:
            await pool.start()
            _limit_model_threads()
            await router.start()
            if opts.controller:
                controller = asyncio.create_task(
                    run_controller(plat, opts.controller_interval_s), name="modelplane-canary"
                )
            auth = Authenticator(
                plat.tokens,
                require_auth=plat.settings.require_auth,
                metrics_auth=plat.settings.metrics_auth,
            )
            app.state.authenticator = auth
            if opts.grpc_port is not None:
                from modelplane.serving.grpc.auth import auth_interceptors
                from modelplane.serving.grpc.server import start_grpc_server

                grpc_server = await start_grpc_server(
                    service,
                    host=opts.host,
                    port=opts.grpc_port,
                    interceptors=auth_interceptors(auth),
                )
                app.state.grpc_port = getattr(grpc_server, "bound_port", opts.grpc_port)
            app.state.serving = ServingState(plat, service, pool, metrics, opts, auth)
            gc.collect()
            gc.freeze()  # the warm heap (models, modules) is never scanned again
            _drain_on_sigterm(service)
            service.set_ready(True)
            yield
        finally:
            service.drain()
            deadline = time.monotonic() + opts.drain_s
            while service.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            app.state.serving = None
            if grpc_server is not None:
                await grpc_server.stop(grace=opts.drain_s)
            if controller is not None:
                controller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await controller
            await router.close()  # the last counters are written
            await pool.close()
            if predlog is not None:
                await run_in_threadpool(predlog.close)
            if cache is not None:
                await cache.close()
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            if own_platform:
                await run_in_threadpool(plat.close)
            # With --workers N, uvicorn's supervisor cannot be told to do it: each worker
            # retires its own live gauges (queue depth, bytes, in flight) as it exits.
            mark_process_dead(os.getpid())

    app = FastAPI(
        title="modelplane", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.platform = platform
    app.state.serving = None
    app.state.authenticator = None
    add_error_handlers(app)
    include_routers(app)
    routes: list[tuple[str, Callable[[Request], Awaitable[AnyResponse]], list[str]]] = [
        ("/v2", server_metadata, ["GET"]),
        ("/v2/health/live", health_live, ["GET"]),
        ("/v2/health/ready", health_ready, ["GET"]),
        ("/v2/models/{name}", model_metadata, ["GET"]),
        ("/v2/models/{name}/ready", model_ready, ["GET"]),
        ("/v2/models/{name}/infer", infer, ["POST"]),
        ("/v2/models/{name}/versions/{version}", model_metadata, ["GET"]),
        ("/v2/models/{name}/versions/{version}/ready", model_ready, ["GET"]),
        ("/v2/models/{name}/versions/{version}/infer", infer, ["POST"]),
        ("/v2/repository/index", repository_index, ["POST"]),
        ("/v2/repository/models/{name}/load", repository_load, ["POST"]),
        ("/v2/repository/models/{name}/unload", repository_unload, ["POST"]),
        ("/predict", predict, ["POST"]),
        ("/feedback", feedback, ["POST"]),
        ("/models", admin_models, ["GET"]),
        ("/models/{name}/load", admin_load, ["POST"]),
        ("/models/{name}/unload", admin_unload, ["POST"]),
        ("/metrics", metrics_endpoint, ["GET"]),
    ]
    for path, endpoint, methods in routes:
        # Starlette sends whatever ASGI callable an endpoint returns (a RawResponse too).
        app.add_route(path, cast(Any, endpoint), methods=methods, include_in_schema=False)
    return ServingApp(app)


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


def factory() -> ServingApp:
    """For ``uvicorn --factory`` workers: options come from ``MODELPLANE_SERVE_OPTIONS``."""
    raw = os.environ.get("MODELPLANE_SERVE_OPTIONS")
    return create_serving_app(options=ServeOptions.from_json(raw) if raw else None)


def _limit_model_threads() -> None:
    """Hold native thread pools (OpenMP, BLAS) to ``OMP_NUM_THREADS`` (``serve`` sets it).

    The environment variable reaches libraries loaded after it is set; this reaches those a
    model loaded before (see ``modelplane serve --model-threads``).
    """
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if not raw.isdigit() or int(raw) < 1:
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # comes with scikit-learn; without it there is nothing to limit
        return
    threadpool_limits(limits=int(raw))
