"""Release gates over REST: ``POST /models/{name}/versions/{version}/gate`` (admin).

The route runs the use case ``traffic.gating.evaluate_gates`` over the ports
``modelplane.bootstrap.gate_ports`` builds, as ``modelplane gate`` does, and returns its ``--json``
report. It loads models and times predictions, so it may take a while: a plain ``def``, run in
FastAPI's thread pool. Rollouts and deploys do not run the gates; they honour the recorded
result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body

from modelplane.api.errors import error_docs
from modelplane.api.params import Name, Number
from modelplane.api.schemas import ADMIN
from modelplane.api.schemas_delivery import GateBody, GateReportOut
from modelplane.api.security import AdminAccess, PlatformDep
from modelplane.bootstrap import gate_ports
from modelplane.core.names import validate_name
from modelplane.errors import InvalidInput
from modelplane.traffic.gates import HOLDOUT_SUFFIXES, SmokeCase
from modelplane.traffic.gating import evaluate_gates, report_json

__all__ = ["router"]

router = APIRouter(tags=["delivery"])


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
    model = validate_name(name)
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
            gate_ports(platform), model, version, given, save=body.save, force=body.force
        )
    except InvalidInput as exc:
        if exc.field is None or given.get(exc.field) is None:  # the saved settings, the model
            raise
        field = f"body.{exc.field}"
        raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    return report_json(report, forced=body.force)
