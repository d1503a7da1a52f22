"""Bodies of the delivery routes (experiments, canary rollouts, blue-green deploys, gates).

Responses have the keys of the CLI's ``--json`` output (``modelplane experiments show --json``,
``rollout status --json``, ``deploy list --json``, ``gate --json``); the serializers below build
them from the domain objects, so the API never imports the CLI. Request bodies follow the rules of
:mod:`modelplane.api.schemas`: unknown fields and NUL characters are refused, numbers must be
finite, and values the database or a clock cannot hold are bounded at the edge (a 422, never a
500 deeper in); the delivery rules themselves (weights summing to 100, increasing steps…) stay
in the domain, which names the offending field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, FiniteFloat, PlainValidator, StrictInt

from modelplane.api.schemas import MAX_VERSION, NAME_PATTERN, RequestBody

__all__ = [
    "MAX_DURATION_S",
    "ArmOut",
    "DeployBody",
    "DeploymentList",
    "DeploymentOut",
    "ExperimentCreate",
    "ExperimentList",
    "ExperimentOut",
    "ExperimentReportOut",
    "GateBody",
    "GateCheckOut",
    "GateReportOut",
    "ReasonBody",
    "RolloutList",
    "RolloutOut",
    "RolloutStart",
    "RolloutStatusOut",
    "SmokeCaseIn",
    "StepDecisionOut",
    "VariantIn",
    "VersionRef",
]

#: Longest step duration or blue keep-alive accepted (one year): a clock cannot add more.
MAX_DURATION_S = 365 * 24 * 3600.0
#: Counters are 32-bit integers in the database.
MAX_COUNT = 2**31 - 1
#: Most smoke cases a gate run takes, and most values in one case's input.
MAX_SMOKE_CASES = 1000
MAX_SMOKE_VALUES = 10_000


def _version_ref(value: Any) -> int | str:
    """3 (a version number) or a non-empty reference text; anything else is refused here."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_VERSION:
            raise ValueError(f"a version number must be between 1 and {MAX_VERSION}")
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= 300:
            raise ValueError("a version reference must have 1 to 300 characters")
        return value
    raise ValueError("expected a version number or a reference such as fraud/3 or fraud@challenger")


VersionRef = Annotated[
    int | str,
    PlainValidator(
        _version_ref,
        json_schema_input_type=Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
        | Annotated[str, Field(min_length=1, max_length=300)],
    ),
    Field(
        description="A version of the model: 3, or a reference such as fraud/3, "
        "fraud@challenger or models:/fraud/3.",
        examples=[3, "fraud@challenger"],
    ),
]
Name = Annotated[
    str,
    Field(
        max_length=128,
        description="1-128 characters of a-z, 0-9, . _ -",
        # the domain checks it (422 invalid_name naming the field); documented, not re-checked
        json_schema_extra={"pattern": NAME_PATTERN, "minLength": 1},
    ),
]
ExperimentStatus = Literal["draft", "running", "paused", "stopped"]
RolloutStatus = Literal["running", "promoted", "rolled_back", "aborted"]


# -- requests ------------------------------------------------------------------------------
class VariantIn(RequestBody):
    name: Name
    version: VersionRef
    weight: FiniteFloat = Field(ge=0, le=100, description="Percentage of the model's traffic.")


class ExperimentCreate(RequestBody):
    """A split (``variants``, weights summing to 100; the first is the control) or a shadow
    (``kind: "shadow"``, ``candidate`` and ``percent``)."""

    name: Name
    model: Name
    kind: Literal["split", "shadow"] = "split"
    variants: list[VariantIn] | None = Field(
        default=None, max_length=100, description="A split's arms (two or more)."
    )
    candidate: VersionRef | None = Field(default=None, description="A shadow's version.")
    percent: FiniteFloat | None = Field(
        default=None, gt=0, le=100, description="A shadow's share of mirrored requests (100)."
    )
    metric: Literal["accuracy", "reward"] = "accuracy"
    mde: FiniteFloat = Field(default=0.02, description="Smallest difference worth detecting.")
    alpha: FiniteFloat = Field(default=0.05, description="Significance level.")
    power: FiniteFloat = Field(default=0.8, description="Power of the test.")
    bandit: bool = Field(default=False, description="Thompson sampling over the arms.")


class RolloutStart(RequestBody):
    candidate: VersionRef
    steps: list[StrictInt] = Field(
        default_factory=lambda: [5, 25, 50, 100],
        min_length=1,
        max_length=100,
        description="The candidate's weights in %, increasing, ending at 100.",
    )
    step_duration_s: FiniteFloat = Field(default=300.0, ge=0, le=MAX_DURATION_S)
    min_requests: StrictInt = Field(default=500, ge=1, le=MAX_COUNT)
    max_error_rate: FiniteFloat = Field(default=0.01, description="Between 0 and 1.")
    max_latency_ratio: FiniteFloat = Field(
        default=1.5, le=1000, description="Highest candidate p99 / baseline p99 (>= 1)."
    )
    alpha: FiniteFloat = Field(default=0.05, description="Significance of the tests.")
    force: bool = Field(
        default=False, description="Roll out a version whose gates did not pass (recorded)."
    )


class ReasonBody(RequestBody):
    reason: str | None = Field(default=None, min_length=1, max_length=1000)


class DeployBody(RequestBody):
    version: VersionRef
    strategy: Literal["blue-green"] = "blue-green"
    keep_blue_s: FiniteFloat = Field(
        default=600.0,
        ge=0,
        le=MAX_DURATION_S,
        description="How long serving replicas keep the previous champion loaded.",
    )
    force: bool = Field(
        default=False, description="Deploy a version whose gates did not pass (recorded)."
    )


GateMetric = Literal["roc_auc", "accuracy", "f1", "average_precision", "rmse", "mae"]


class SmokeCaseIn(RequestBody):
    """One smoke input and what its prediction must be (``expect``, or ``min``/``max`` on the
    positive-class probability when the model has one)."""

    input: (
        Annotated[dict[str, Any], Field(min_length=1, max_length=MAX_SMOKE_VALUES)]
        | Annotated[list[Any], Field(min_length=1, max_length=MAX_SMOKE_VALUES)]
    ) = Field(description="A record (column → value) or a list of feature values.")
    expect: Any = Field(default=None, description="The prediction it must equal.")
    min: FiniteFloat | None = Field(default=None, description="Lowest score allowed.")
    max: FiniteFloat | None = Field(default=None, description="Highest score allowed.")


class GateBody(RequestBody):
    """``modelplane gate``'s options: each one given replaces the model's saved setting (tag
    ``gate.config``); with none, the saved settings (or the signature check alone) run."""

    holdout: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Absolute path, on the server, of a readable .csv or .parquet holdout file.",
        examples=["/data/fraud/holdout.csv"],
    )
    label: str | None = Field(
        default=None, min_length=1, max_length=256, description="The label column of the holdout."
    )
    metric: GateMetric | None = Field(default=None, description="The holdout metric (roc_auc).")
    margin: FiniteFloat | None = Field(
        default=None, ge=0, le=1e9, description="How much worse than the champion is allowed (0)."
    )
    latency_budget_ms: FiniteFloat | None = Field(
        default=None, gt=0, le=3_600_000, description="p95 of single-row predictions, in ms."
    )
    smoke: list[SmokeCaseIn] | None = Field(
        default=None,
        max_length=MAX_SMOKE_CASES,
        description="Smoke cases (``--smoke``'s file, inline).",
    )
    save: bool = Field(default=False, description="Keep these settings on the model.")
    force: bool = Field(
        default=False, description="Let a failed version through (recorded as forced)."
    )


# -- responses -----------------------------------------------------------------------------
class ArmOut(BaseModel):
    name: str
    version: int
    weight: float


class ExperimentOut(BaseModel):
    name: str
    model: str
    kind: Literal["split", "shadow"]
    status: ExperimentStatus
    variants: list[ArmOut]
    metric: str
    mde: float
    alpha: float
    power: float
    bandit: bool
    shadow_percent: float
    subject: str = Field(description="Key of its live counters.")
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut] = Field(description="Newest first.")


class ExperimentReportOut(BaseModel):
    """The statistics of ``modelplane experiments report --json``."""

    experiment: str
    model: str
    kind: str
    status: str
    metric: str
    bandit: bool
    mde: float
    alpha: float
    power: float
    control: str
    variants: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    min_sample_size: int | None
    sufficient: bool
    srm: dict[str, Any] | None
    srm_note: str
    winner: str | None
    summary: str


class RolloutOut(BaseModel):
    rollout: str = Field(description="model#id")
    id: int | None
    model: str
    baseline: int
    candidate: int
    steps: list[int]
    step: int = Field(description="Index of the current step in steps.")
    weight: int = Field(description="The candidate's share of traffic now, in %.")
    status: RolloutStatus
    reason: str
    forced: bool
    step_duration_s: float
    min_requests: int
    max_error_rate: float
    max_latency_ratio: float
    alpha: float
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime


class StepDecisionOut(BaseModel):
    model: str
    rollout: str
    step: int
    weight: int
    action: Literal["advance", "promote", "rollback", "hold"]
    reason: str
    evidence: dict[str, Any]


class RolloutStatusOut(RolloutOut):
    step_counters: dict[str, dict[str, Any]] = Field(
        description="candidate and baseline counters of the current step."
    )
    totals: dict[str, dict[str, Any]] = Field(description="The same over every step so far.")
    next_decision: StepDecisionOut | None = Field(
        description="What the canary controller would do now (null once it ended)."
    )


class RolloutList(BaseModel):
    rollouts: list[RolloutOut] = Field(description="Newest first.")


class DeploymentOut(BaseModel):
    deployment: str = Field(description="model#id")
    id: int | None
    model: str
    blue: int | None = Field(description="The previous champion (null: there was none).")
    green: int = Field(description="The new champion.")
    status: Literal["switched", "rolled_back"]
    forced: bool
    keep_until: datetime
    created_at: datetime
    updated_at: datetime


class DeploymentList(BaseModel):
    deployments: list[DeploymentOut] = Field(description="Newest first.")


class GateCheckOut(BaseModel):
    name: str = Field(description="signature, holdout, latency or smoke.")
    passed: bool
    detail: str
    data: dict[str, Any]


class GateReportOut(BaseModel):
    """``modelplane gate --json``: every check run, and the verdict."""

    candidate: str = Field(description="model/version gated.")
    champion: str | None = Field(description="model/version compared with (null: none).")
    passed: bool = Field(description="Whether every check passed.")
    forced: bool = Field(description="A failed version let through (force).")
    checks: list[GateCheckOut]
