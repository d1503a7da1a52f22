"""Canary rollouts over REST: start one, read its live state, promote or abort it by hand.

Writes are commands on the bus and need an ``admin`` token; reads go through
``platform.traffic`` and follow ``require_read``. A rollout takes a version whose release gates
passed already (``POST …/versions/{version}/gate``), else 409 ``gate_blocked`` unless ``force``
(recorded). Routes are plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response

from modelplane.api.errors import error_docs
from modelplane.api.params import ModelFilter, Name, RecentLimit, model_filter
from modelplane.api.refs import existing_model, version_of
from modelplane.api.schemas import ADMIN, READ
from modelplane.api.schemas_delivery import (
    ReasonBody,
    RolloutList,
    RolloutOut,
    RolloutStart,
    RolloutStatusOut,
)
from modelplane.api.security import AdminAccess, PlatformDep, ReadAccess
from modelplane.core.names import validate_name
from modelplane.traffic import commands as tc
from modelplane.traffic.rollout import Rollout

__all__ = ["router"]

router = APIRouter(tags=["delivery"])

# Besides success: 400 only where a JSON body is parsed, 404 where a model or rollout is named,
# 409 where the state can refuse, 413 wherever a body is read.
_BODY_WRITE_ERRORS = error_docs(400, 401, 403, 404, 409, 413, 422)


@router.post(
    "/models/{name}/rollouts",
    status_code=201,
    response_model=RolloutOut,
    responses=_BODY_WRITE_ERRORS,
    summary="Start a canary rollout (admin)",
    openapi_extra=ADMIN,
)
def start_rollout(
    name: Name,
    request: Request,
    response: Response,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[
        RolloutStart,
        Body(examples=[{"candidate": 4, "steps": [5, 25, 50, 100], "step_duration_s": 300}]),
    ],
) -> dict[str, Any]:
    """The candidate takes ``steps[0]`` % of the model's traffic against its champion; the
    controller of the serving replicas advances, promotes or rolls it back.

    The candidate's release gates must have passed already (``modelplane gate``), else 409
    ``gate_blocked`` unless ``force`` (recorded). 409 also when the model has no champion, or
    a rollout or split already routes it; 404 for an unknown model or version.
    """
    model = existing_model(platform, name)
    candidate = version_of(platform, model, body.candidate, field="body.candidate")
    rollout: Rollout = platform.bus.handle(
        tc.StartRollout(
            model=model,
            candidate=candidate,
            steps=tuple(body.steps),
            step_duration_s=body.step_duration_s,
            min_requests=body.min_requests,
            max_error_rate=body.max_error_rate,
            max_latency_ratio=body.max_latency_ratio,
            alpha=body.alpha,
            force=body.force,
        )
    )
    response.headers["Location"] = request.url.path.removesuffix("s")  # …/rollout
    return rollout.to_dict()


@router.get(
    "/rollouts",
    response_model=RolloutList,
    responses=error_docs(401, 403, 422),
    summary="List rollouts",
    openapi_extra=READ,
)
def list_rollouts(
    platform: PlatformDep,
    _: ReadAccess,
    model: ModelFilter = None,
    status: Annotated[
        Literal["running", "promoted", "rolled_back", "aborted"] | None, Query()
    ] = None,
    limit: RecentLimit = 50,
) -> dict[str, Any]:
    """Rollouts, newest first, filtered by model and status."""
    found = platform.traffic.list_rollouts(model=model_filter(model), status=status, limit=limit)
    return {"rollouts": [r.to_dict() for r in found]}


@router.get(
    "/models/{name}/rollout",
    response_model=RolloutStatusOut,
    responses=error_docs(401, 403, 404, 422),
    summary="The model's latest rollout and its live state",
    openapi_extra=READ,
)
def rollout_status(name: Name, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    """The latest rollout, the candidate and baseline counters of its current step and of all
    steps, and what the canary controller would decide now (while it runs)."""
    from modelplane.traffic.controller import RolloutController

    model = existing_model(platform, name)  # an unknown model is named as such
    views = platform.traffic
    rollout = views.latest_rollout(model)
    step = views.rollout_counters(rollout)
    totals = views.rollout_totals(rollout)
    decision = None
    if rollout.status == "running":
        decision = RolloutController(platform.bus, views).evaluate(rollout).to_dict()
    return rollout.to_dict() | {
        "step_counters": {k: v.to_dict() for k, v in step.items()},
        "totals": {k: v.to_dict() for k, v in totals.items()},
        "next_decision": decision,
    }


@router.post(
    "/models/{name}/rollout/promote",
    response_model=RolloutOut,
    responses=_BODY_WRITE_ERRORS,
    summary="Promote the running rollout now (admin)",
    openapi_extra=ADMIN,
)
def promote_rollout(
    name: Name,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[ReasonBody | None, Body(examples=[{"reason": "looks good"}])] = None,
) -> dict[str, Any]:
    """The ``champion`` alias moves to the candidate at once (recorded as manual). 404 when the
    model has had no rollout, 409 when its latest one is not running."""
    model = validate_name(name)
    reason = (body.reason if body is not None else None) or "promoted by hand"
    rollout: Rollout = platform.bus.handle(
        tc.DecideRollout(model=model, decision="promote", reason=reason, manual=True)
    )
    return rollout.to_dict()


@router.post(
    "/models/{name}/rollout/abort",
    response_model=RolloutOut,
    responses=_BODY_WRITE_ERRORS,
    summary="Abort the running rollout (admin)",
    openapi_extra=ADMIN,
)
def abort_rollout(
    name: Name,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[ReasonBody | None, Body(examples=[{"reason": "bad feedback"}])] = None,
) -> dict[str, Any]:
    """All traffic goes back to the champion. 404 when the model has had no rollout, 409 when
    its latest one is not running."""
    model = validate_name(name)
    reason = (body.reason if body is not None else None) or "aborted by hand"
    rollout: Rollout = platform.bus.handle(tc.AbortRollout(model=model, reason=reason))
    return rollout.to_dict()
