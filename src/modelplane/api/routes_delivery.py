"""Safe-delivery routes: experiments (A/B/n, bandit, shadow), canary rollouts, blue-green deploys.

The admin side of delivery over REST, next to the CLI's ``experiments``, ``rollout`` and
``deploy`` commands. Writes go through the message bus (:class:`~modelplane.client.Client`) and
need a token of scope ``admin``; reads go through ``platform.traffic`` and follow
``require_read``. Every refusal is an error of the one JSON shape and changes nothing: the
handlers check every rule inside one transaction and commit state and events together.

Release gates run on their own route, ``POST /models/{name}/versions/{version}/gate`` (the use
case ``traffic.gating.evaluate_gates``, which ``modelplane gate`` runs too); it loads models and
times predictions, so it may take a while. ``POST /models/{name}/deployments`` and ``/rollouts``
do not run them: they require the version's gates to have passed already, else 409
``gate_blocked`` unless ``force`` (recorded).

Routes are plain ``def``: FastAPI runs them in its thread pool, so the database calls and the
experiment report (which reads the Parquet prediction log) never block the event loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi import Path as PathParam

from modelplane.api.errors import error_docs
from modelplane.api.routes_registry import Name, Number
from modelplane.api.schemas import ADMIN, MAX_VERSION, NAME_SCHEMA, READ
from modelplane.api.schemas_delivery import (
    DeployBody,
    DeploymentList,
    DeploymentOut,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    ExperimentReportOut,
    GateBody,
    GateReportOut,
    ReasonBody,
    RolloutList,
    RolloutOut,
    RolloutStart,
    RolloutStatusOut,
)
from modelplane.api.security import PlatformDep, require_admin, require_read
from modelplane.auth.model import Token
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.core.names import validate_name
from modelplane.errors import InvalidInput, ModelNotFound
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.gates import HOLDOUT_SUFFIXES, SmokeCase
from modelplane.traffic.gating import evaluate_gates, report_json

__all__ = ["router"]

router = APIRouter(tags=["delivery"])

ReadAccess = Annotated[Token | None, Depends(require_read)]
AdminAccess = Annotated[Token, Depends(require_admin)]

# Names are checked by the domain (422 ``invalid_name`` naming the field); the pattern
# documents that rule (``core.names.NAME_RE``), it is not a second check.
_NAME = NAME_SCHEMA
ExperimentName = Annotated[
    str, PathParam(description="Experiment name.", max_length=128, json_schema_extra=_NAME)
]
ModelFilter = Annotated[
    str | None,
    Query(max_length=128, description="Only this model's (a model name).", json_schema_extra=_NAME),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]

# Besides success: 400 only where a JSON body is parsed, 404 only where a model, experiment or
# rollout is named, 409 only where the state can refuse, 413 wherever a body is read. 401/403
# on a read route happen only when the server sets ``require_auth``.
_LIST_ERRORS = error_docs(401, 403, 422)
_READ_ERRORS = error_docs(401, 403, 404, 422)
_BODY_WRITE_ERRORS = error_docs(400, 401, 403, 404, 409, 413, 422)
_WRITE_ERRORS = error_docs(401, 403, 404, 409, 422)
_SHADOW_ARM = "shadow"


# -- helpers -------------------------------------------------------------------------------
def _model(name: str, *, field: str = "name") -> str:
    return validate_name(name, field=field)


def _existing(platform: Platform, name: str, *, field: str = "name") -> str:
    """A valid name of a registered model (404 otherwise, before any reference is resolved)."""
    try:
        platform.registry.get_model(_model(name, field=field))
    except ModelNotFound as exc:
        raise ModelNotFound(exc.message, field=field) from None
    return name


def _filter(model: str | None) -> str | None:
    return None if model is None else validate_name(model, field="query.model")


def _version_of(platform: Platform, model: str, ref: int | str, *, field: str) -> int:
    """A version number of ``model`` from 3, "3", "fraud/3", "fraud@challenger", "models:/…".

    A number is checked by the command (404 when the model has no such version); a reference
    must name a version of ``model`` itself.
    """
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 1 <= number <= MAX_VERSION:
            raise InvalidInput(
                f"{field}: version must be between 1 and {MAX_VERSION}, got {text}", field=field
            )
        return number
    try:
        found = platform.registry.resolve(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None
    if found.model != model:
        raise InvalidInput(
            f"{field}: {ref!r} is a version of {found.model!r}, not of {model!r}", field=field
        )
    return found.version


# -- experiments ---------------------------------------------------------------------------
@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentOut,
    responses=_BODY_WRITE_ERRORS,
    summary="Create an experiment (admin)",
    openapi_extra=ADMIN,
)
def create_experiment(
    request: Request,
    response: Response,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[
        ExperimentCreate,
        Body(
            examples=[
                {
                    "name": "ab1",
                    "model": "fraud",
                    "variants": [
                        {"name": "a", "version": 3, "weight": 50},
                        {"name": "b", "version": 4, "weight": 50},
                    ],
                    "metric": "accuracy",
                },
                {"name": "sh1", "model": "fraud", "kind": "shadow", "candidate": 4, "percent": 20},
            ]
        ),
    ],
) -> dict[str, Any]:
    """A draft A/B/n split or shadow of a model; ``POST /experiments/{name}/start`` sends it
    traffic. A split's ``variants`` are (name, version, weight %) with weights summing to 100,
    the first the control; a shadow mirrors ``percent`` % of the requests to ``candidate`` off
    the request path. 404 for an unknown model or version, 409 when the name is taken."""
    validate_name(body.name, field="body.name")
    model = _existing(platform, body.model, field="body.model")
    options: dict[str, Any] = {
        "metric": body.metric,
        "mde": body.mde,
        "alpha": body.alpha,
        "power": body.power,
        "bandit": body.bandit,
    }
    if body.kind == "shadow":
        if body.variants is not None:
            raise InvalidInput(
                "a shadow takes candidate (and percent), not variants", field="body.variants"
            )
        if body.candidate is None:
            raise InvalidInput("a shadow needs a candidate version", field="body.candidate")
        version = _version_of(platform, model, body.candidate, field="body.candidate")
        arms = {_SHADOW_ARM: (version, 100.0)}
        options |= {
            "kind": "shadow",
            "shadow_percent": 100.0 if body.percent is None else body.percent,
        }
    else:
        for extra in ("candidate", "percent"):
            if getattr(body, extra) is not None:
                raise InvalidInput(
                    f'{extra} applies to a shadow (kind: "shadow") only', field=f"body.{extra}"
                )
        if not body.variants:
            raise InvalidInput(
                "a split needs variants: [{name, version, weight}, …] (two or more)",
                field="body.variants",
            )
        names = [v.name for v in body.variants]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise InvalidInput(
                    f"duplicate variant name {name!r}", field=f"body.variants[{i}].name"
                )
        arms = {
            v.name: (
                _version_of(platform, model, v.version, field=f"body.variants[{i}].version"),
                v.weight,
            )
            for i, v in enumerate(body.variants)
        }
    experiment = Client(platform=platform).create_experiment(body.name, model, arms, **options)
    response.headers["Location"] = f"{request.url.path}/{experiment.name}"
    return experiment.to_dict()


@router.get(
    "/experiments",
    response_model=ExperimentList,
    responses=_LIST_ERRORS,
    summary="List experiments",
    openapi_extra=READ,
)
def list_experiments(
    platform: PlatformDep,
    _: ReadAccess,
    model: ModelFilter = None,
    status: Annotated[Literal["draft", "running", "paused", "stopped"] | None, Query()] = None,
) -> dict[str, Any]:
    """Experiments, newest first, filtered by model and status."""
    found = platform.traffic.list_experiments(model=_filter(model), status=status)
    return {"experiments": [e.to_dict() for e in found]}


def _experiment(platform: Platform, name: str) -> Experiment:
    validate_name(name)
    return platform.traffic.get_experiment(name)


@router.get(
    "/experiments/{name}",
    response_model=ExperimentOut,
    responses=_READ_ERRORS,
    summary="Get an experiment",
    openapi_extra=READ,
)
def get_experiment(name: ExperimentName, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    return _experiment(platform, name).to_dict()


def _action(platform: Platform, name: str, action: str) -> dict[str, Any]:
    validate_name(name)
    return Client(platform=platform).experiment_action(name, action).to_dict()


@router.post(
    "/experiments/{name}/start",
    response_model=ExperimentOut,
    responses=_WRITE_ERRORS,
    summary="Start or resume an experiment (admin)",
    openapi_extra=ADMIN,
)
def start_experiment(name: ExperimentName, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """Route the model's traffic by the experiment (a shadow: mirror it). 409 when a rollout
    or another split already routes the model, or the experiment is stopped."""
    return _action(platform, name, "start")


@router.post(
    "/experiments/{name}/pause",
    response_model=ExperimentOut,
    responses=_WRITE_ERRORS,
    summary="Pause an experiment (admin)",
    openapi_extra=ADMIN,
)
def pause_experiment(name: ExperimentName, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """Traffic goes back to the champion; the counts are kept. 409 unless running."""
    return _action(platform, name, "pause")


@router.post(
    "/experiments/{name}/stop",
    response_model=ExperimentOut,
    responses=error_docs(401, 403, 404, 422),
    summary="Stop an experiment for good (admin)",
    openapi_extra=ADMIN,
)
def stop_experiment(name: ExperimentName, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """Stopping twice is a no-op; the report stays readable."""
    return _action(platform, name, "stop")


@router.get(
    "/experiments/{name}/report",
    response_model=ExperimentReportOut,
    responses=_READ_ERRORS,
    summary="The statistics of an experiment",
    openapi_extra=READ,
)
def experiment_report(name: ExperimentName, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    """Per variant, against the control, and a verdict (``modelplane experiments report``).

    Outcomes come from the stored feedback joined with the prediction log, or from the
    outcome sums the serving replicas keep in the counters when those hold more.
    """
    from modelplane.traffic.report import report_of

    experiment = _experiment(platform, name)
    return report_of(
        platform.traffic, experiment, prediction_log=platform.settings.resolved_prediction_log
    ).to_dict()


# -- canary rollouts -----------------------------------------------------------------------
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
    model = _existing(platform, name)
    candidate = _version_of(platform, model, body.candidate, field="body.candidate")
    rollout = Client(platform=platform).start_rollout(
        model,
        candidate,
        steps=tuple(body.steps),
        step_duration_s=body.step_duration_s,
        min_requests=body.min_requests,
        max_error_rate=body.max_error_rate,
        max_latency_ratio=body.max_latency_ratio,
        alpha=body.alpha,
        force=body.force,
    )
    response.headers["Location"] = request.url.path.removesuffix("s")  # …/rollout
    return rollout.to_dict()


@router.get(
    "/rollouts",
    response_model=RolloutList,
    responses=_LIST_ERRORS,
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
    limit: Limit = 50,
) -> dict[str, Any]:
    """Rollouts, newest first, filtered by model and status."""
    found = platform.traffic.list_rollouts(model=_filter(model), status=status, limit=limit)
    return {"rollouts": [r.to_dict() for r in found]}


@router.get(
    "/models/{name}/rollout",
    response_model=RolloutStatusOut,
    responses=_READ_ERRORS,
    summary="The model's latest rollout and its live state",
    openapi_extra=READ,
)
def rollout_status(name: Name, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    """The latest rollout, the candidate and baseline counters of its current step and of all
    steps, and what the canary controller would decide now (while it runs)."""
    from modelplane.traffic.controller import RolloutController

    model = _existing(platform, name)  # an unknown model is named as such
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
    model = _model(name)
    reason = (body.reason if body is not None else None) or "promoted by hand"
    rollout = Client(platform=platform).decide_rollout(model, "promote", reason=reason, manual=True)
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
    model = _model(name)
    reason = (body.reason if body is not None else None) or "aborted by hand"
    return Client(platform=platform).abort_rollout(model, reason).to_dict()


# -- blue-green deployments ----------------------------------------------------------------
@router.post(
    "/models/{name}/deployments",
    status_code=201,
    response_model=DeploymentOut,
    responses=_BODY_WRITE_ERRORS,
    summary="Blue-green deploy a version (admin)",
    openapi_extra=ADMIN,
)
def deploy(
    name: Name,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[DeployBody, Body(examples=[{"version": 5, "keep_blue_s": 600}])],
) -> dict[str, Any]:
    """Move the ``champion`` alias to ``version`` at once; serving replicas keep the previous
    champion (blue) loaded ``keep_blue_s`` seconds so a rollback is instant.

    The release gates are **not** run here: the version's gates must have passed already
    (``modelplane gate MODEL/N``; ``modelplane deploy`` runs them first), else 409
    ``gate_blocked`` unless ``force`` (recorded). 409 also when it is already the champion or a
    rollout or split routes the model; 404 for an unknown model or version.
    """
    model = _existing(platform, name)
    version = _version_of(platform, model, body.version, field="body.version")
    deployment = Client(platform=platform).deploy(
        model, version, keep_blue_s=body.keep_blue_s, force=body.force
    )
    return deployment.to_dict()


@router.post(
    "/models/{name}/deployments/rollback",
    response_model=DeploymentOut,
    responses=_WRITE_ERRORS,
    summary="Roll the last deployment back (admin)",
    openapi_extra=ADMIN,
)
def rollback_deploy(name: Name, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """The ``champion`` goes back to the version the last deploy replaced (blue). 409 when
    there is nothing to roll back or the champion moved since."""
    model = _model(name)
    return Client(platform=platform).rollback_deploy(model).to_dict()


@router.get(
    "/deployments",
    response_model=DeploymentList,
    responses=_LIST_ERRORS,
    summary="List deployments",
    openapi_extra=READ,
)
def list_deployments(
    platform: PlatformDep, _: ReadAccess, model: ModelFilter = None, limit: Limit = 50
) -> dict[str, Any]:
    """Blue-green deployments, newest first."""
    found = platform.traffic.list_deployments(model=_filter(model), limit=limit)
    return {"deployments": [d.to_dict() for d in found]}


# -- release gates -------------------------------------------------------------------------


def _holdout_file(text: str) -> str:
    """``text`` if it names a readable regular file on the server that the gates can read.

    Refused (422 ``body.holdout``): a relative path (relative to what, on a server?), a URL
    (the server fetches nothing for a caller), a folder, a FIFO or device, a missing or
    unreadable file, another suffix. The CLI reports such a holdout as a failed check instead;
    over REST it is the caller's mistake, told before anything runs or is recorded.
    """
    field = "body.holdout"
    path = Path(text)
    if not path.is_absolute():
        raise InvalidInput(
            f"{field}: give an absolute path of a file on the server, got {text!r}", field=field
        )
    if path.suffix.lower() not in HOLDOUT_SUFFIXES:
        raise InvalidInput(
            f"{field}: expected a .csv or .parquet file, got {path.suffix or 'no suffix'!r}",
            field=field,
        )
    try:
        readable = path.is_file() and os.access(path, os.R_OK)
    except (OSError, ValueError):  # a name too long for the file system, say
        readable = False
    if not readable:
        raise InvalidInput(f"{field}: {text!r} is not a readable file on the server", field=field)
    return text


def _smoke_cases(body: GateBody) -> tuple[SmokeCase, ...] | None:
    if body.smoke is None:
        return None
    cases: list[SmokeCase] = []
    for i, case in enumerate(body.smoke):
        try:
            cases.append(
                SmokeCase(input=case.input, expect=case.expect, min=case.min, max=case.max)
            )
        except InvalidInput as exc:
            field = f"body.smoke[{i}].{exc.field or 'input'}"
            raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    return tuple(cases)


@router.post(
    "/models/{name}/versions/{version}/gate",
    response_model=GateReportOut,
    responses=error_docs(400, 401, 403, 404, 409, 413, 422, 500),
    summary="Run a version's release gates and record the result (admin)",
    openapi_extra=ADMIN,
)
def gate(
    name: Name,
    version: Number,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[
        GateBody | None,
        Body(
            examples=[
                {"smoke": [{"input": [0.0, 1.0], "expect": 0}], "latency_budget_ms": 1000},
                {
                    "holdout": "/data/fraud/holdout.csv",
                    "label": "is_fraud",
                    "metric": "roc_auc",
                    "margin": 0.01,
                    "save": True,
                },
            ]
        ),
    ] = None,
) -> dict[str, Any]:
    """``modelplane gate MODEL/N`` over REST: the checks run against the ``champion`` (the
    model's saved settings, tag ``gate.config``, with the body's over them) and the result is
    recorded on the version (tag ``modelplane.gate``: passed, failed or forced) for rollouts
    and deploys to honour. 200 whether the gates pass or fail: ``passed`` says which.

    ``holdout`` is a file on the server (an absolute path; 422 unless it is a readable .csv or
    .parquet file); ``smoke`` takes the cases of ``--smoke``'s file inline. 404 for an unknown
    model or version, 409 for an archived version, 422 naming the field for a bad setting;
    nothing is recorded or saved then. Blocking work (loading, predicting): it runs in the
    server's thread pool.
    """
    body = body or GateBody()
    model = _model(name)
    given: dict[str, Any] = {
        "holdout": None if body.holdout is None else _holdout_file(body.holdout),
        "label": body.label,
        "metric": body.metric,
        "margin": body.margin,
        "latency_budget_ms": body.latency_budget_ms,
        "smoke": _smoke_cases(body),
    }
    try:
        report = evaluate_gates(
            Client(platform=platform), model, version, given, save=body.save, force=body.force
        )
    except InvalidInput as exc:
        if exc.field is None or given.get(exc.field) is None:  # the saved settings, the model
            raise
        field = f"body.{exc.field}"
        raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    return report_json(report, forced=body.force)
