"""The plain routes for people: ``/predict`` (records or rows in, named predictions out; a hot
route, ``entry.py``) and ``/feedback`` (the outcome of one prediction, for its variant)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelplane.errors import InvalidInput, MalformedRequest, NotReady
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
from modelplane.serving.feedback import LABEL_LIMIT, REWARD_LIMIT
from modelplane.serving.http_server import sole_request
from modelplane.serving.served import ServedModel
from modelplane.serving.types import InferRequest

__all__ = ["feedback", "plain_inputs", "predict"]


async def _json_object(
    request: Request, state: ServingState, *, lenient: bool = False
) -> dict[str, Any]:
    """The body as a JSON object (size-limited; 400 when it is not one). ``lenient``: read
    NaN, Infinity and 1e400 too (orjson refuses them; the standard parser reads them), so a
    caller hears which field is wrong (422) rather than "not JSON"."""
    body = await _body(request, state.max_body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        if not lenient:
            raise MalformedRequest("the body is not valid JSON", field="body") from None
        import json

        try:
            doc = json.loads(body)
        except ValueError:
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
    req = InferRequest(
        model=model,
        inputs={},
        id=doc.get("request_id") if isinstance(doc.get("request_id"), str) else None,
        unit_id=unit_id,
        no_cache="no-cache" in (_header(request, b"cache-control") or ""),
        sole=sole_request(),
    )
    # Resolved once (the arm too, when routed): the version's signature decodes the inputs.
    served = await state.view.resolve(req)
    req.inputs = plain_inputs(doc.get("inputs"), served)
    req.outputs = (served.predict_output, *(o for o in outputs if o != served.predict_output))
    result = await state.service.infer(req, served)
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
    if req.arm is not None and req.route is not None:
        answer["variant"] = req.arm.name
        answer["experiment"] = req.route.name
    headers = {
        "x-model-name": result.model,
        "x-model-version": str(result.version),
        "x-request-id": result.id or "",
    }
    # oip.json_default: string labels (object arrays) and the like; numeric answers never reach it
    body = orjson.dumps(answer, default=oip.json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    return RawResponse(body, headers=headers)


# -- feedback ------------------------------------------------------------------------------------
_FEEDBACK_FIELDS = ("request_id", "label", "reward", "overwrite")


@_observed("feedback", oip_errors=False)
async def feedback(request: Request, state: ServingState) -> Response:
    """``{"request_id": …, "label": number|bool}`` or ``{"request_id": …, "reward": number}``
    (``"overwrite": true`` to replace an earlier outcome): the outcome of one prediction,
    stored and counted for its variant (202). The authentication of ``/predict``
    (:data:`~modelplane.auth.access.OPERATIONS`), checked before the body is read."""
    doc = await _json_object(request, state, lenient=True)
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
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    return np.asarray(values)
