"""What a release gate run is configured with: the holdout and its metric, the latency budget,
the smoke cases (:func:`load_smoke` reads them from JSON). Validated when built, so a bad config
is one ``InvalidInput`` before any model is loaded. Read by :mod:`.gates` (which runs the
checks) and :mod:`.gate_checks` (the checks), neither importing the other for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.errors import InvalidInput

__all__ = ["METRICS", "GateConfig", "SmokeCase", "load_smoke"]

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
