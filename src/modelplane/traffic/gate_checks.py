"""The release gates' checks, one function each: ``signature``, ``holdout``, ``latency``, ``smoke``.

Each takes the loaded models (and the :class:`~modelplane.traffic.gate_config.GateConfig`'s settings
it needs) and returns a :class:`Check`; :func:`modelplane.traffic.gates.run_gates` runs them in
order and turns whatever one raises into a failed check. What each verifies is told in
:mod:`modelplane.traffic.gates`' docstring. Models are taken structurally (:class:`GateModel`),
so no other capability is imported.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelplane.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from modelplane.traffic.gate_config import GateConfig, SmokeCase

__all__ = [
    "HIGHER_IS_BETTER",
    "HOLDOUT_SUFFIXES",
    "LATENCY_CALLS",
    "LATENCY_WARMUP",
    "Check",
    "GateModel",
    "describe",
    "holdout_check",
    "latency_check",
    "load_frame",
    "signature_check",
    "smoke_check",
]

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


# -- a check's outcome ---------------------------------------------------------------------


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


def describe(exc: BaseException) -> str:
    """An error as a failed check names it: its type and its message."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"


# -- 1. signature --------------------------------------------------------------------------


def signature_check(candidate: GateModel, champion: GateModel | None) -> Check:
    """Every champion input in the candidate, same dtype, a shape that accepts it; none new."""
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


def load_frame(path: str) -> pd.DataFrame:
    """The holdout file (CSV or Parquet, by suffix); an empty one is refused."""
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


def holdout_check(
    candidate: GateModel,
    champion: GateModel | None,
    config: GateConfig,
    frame: pd.DataFrame | None,
    label: str,
) -> Check:
    """The configured metric on the holdout, not worse than the champion's by more than margin."""
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


def latency_check(
    candidate: GateModel,
    config: GateConfig,
    frame: pd.DataFrame | None,
    budget: float,
    clock: Callable[[], float],
) -> Check:
    """p95 of single-row predictions (holdout rows, else smoke inputs) within the budget."""
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


def smoke_check(model: GateModel, cases: tuple[SmokeCase, ...]) -> Check:
    """Each smoke case's prediction equals its ``expect`` or lies within ``min``/``max``."""
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
            result = {"case": index, "error": describe(exc)}
            reasons = [describe(exc)]
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
