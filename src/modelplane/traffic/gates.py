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

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.traffic.gate_checks import HOLDOUT_SUFFIXES as HOLDOUT_SUFFIXES
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
from modelplane.traffic.gate_config import METRICS as METRICS
from modelplane.traffic.gate_config import GateConfig as GateConfig
from modelplane.traffic.gate_config import SmokeCase as SmokeCase
from modelplane.traffic.gate_config import load_smoke as load_smoke

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HOLDOUT_SUFFIXES",
    "METRICS",
    "Check",
    "GateConfig",
    "GateModel",
    "GateReport",
    "SmokeCase",
    "load_smoke",
    "run_gates",
]


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
