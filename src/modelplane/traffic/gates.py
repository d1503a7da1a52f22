"""Release gates: the checks a model version must pass before it takes live traffic.

::

    config = GateConfig(holdout="holdout.parquet", label="is_fraud", metric="roc_auc",
                        margin=0.01, latency_budget_ms=20, smoke=load_smoke("smoke.json"))
    report = run_gates(candidate, champion, config)   # two loaded models (champion may be None)
    report.passed, report.to_dict()

The checks, in order (each a :class:`Check` in the :class:`GateReport`):

1. ``signature`` — every champion input exists in the candidate with the same dtype and a
   compatible shape, and the candidate takes no input the champion lacked;
2. ``holdout`` (with a holdout and a label) — the configured metric on the holdout set, not
   worse than the champion's on the same rows by more than ``margin``;
3. ``latency`` (with a budget) — p95 of single-row predictions (holdout rows, else the smoke
   inputs; with neither it fails), 50 timed calls after 5 warm-up calls, within the budget;
4. ``smoke`` (with smoke cases) — each case's prediction equals ``expect`` or lies within
   ``min``/``max`` (bounds apply to the positive-class probability when the model has one).

This module configures the checks, runs them and reports; the checks themselves are
:mod:`modelplane.traffic.gate_checks`'. Pure: no database, no CLI. A check that raises (a bad
file, a model error) is a failed check with the error in its detail; :func:`run_gates` raises
only `InvalidInput` for a bad config.
Models are taken structurally (:class:`GateModel`: ``predict``, ``predict_proba``,
``signature``, ``runtime.has_proba``, ``version``), so this module imports no other capability.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.errors import InvalidInput
from modelplane.traffic.gate_checks import HIGHER_IS_BETTER as HIGHER_IS_BETTER
from modelplane.traffic.gate_checks import HOLDOUT_SUFFIXES as HOLDOUT_SUFFIXES
from modelplane.traffic.gate_checks import LATENCY_CALLS as LATENCY_CALLS
from modelplane.traffic.gate_checks import LATENCY_WARMUP as LATENCY_WARMUP
from modelplane.traffic.gate_checks import Check as Check
from modelplane.traffic.gate_checks import GateModel as GateModel
from modelplane.traffic.gate_checks import (
    describe,
    holdout_check,
    latency_check,
    load_frame,
    signature_check,
    smoke_check,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HIGHER_IS_BETTER",
    "HOLDOUT_SUFFIXES",
    "LATENCY_CALLS",
    "LATENCY_WARMUP",
    "METRICS",
    "Check",
    "GateConfig",
    "GateModel",
    "GateReport",
    "SmokeCase",
    "load_smoke",
    "run_gates",
]

METRICS = ("roc_auc", "accuracy", "f1", "average_precision", "rmse", "mae")


# -- configuration -------------------------------------------------------------------------


def _number(value: Any, field: str, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
    return float(value)


@dataclass(frozen=True)
class SmokeCase:
    """One smoke input (a record dict or a feature list) and what its prediction must be."""

    input: dict[str, Any] | list[Any]
    expect: Any = None
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.input, dict | list) or not self.input:
            raise InvalidInput(
                f"a smoke case's input must be a non-empty object or list, got {self.input!r}",
                field="input",
            )
        low = _number(self.min, "min")
        high = _number(self.max, "max")
        if low is not None and high is not None and low > high:
            raise InvalidInput(f"smoke case: min {low} is above max {high}", field="min")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input}
        for key in ("expect", "min", "max"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SmokeCase:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a smoke case must be an object, got {data!r}", field="smoke")
        unknown = sorted(set(data) - {"input", "expect", "min", "max"})
        if unknown:
            raise InvalidInput(f"unknown smoke case keys {unknown}", field=str(unknown[0]))
        if "input" not in data:
            raise InvalidInput("a smoke case needs an input", field="input")
        return cls(
            input=data["input"],
            expect=data.get("expect"),
            min=data.get("min"),
            max=data.get("max"),
        )


def load_smoke(path: str | Path) -> tuple[SmokeCase, ...]:
    """Smoke cases from a JSON file: ``[{"input": {...}, "expect": 0}, {"input": [...]}]``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"cannot read smoke cases from {path}: {exc}", field="smoke") from exc
    if not isinstance(data, list):
        raise InvalidInput(
            f"{path}: smoke cases must be a JSON list of objects, got {type(data).__name__}",
            field="smoke",
        )
    return tuple(SmokeCase.from_dict(item) for item in data)


@dataclass(frozen=True)
class GateConfig:
    """Which checks to run and their thresholds (see the module docstring)."""

    holdout: str | None = None
    label: str | None = None
    metric: str = "roc_auc"
    margin: float = 0.0
    latency_budget_ms: float | None = None
    smoke: tuple[SmokeCase, ...] = ()

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InvalidInput(
                f"unknown metric {self.metric!r}; expected one of {list(METRICS)}",
                field="metric",
            )
        margin = _number(self.margin, "margin", allow_none=False)
        if margin is None or margin < 0:
            raise InvalidInput(f"margin must be 0 or more, got {self.margin}", field="margin")
        if self.holdout is not None and (not isinstance(self.holdout, str) or not self.holdout):
            raise InvalidInput("holdout must be a file path", field="holdout")
        if self.label is not None and self.holdout is None:
            raise InvalidInput("a label column needs a holdout file", field="label")
        if self.label is not None and (not isinstance(self.label, str) or not self.label):
            raise InvalidInput("label must be a column name", field="label")
        budget = _number(self.latency_budget_ms, "latency_budget_ms")
        if budget is not None and budget <= 0:
            raise InvalidInput(
                f"latency_budget_ms must be above 0, got {budget}", field="latency_budget_ms"
            )
        if not all(isinstance(c, SmokeCase) for c in self.smoke):
            raise InvalidInput("smoke must be a sequence of SmokeCase", field="smoke")

    def to_dict(self) -> dict[str, Any]:
        return {
            "holdout": self.holdout,
            "label": self.label,
            "metric": self.metric,
            "margin": self.margin,
            "latency_budget_ms": self.latency_budget_ms,
            "smoke": [c.to_dict() for c in self.smoke],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateConfig:
        """From JSON/TOML; ``smoke`` is a list of cases or the path of a smoke JSON file."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a gate config must be an object, got {data!r}", field="gates")
        known = {"holdout", "label", "metric", "margin", "latency_budget_ms", "smoke"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(
                f"unknown gate settings {unknown}; expected some of {sorted(known)}",
                field=str(unknown[0]),
            )
        smoke_raw = data.get("smoke") or ()
        if isinstance(smoke_raw, str | Path):
            smoke = load_smoke(smoke_raw)
        elif isinstance(smoke_raw, list | tuple):
            smoke = tuple(
                c if isinstance(c, SmokeCase) else SmokeCase.from_dict(c) for c in smoke_raw
            )
        else:
            raise InvalidInput("smoke must be a list of cases or a file path", field="smoke")
        holdout = data.get("holdout")
        return cls(
            holdout=str(holdout) if isinstance(holdout, Path) else holdout,
            label=data.get("label"),
            metric=data.get("metric", "roc_auc"),
            margin=data.get("margin", 0.0),
            latency_budget_ms=data.get("latency_budget_ms"),
            smoke=smoke,
        )


# -- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateReport:
    """All checks of one gate run: ``passed`` only when every check passed."""

    candidate: str
    champion: str | None
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        champion = data.get("champion")
        return cls(
            candidate=str(data["candidate"]),
            champion=None if champion is None else str(champion),
            checks=tuple(Check.from_dict(c) for c in data.get("checks", ())),
        )


# -- running -------------------------------------------------------------------------------


def run_gates(
    candidate: GateModel,
    champion: GateModel | None,
    config: GateConfig,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> GateReport:
    """Run the configured checks of ``candidate`` against ``champion`` (None: no champion)."""
    checks: list[Check] = [_guard("signature", lambda: signature_check(candidate, champion))]
    frame: pd.DataFrame | None = None
    frame_error: str | None = None
    if config.holdout is not None:
        try:
            frame = load_frame(config.holdout)
        except Exception as exc:
            frame_error = describe(exc)
    if config.holdout is not None and config.label is not None:
        label = config.label
        checks.append(
            _guard(
                "holdout",
                lambda: holdout_check(candidate, champion, config, frame, label),
                frame_error,
            )
        )
    if config.latency_budget_ms is not None:
        budget = config.latency_budget_ms
        checks.append(
            _guard(
                "latency",
                lambda: latency_check(candidate, config, frame, budget, clock),
                frame_error,
            )
        )
    if config.smoke:
        checks.append(_guard("smoke", lambda: smoke_check(candidate, config.smoke)))
    return GateReport(
        candidate=_ref(candidate),
        champion=None if champion is None else _ref(champion),
        checks=tuple(checks),
    )


def _ref(model: GateModel) -> str:
    return f"{model.version.model}/{model.version.version}"


def _guard(name: str, run: Callable[[], Check], setup_error: str | None = None) -> Check:
    """Run one check; whatever it raises becomes a failed check naming the error."""
    if setup_error is not None:
        return Check(name, False, f"cannot load the holdout: {setup_error}", {"error": setup_error})
    try:
        return run()
    except Exception as exc:  # a gate reports model and data problems, it never raises them
        error = describe(exc)
        return Check(name, False, f"error: {error}", {"error": error})
