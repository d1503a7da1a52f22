"""Experiments over REST: A/B/n splits (with a bandit or not) and shadows, and their report.

Writes are commands on the bus and need an ``admin`` token; reads go through
``platform.traffic`` and follow ``require_read``. Every refusal is an error of the one JSON shape
and changes nothing. Routes are plain ``def``: the database calls and the report (which reads
the Parquet prediction log) run in FastAPI's thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response

from modelplane.api.errors import error_docs
from modelplane.api.params import ExperimentName, ModelFilter, model_filter
from modelplane.api.refs import existing_model, version_of
from modelplane.api.schemas import ADMIN, READ
from modelplane.api.schemas_delivery import (
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    ExperimentReportOut,
)
from modelplane.api.security import AdminAccess, PlatformDep, ReadAccess
from modelplane.bootstrap import Platform
from modelplane.core.messages import Command
from modelplane.core.names import validate_name
from modelplane.errors import InvalidInput
from modelplane.traffic import commands as tc
from modelplane.traffic.experiment import Experiment

__all__ = ["router"]

router = APIRouter(tags=["delivery"])

# Besides success: 400 only where a JSON body is parsed, 404 only where a model or experiment is
# named, 409 only where the state can refuse, 413 wherever a body is read. 401/403 on a read
# route happen only when the server sets ``require_auth``.
_READ_ERRORS = error_docs(401, 403, 404, 422)
_WRITE_ERRORS = error_docs(401, 403, 404, 409, 422)
_SHADOW_ARM = "shadow"

Arms = tuple[tuple[str, int, float], ...]


def _shadow(platform: Platform, model: str, body: ExperimentCreate) -> tuple[Arms, dict[str, Any]]:
    """A shadow's one arm (its candidate) and the options that make it one."""
    if body.variants is not None:
        raise InvalidInput(
            "a shadow takes candidate (and percent), not variants", field="body.variants"
        )
    if body.candidate is None:
        raise InvalidInput("a shadow needs a candidate version", field="body.candidate")
    version = version_of(platform, model, body.candidate, field="body.candidate")
    percent = 100.0 if body.percent is None else body.percent
    return ((_SHADOW_ARM, version, 100.0),), {"kind": "shadow", "shadow_percent": percent}


def _split(platform: Platform, model: str, body: ExperimentCreate) -> Arms:
    """A split's arms: (name, version, weight %) in the body's order, the first the control."""
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
            raise InvalidInput(f"duplicate variant name {name!r}", field=f"body.variants[{i}].name")
    return tuple(
        (
            v.name,
            version_of(platform, model, v.version, field=f"body.variants[{i}].version"),
            float(v.weight),
        )
        for i, v in enumerate(body.variants)
    )


@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentOut,
    responses=error_docs(400, 401, 403, 404, 409, 413, 422),
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
    model = existing_model(platform, body.model, field="body.model")
    options: dict[str, Any] = {
        "metric": body.metric,
        "mde": body.mde,
        "alpha": body.alpha,
        "power": body.power,
        "bandit": body.bandit,
    }
    if body.kind == "shadow":
        arms, shadow = _shadow(platform, model, body)
        options |= shadow
    else:
        arms = _split(platform, model, body)
    experiment: Experiment = platform.bus.handle(
        tc.CreateExperiment(name=body.name, model=model, variants=arms, **options)
    )
    response.headers["Location"] = f"{request.url.path}/{experiment.name}"
    return experiment.to_dict()


@router.get(
    "/experiments",
    response_model=ExperimentList,
    responses=error_docs(401, 403, 422),
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
    found = platform.traffic.list_experiments(model=model_filter(model), status=status)
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


def _act(platform: Platform, command: Command) -> dict[str, Any]:
    experiment: Experiment = platform.bus.handle(command)
    return experiment.to_dict()


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
    return _act(platform, tc.StartExperiment(name=validate_name(name)))


@router.post(
    "/experiments/{name}/pause",
    response_model=ExperimentOut,
    responses=_WRITE_ERRORS,
    summary="Pause an experiment (admin)",
    openapi_extra=ADMIN,
)
def pause_experiment(name: ExperimentName, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """Traffic goes back to the champion; the counts are kept. 409 unless running."""
    return _act(platform, tc.PauseExperiment(name=validate_name(name)))


@router.post(
    "/experiments/{name}/stop",
    response_model=ExperimentOut,
    responses=error_docs(401, 403, 404, 422),
    summary="Stop an experiment for good (admin)",
    openapi_extra=ADMIN,
)
def stop_experiment(name: ExperimentName, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """Stopping twice is a no-op; the report stays readable."""
    return _act(platform, tc.StopExperiment(name=validate_name(name)))


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
