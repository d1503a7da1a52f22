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

Pure: no database, no CLI. A check that raises (a bad file, a model error) is a failed check
with the error in its detail; :func:`run_gates` raises only `InvalidInput` for a bad config.
Models are taken structurally (:class:`GateModel`: ``predict``, ``predict_proba``,
``signature``, ``runtime.has_proba``, ``version``), so this module imports no other capability.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelplane.errors import InvalidInput

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
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "f1", "average_precision"})
LATENCY_WARMUP = 5
#: What a holdout file may be, by suffix, and the reader each suffix takes.
HOLDOUT_SUFFIXES = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
LATENCY_CALLS = 50


# -- what a model must offer ---------------------------------------------------------------


class _Spec(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


class _Signature(Protocol):
    @property
    def inputs(self) -> Sequence[_Spec]: ...
    @property
    def is_columnar(self) -> bool: ...


class _Runtime(Protocol):
    @property
    def has_proba(self) -> bool: ...


class _Version(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...


class GateModel(Protocol):
    """What the gates need of a model: ``modelplane.client.LoadedModel`` fits."""

    @property
    def version(self) -> _Version: ...
    @property
    def signature(self) -> _Signature | None: ...
    @property
    def runtime(self) -> _Runtime: ...
    def predict(self, batch: Any) -> np.ndarray[Any, Any]: ...
    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]: ...


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
class Check:
    """One gate's outcome; ``data`` is JSON-safe (numbers, strings, lists)."""

    name: str
    passed: bool
    detail: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "data": self.data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            detail=str(data["detail"]),
            data=dict(data.get("data") or {}),
        )


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
    checks: list[Check] = [_guard("signature", lambda: _signature_check(candidate, champion))]
    frame: pd.DataFrame | None = None
    frame_error: str | None = None
    if config.holdout is not None:
        try:
            frame = _load_frame(config.holdout)
        except Exception as exc:
            frame_error = _describe(exc)
    if config.holdout is not None and config.label is not None:
        label = config.label
        checks.append(
            _guard(
                "holdout",
                lambda: _holdout_check(candidate, champion, config, frame, label),
                frame_error,
            )
        )
    if config.latency_budget_ms is not None:
        budget = config.latency_budget_ms
        checks.append(
            _guard(
                "latency",
                lambda: _latency_check(candidate, config, frame, budget, clock),
                frame_error,
            )
        )
    if config.smoke:
        checks.append(_guard("smoke", lambda: _smoke_check(candidate, config.smoke)))
    return GateReport(
        candidate=_ref(candidate),
        champion=None if champion is None else _ref(champion),
        checks=tuple(checks),
    )


def _ref(model: GateModel) -> str:
    return f"{model.version.model}/{model.version.version}"


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"


def _guard(name: str, run: Callable[[], Check], setup_error: str | None = None) -> Check:
    """Run one check; whatever it raises becomes a failed check naming the error."""
    if setup_error is not None:
        return Check(name, False, f"cannot load the holdout: {setup_error}", {"error": setup_error})
    try:
        return run()
    except Exception as exc:  # a gate reports model and data problems, it never raises them
        error = _describe(exc)
        return Check(name, False, f"error: {error}", {"error": error})


# -- 1. signature --------------------------------------------------------------------------


def _signature_check(candidate: GateModel, champion: GateModel | None) -> Check:
    if champion is None:
        return Check("signature", True, "skipped: no champion to compare with", {"skipped": True})
    missing = [
        who for who, m in (("candidate", candidate), ("champion", champion)) if m.signature is None
    ]
    if missing:
        return Check(
            "signature",
            True,
            f"skipped: the {' and the '.join(missing)} has no signature",
            {"skipped": True},
        )
    new, old = candidate.signature, champion.signature
    assert new is not None
    assert old is not None
    ours = {s.name: s for s in new.inputs}
    theirs = {s.name: s for s in old.inputs}
    problems: list[str] = []
    for name, spec in theirs.items():
        got = ours.get(name)
        if got is None:
            problems.append(f"input {name!r} of the champion is missing")
        elif got.dtype != spec.dtype:
            problems.append(f"input {name!r}: dtype {got.dtype}, the champion's {spec.dtype}")
        elif not _shape_accepts(got.shape, spec.shape):
            problems.append(
                f"input {name!r}: shape {list(got.shape)} does not accept the champion's "
                f"{list(spec.shape)}"
            )
    problems.extend(
        f"input {name!r} is new (the champion does not take it)"
        for name in ours
        if name not in theirs
    )
    data = {"problems": problems, "inputs": sorted(ours)}
    if problems:
        return Check(
            "signature", False, "incompatible with the champion: " + "; ".join(problems), data
        )
    return Check("signature", True, f"compatible with the champion ({len(ours)} inputs)", data)


def _shape_accepts(candidate: tuple[int, ...], champion: tuple[int, ...]) -> bool:
    """Whether every input of ``champion``'s shape fits ``candidate``'s (-1: any size)."""
    return len(candidate) == len(champion) and all(
        c in (-1, h) for c, h in zip(candidate, champion, strict=True)
    )


# -- 2. holdout ----------------------------------------------------------------------------


def _load_frame(path: str) -> pd.DataFrame:
    import pandas as pd

    suffix = Path(path).suffix.lower()
    reader = HOLDOUT_SUFFIXES.get(suffix)
    if reader == "csv":
        frame = pd.read_csv(path)
    elif reader == "parquet":
        frame = pd.read_parquet(path)
    else:
        raise InvalidInput(
            f"holdout {path}: expected a .csv or .parquet file, got {suffix or 'no suffix'!r}",
            field="holdout",
        )
    if frame.empty:
        raise InvalidInput(f"holdout {path} has no rows", field="holdout")
    return frame


def _features(frame: pd.DataFrame, label: str | None, model: GateModel) -> Any:
    """What ``model`` is given: its signature's columns, or the non-label columns as a matrix."""
    rest = frame.drop(columns=[label]) if label is not None and label in frame else frame
    signature = model.signature
    if signature is not None and signature.is_columnar:
        names = [s.name for s in signature.inputs]
        absent = [n for n in names if n not in rest.columns]
        if absent:
            raise InvalidInput(f"the holdout lacks the model's columns {absent}", field="holdout")
        return rest[names]
    return rest.to_numpy()


def _flat(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.asarray(array)
    return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out


def _score(model: GateModel, X: Any, y: np.ndarray[Any, Any], metric: str) -> float:
    from sklearn import metrics as m

    if metric in ("roc_auc", "average_precision"):
        if model.runtime.has_proba:
            proba = np.asarray(model.predict_proba(X))
            if proba.ndim == 2 and proba.shape[1] > 2:
                if metric == "average_precision":
                    raise InvalidInput("average_precision needs a binary label", field="metric")
                return float(m.roc_auc_score(y, proba, multi_class="ovr"))
            scores = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else _flat(proba)
        else:
            scores = _flat(model.predict(X))
        if metric == "roc_auc":
            return float(m.roc_auc_score(y, scores))
        return float(m.average_precision_score(y, scores))
    predictions = _flat(model.predict(X))
    if metric == "accuracy":
        return float(m.accuracy_score(y, predictions))
    if metric == "f1":
        average = "binary" if len(np.unique(y)) <= 2 else "macro"
        return float(m.f1_score(y, predictions, average=average))
    if metric == "rmse":
        return float(math.sqrt(m.mean_squared_error(y, predictions)))
    return float(m.mean_absolute_error(y, predictions))


def _holdout_check(
    candidate: GateModel,
    champion: GateModel | None,
    config: GateConfig,
    frame: pd.DataFrame | None,
    label: str,
) -> Check:
    assert frame is not None
    if label not in frame.columns:
        raise InvalidInput(f"the holdout has no label column {label!r}", field="label")
    y = frame[label].to_numpy()
    metric = config.metric
    value = _score(candidate, _features(frame, label, candidate), y, metric)
    data: dict[str, Any] = {
        "metric": metric,
        "rows": len(frame),
        "candidate": value,
        "champion": None,
        "margin": config.margin,
    }
    if not math.isfinite(value):
        return Check("holdout", False, f"{metric} of the candidate is not a number", data)
    if champion is None:
        return Check(
            "holdout", True, f"{metric} {value:.4f} on {len(frame)} rows (no champion)", data
        )
    baseline = _score(champion, _features(frame, label, champion), y, metric)
    data["champion"] = baseline
    if metric in HIGHER_IS_BETTER:
        threshold = baseline - config.margin
        passed = value >= threshold
        relation = "at least"
    else:
        threshold = baseline + config.margin
        passed = value <= threshold
        relation = "at most"
    data["threshold"] = threshold
    verdict = "" if passed else "worse than allowed: "
    return Check(
        "holdout",
        bool(passed),
        f"{verdict}{metric} {value:.4f} vs champion {baseline:.4f} "
        f"(must be {relation} {threshold:.4f}, margin {config.margin})",
        data,
    )


# -- 3. latency ----------------------------------------------------------------------------


@contextlib.contextmanager
def _one_native_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # comes with scikit-learn; without it there is nothing to hold
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _latency_check(
    candidate: GateModel,
    config: GateConfig,
    frame: pd.DataFrame | None,
    budget: float,
    clock: Callable[[], float],
) -> Check:
    if frame is not None:
        X = _features(frame, config.label, candidate)
        rows: list[Any] = [
            X.iloc[[i]] if hasattr(X, "iloc") else X[i : i + 1]
            for i in range(min(len(X), LATENCY_CALLS))
        ]
        source = "holdout rows"
    elif config.smoke:
        rows = [_smoke_batch(candidate, case) for case in config.smoke]
        source = "smoke inputs"
    else:
        return Check(
            "latency",
            False,
            "nothing to time: configure a holdout file or smoke inputs",
            {"budget_ms": budget},
        )
    timings: list[float] = []
    # Timed as `modelplane serve` runs a prediction: native thread pools (OpenMP, BLAS) held
    # to one thread, so a busy machine's spinning threads do not pass for the model's latency.
    with _one_native_thread():
        for i in range(LATENCY_WARMUP):
            candidate.predict(rows[i % len(rows)])
        for i in range(LATENCY_CALLS):
            row = rows[i % len(rows)]
            start = clock()
            candidate.predict(row)
            timings.append((clock() - start) * 1000.0)
    p95 = float(np.percentile(timings, 95))
    p50 = float(np.percentile(timings, 50))
    data = {
        "p95_ms": p95,
        "p50_ms": p50,
        "budget_ms": budget,
        "calls": LATENCY_CALLS,
        "source": source,
    }
    passed = p95 <= budget
    verdict = "within" if passed else "over"
    return Check(
        "latency",
        passed,
        f"p95 {p95:.3f} ms {verdict} the {budget} ms budget "
        f"({LATENCY_CALLS} single-row calls on {source})",
        data,
    )


# -- 4. smoke ------------------------------------------------------------------------------


def _smoke_batch(model: GateModel, case: SmokeCase) -> Any:
    """One row: a record dict as a one-row DataFrame, a list as a 1 x n array (or, for a
    columnar signature, as the record of its columns in order)."""
    import pandas as pd

    value = case.input
    signature = model.signature
    if isinstance(value, list) and signature is not None and signature.is_columnar:
        names = [s.name for s in signature.inputs]
        if len(names) != len(value):
            raise InvalidInput(
                f"a list input needs {len(names)} values ({names}), got {len(value)}",
                field="input",
            )
        value = dict(zip(names, value, strict=True))
    if isinstance(value, dict):
        return pd.DataFrame([value])
    return np.asarray([value])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _equal(got: Any, want: Any) -> bool:
    if (
        isinstance(got, float | int)
        and isinstance(want, float | int)
        and not (isinstance(got, bool) or isinstance(want, bool))
    ):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return bool(got == want)


def _smoke_check(model: GateModel, cases: tuple[SmokeCase, ...]) -> Check:
    failures: list[str] = []
    results: list[dict[str, Any]] = []
    for index, case in enumerate(cases):
        try:
            batch = _smoke_batch(model, case)
            prediction = _plain(_flat(model.predict(batch))[0])
            result: dict[str, Any] = {"case": index, "prediction": _jsonable(prediction)}
            reasons: list[str] = []
            if case.expect is not None and not _equal(prediction, case.expect):
                reasons.append(f"predicted {prediction!r}, expected {case.expect!r}")
            if case.min is not None or case.max is not None:
                if model.runtime.has_proba:
                    proba = np.asarray(model.predict_proba(batch))
                    score = float(proba[0, 1] if proba.ndim == 2 else proba[0])
                else:
                    score = float(prediction)
                result["score"] = score
                if case.min is not None and score < case.min:
                    reasons.append(f"score {score:.4f} below min {case.min}")
                if case.max is not None and score > case.max:
                    reasons.append(f"score {score:.4f} above max {case.max}")
        except Exception as exc:  # one broken case fails the check, the others still run
            result = {"case": index, "error": _describe(exc)}
            reasons = [_describe(exc)]
        result["passed"] = not reasons
        results.append(result)
        if reasons:
            failures.append(f"case {index}: {'; '.join(reasons)}")
    data = {"cases": results}
    if failures:
        return Check(
            "smoke",
            False,
            f"{len(failures)} of {len(cases)} smoke cases failed: " + " | ".join(failures),
            data,
        )
    return Check("smoke", True, f"all {len(cases)} smoke cases passed", data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
