"""The report of an experiment: per-variant numbers, comparisons with the control, a verdict.

:func:`experiment_report` is pure: it takes the experiment, its live counters per arm and
(optionally) the outcome values per arm, and computes everything with :mod:`.stats`:

* per variant: requests, errors, error rate, latency p50/p99, outcomes, the metric with its
  confidence interval (Wilson for 0/1 outcomes, Student-t otherwise);
* per non-control variant against the control (the first arm): the two-proportion z-test when
  every outcome is 0 or 1, else Welch's t-test — difference ``variant - control`` and p-value;
* the minimum sample per arm from a power calculation (``mde``, ``alpha``, ``power`` of the
  experiment): for rates from the control's rate (0.5 when it is unknown, 0 or 1), for means
  from the pooled standard deviation;
* a verdict per comparison (:func:`.stats.decide`): never a winner before every arm has the
  minimum sample;
* a sample-ratio-mismatch check of the request counts against the configured weights (not for
  bandits: their weights move by design);
* for a shadow: compared calls, agreement rate, mean absolute difference, errors, dropped copies
  and the shadow's latency.

:func:`match_feedback` gathers the outcome values from ``POST /feedback`` rows: those that name
the experiment's subject count for their variant; those whose replica did not know the request
are joined to the prediction log by request id. Feedback for a request id that neither a replica
nor the prediction log knows is never mixed into an arm: the report counts it apart
(``feedback.unmatched``) beside the rows matched to an arm (``feedback.matched``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters
from modelplane.traffic.stats import (
    ConfidenceInterval,
    Decision,
    SrmResult,
    TestResult,
    decide,
    mean_ci,
    min_sample_size_means,
    min_sample_size_proportions,
    proportion_ci,
    sample_ratio_mismatch,
    summary_from_sums,
    two_proportion_ztest,
    welch_ttest,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelplane.traffic.views import TrafficViews

__all__ = [
    "Comparison",
    "ExperimentReport",
    "FeedbackOutcomes",
    "ShadowSummary",
    "VariantReport",
    "experiment_report",
    "load_outcomes",
    "match_feedback",
    "outcome_of",
    "report_of",
]

#: Significance level of the sample-ratio-mismatch check (a mismatch is a broken experiment).
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class _Outcomes:
    """Sufficient statistics of one arm's outcomes."""

    n: int
    total: float
    total_sq: float
    binary: bool

    @classmethod
    def of_values(cls, values: Sequence[float]) -> _Outcomes:
        finite = [float(v) for v in values if math.isfinite(float(v))]
        return cls(
            n=len(finite),
            total=math.fsum(finite),
            total_sq=math.fsum(v * v for v in finite),
            binary=all(v in (0.0, 1.0) for v in finite),
        )

    @classmethod
    def of_counters(cls, c: Counters) -> _Outcomes:
        # 0/1 values are the only ones with Σx² = Σx among whole-number sums
        binary = c.outcome_sumsq == c.outcome_sum and float(c.outcome_sum).is_integer()
        return cls(c.outcome_n, float(c.outcome_sum), float(c.outcome_sumsq), binary)

    @property
    def successes(self) -> int:
        return max(0, min(self.n, round(self.total)))

    def mean_var(self) -> tuple[float, float]:
        mean, var, _ = summary_from_sums(self.total, self.total_sq, self.n)
        return mean, var


@dataclass(frozen=True)
class ShadowSummary:
    """How the shadow's answers compared with the primary's."""

    compared: int
    agreement_rate: float | None
    mean_abs_diff: float | None
    errors: int
    dropped: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agreement_rate": self.agreement_rate,
            "mean_abs_diff": self.mean_abs_diff,
            "errors": self.errors,
            "dropped": self.dropped,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
        }


@dataclass(frozen=True)
class VariantReport:
    name: str
    version: int
    weight: float
    requests: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    outcome_n: int
    value: float | None
    ci: ConfidenceInterval | None
    shadow: ShadowSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "weight": self.weight,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "outcome_n": self.outcome_n,
            "value": self.value,
            "ci": self.ci.to_dict() if self.ci is not None else None,
            "shadow": self.shadow.to_dict() if self.shadow is not None else None,
        }


@dataclass(frozen=True)
class Comparison:
    """One variant against the control: the test, and what it allows us to say."""

    variant: str
    control: str
    test: str | None
    result: TestResult | None
    n_control: int
    n_variant: int
    min_n: int | None
    decision: Decision
    verdict: str

    @property
    def difference(self) -> float | None:
        return self.result.difference if self.result is not None else None

    @property
    def p_value(self) -> float | None:
        return self.result.p_value if self.result is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "control": self.control,
            "test": self.test,
            "difference": self.difference,
            "p_value": self.p_value,
            "result": self.result.to_dict() if self.result is not None else None,
            "n_control": self.n_control,
            "n_variant": self.n_variant,
            "min_n": self.min_n,
            "decision": self.decision,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    model: str
    kind: str
    status: str
    metric: str
    bandit: bool
    mde: float
    alpha: float
    power: float
    variants: tuple[VariantReport, ...]
    comparisons: tuple[Comparison, ...]
    min_sample_size: int | None
    srm: SrmResult | None
    srm_note: str
    winner: str | None
    summary: str
    #: feedback rows matched to an arm, and rows of request ids no replica or log knows
    #: (None when the report was built from the counters alone)
    feedback_matched: int | None = None
    feedback_unmatched: int | None = None

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def sufficient(self) -> bool:
        """Every arm has reached the minimum sample (a shadow has no such thing)."""
        return bool(self.comparisons) and all(
            c.decision != "insufficient_data" for c in self.comparisons
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "model": self.model,
            "kind": self.kind,
            "status": self.status,
            "metric": self.metric,
            "bandit": self.bandit,
            "mde": self.mde,
            "alpha": self.alpha,
            "power": self.power,
            "control": self.control,
            "variants": [v.to_dict() for v in self.variants],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "min_sample_size": self.min_sample_size,
            "sufficient": self.sufficient,
            "srm": self.srm.to_dict() if self.srm is not None else None,
            "srm_note": self.srm_note,
            "winner": self.winner,
            "summary": self.summary,
            "feedback": (
                None
                if self.feedback_matched is None
                else {"matched": self.feedback_matched, "unmatched": self.feedback_unmatched}
            ),
        }


# --------------------------------------------------------------------------- the report


def experiment_report(
    experiment: Experiment,
    counters: Mapping[str, Counters],
    outcomes: Mapping[str, Sequence[float]] | None = None,
    *,
    feedback: tuple[int, int] | None = None,
) -> ExperimentReport:
    """The report of ``experiment`` from its counters and outcome values (see the module doc).

    ``outcomes`` maps arm name → outcome values (from :func:`load_outcomes`); without it the
    outcome sums the replicas keep in the counters are used. ``feedback`` is (matched,
    unmatched) feedback rows (:class:`FeedbackOutcomes`), reported as they are.
    """
    arms = experiment.arms
    per_arm = {a.name: counters.get(a.name, Counters()) for a in arms}
    stats: dict[str, _Outcomes] = {}
    for arm in arms:
        if outcomes is not None:
            stats[arm.name] = _Outcomes.of_values(list(outcomes.get(arm.name, ())))
        else:
            stats[arm.name] = _Outcomes.of_counters(per_arm[arm.name])
    binary = experiment.metric == "accuracy" or all(s.binary for s in stats.values())

    variants = tuple(
        _variant(a.name, a.version, a.weight, per_arm[a.name], stats[a.name], binary, experiment)
        for a in arms
    )

    def report(
        comparisons: tuple[Comparison, ...],
        min_n: int | None,
        srm: SrmResult | None,
        srm_note: str,
        winner: str | None,
        text: str,
    ) -> ExperimentReport:
        return ExperimentReport(
            experiment=experiment.name,
            model=experiment.model,
            kind=experiment.kind,
            status=experiment.status,
            metric=experiment.metric,
            bandit=experiment.bandit,
            mde=experiment.mde,
            alpha=experiment.alpha,
            power=experiment.power,
            variants=variants,
            comparisons=comparisons,
            min_sample_size=min_n,
            srm=srm,
            srm_note=srm_note,
            winner=winner,
            summary=text,
            feedback_matched=feedback[0] if feedback is not None else None,
            feedback_unmatched=feedback[1] if feedback is not None else None,
        )

    if experiment.kind == "shadow":
        shadow = variants[0].shadow
        compared = shadow.compared if shadow is not None else 0
        agreement = shadow.agreement_rate if shadow is not None else None
        text = f"shadow of {experiment.model}/{variants[0].version}: " + (
            f"{agreement:.1%} agreement over {compared} compared requests"
            if agreement is not None
            else "no request compared yet"
        )
        return report((), None, None, "not applicable to a shadow", None, text)

    control = arms[0].name
    min_n = _min_sample_size(experiment, stats, binary)
    comparisons = tuple(
        _compare(control, arm.name, stats[control], stats[arm.name], binary, min_n, experiment)
        for arm in arms[1:]
    )
    srm, srm_note = _srm(experiment, per_arm)
    winner, text = _conclusion(experiment, variants, comparisons, min_n)
    if srm is not None and srm.mismatch:
        text += (
            f"; WARNING: sample ratio mismatch (p={srm.p_value:.2g}): the split is not the "
            "configured one, do not trust the results"
        )
    return report(comparisons, min_n, srm, srm_note, winner, text)


def _variant(
    name: str,
    version: int,
    weight: float,
    c: Counters,
    o: _Outcomes,
    binary: bool,
    experiment: Experiment,
) -> VariantReport:
    value: float | None = None
    ci: ConfidenceInterval | None = None
    if o.n > 0:
        if binary:
            ci = proportion_ci(o.successes, o.n, alpha=experiment.alpha)
            value = ci.estimate
        else:
            mean, var = o.mean_var()
            value = mean
            if o.n >= 2:
                ci = mean_ci(mean, var, o.n, alpha=experiment.alpha)
    shadow: ShadowSummary | None = None
    if experiment.kind == "shadow":
        compared = c.shadow_compared
        shadow = ShadowSummary(
            compared=compared,
            agreement_rate=c.shadow_agree / compared if compared else None,
            # measured for numeric outputs only; labels just agree or not
            mean_abs_diff=c.shadow_absdiff / c.shadow_diffs if c.shadow_diffs else None,
            errors=c.shadow_errors,
            dropped=c.shadow_dropped,
            latency_p50_ms=c.p(0.5),
            latency_p99_ms=c.p(0.99),
        )
    return VariantReport(
        name=name,
        version=version,
        weight=weight,
        requests=c.requests,
        errors=c.errors,
        error_rate=c.error_rate,
        latency_p50_ms=c.p(0.5),
        latency_p99_ms=c.p(0.99),
        outcome_n=o.n,
        value=value,
        ci=ci,
        shadow=shadow,
    )


def _min_sample_size(
    experiment: Experiment, stats: Mapping[str, _Outcomes], binary: bool
) -> int | None:
    """Units per arm the experiment needs; None when the spread of a mean is not known yet."""
    alpha, power, mde = experiment.alpha, experiment.power, experiment.mde
    if binary:
        control = stats[experiment.arms[0].name]
        rate = control.successes / control.n if control.n else 0.5
        if not 0.0 < rate < 1.0:
            rate = 0.5
        if rate + mde >= 1.0:  # the same size detects a drop: p → p - mde ≡ (1-p) → (1-p) + mde
            rate = 1.0 - rate
        if rate + mde >= 1.0:  # an effect this large: centre it on 0.5
            rate = max(1e-6, (1.0 - min(mde, 1.0 - 2e-6)) / 2.0)
            mde = min(mde, 1.0 - 2e-6)
        return min_sample_size_proportions(rate, mde, alpha=alpha, power=power)
    dof = sum(s.n - 1 for s in stats.values() if s.n >= 2)
    if dof <= 0 or any(s.n < 2 for s in stats.values()):
        return None
    pooled = math.fsum((s.n - 1) * s.mean_var()[1] for s in stats.values() if s.n >= 2) / dof
    std = math.sqrt(pooled)
    if std == 0.0:
        return 2  # no spread at all: any difference is certain from two values an arm
    return min_sample_size_means(std, mde, alpha=alpha, power=power)


def _compare(
    control: str,
    variant: str,
    a: _Outcomes,
    b: _Outcomes,
    binary: bool,
    min_n: int | None,
    experiment: Experiment,
) -> Comparison:
    result: TestResult | None = None
    test = "two_proportion_ztest" if binary else "welch_ttest"
    if binary and a.n >= 1 and b.n >= 1:
        result = two_proportion_ztest(a.successes, a.n, b.successes, b.n, alpha=experiment.alpha)
    elif not binary and a.n >= 2 and b.n >= 2:
        mean_a, var_a = a.mean_var()
        mean_b, var_b = b.mean_var()
        result = welch_ttest(mean_a, var_a, a.n, mean_b, var_b, b.n, alpha=experiment.alpha)
    have = min(a.n, b.n)
    decision: Decision
    if result is None or min_n is None:
        decision = "insufficient_data"
        need = "?" if min_n is None else str(min_n)
        verdict = f"insufficient data: n={have} of {need}"
        if min_n is None:
            verdict += " (at least 2 outcomes per variant are needed to size the test)"
    else:
        decision = decide(result, a.n, b.n, min_n, higher_is_better=True)
        if decision == "insufficient_data":
            verdict = f"insufficient data: n={have} of {min_n}"
        elif decision == "b_better":
            verdict = f"{variant} is better than {control} (p={result.p_value:.3g})"
        elif decision == "a_better":
            verdict = f"{variant} is worse than {control} (p={result.p_value:.3g})"
        else:
            verdict = f"no significant difference (p={result.p_value:.3g})"
    return Comparison(
        variant=variant,
        control=control,
        test=test if result is not None else None,
        result=result,
        n_control=a.n,
        n_variant=b.n,
        min_n=min_n,
        decision=decision,
        verdict=verdict,
    )


def _srm(experiment: Experiment, per_arm: Mapping[str, Counters]) -> tuple[SrmResult | None, str]:
    if experiment.bandit:
        return None, "skipped: a bandit moves its weights by design"
    if len(experiment.arms) < 2:
        return None, "skipped: one variant"
    observed = [per_arm[a.name].requests for a in experiment.arms]
    if sum(observed) == 0:
        return None, "skipped: no requests yet"
    srm = sample_ratio_mismatch(observed, [a.weight for a in experiment.arms], alpha=SRM_ALPHA)
    if srm.mismatch:
        return srm, f"MISMATCH: chi-square p={srm.p_value:.2g} < {SRM_ALPHA:g}"
    return srm, f"ok: chi-square p={srm.p_value:.3g}"


def _conclusion(
    experiment: Experiment,
    variants: Sequence[VariantReport],
    comparisons: Sequence[Comparison],
    min_n: int | None,
) -> tuple[str | None, str]:
    if any(c.decision == "insufficient_data" for c in comparisons):
        have = min(v.outcome_n for v in variants)
        need = "?" if min_n is None else str(min_n)
        return None, f"no winner yet: need {need} outcomes per variant (fewest so far: {have})"
    better = [c.variant for c in comparisons if c.decision == "b_better"]
    if better:
        values = {v.name: v.value if v.value is not None else -math.inf for v in variants}
        winner = max(better, key=lambda name: values[name])
        return winner, f"winner: {winner} (significantly better than {variants[0].name})"
    if any(c.decision == "a_better" for c in comparisons):
        control = variants[0].name
        return control, f"winner: {control} (the control; every other variant is not better)"
    return None, (
        f"no significant difference at alpha={experiment.alpha:g} with the minimum sample "
        "reached; keep the control"
    )


# --------------------------------------------------------------------------- outcomes


def outcome_of(
    metric: str, prediction: Any, label: float | None, reward: float | None
) -> float | None:
    """One row's outcome: 1/0 for a correct/wrong prediction (accuracy) or the reward."""
    if metric == "reward":
        return float(reward) if reward is not None and math.isfinite(float(reward)) else None
    if label is None or prediction is None:
        return None
    while isinstance(prediction, list) and len(prediction) == 1:
        prediction = prediction[0]
    if isinstance(prediction, list | dict):
        return None  # a vector per row (probabilities): not comparable with a label
    try:
        return 1.0 if float(prediction) == float(label) else 0.0
    except (TypeError, ValueError):
        return 1.0 if str(prediction) == str(label) else 0.0


def _first_output_row0(outputs: Any) -> Any:
    if isinstance(outputs, str | bytes):
        import orjson

        outputs = orjson.loads(outputs)
    if not isinstance(outputs, dict) or not outputs:
        return None
    # the model's prediction output when the log has it (what serving scores labels with)
    first = outputs["predict"] if "predict" in outputs else next(iter(outputs.values()))
    if isinstance(first, list):
        return first[0] if first else None
    return first


def _predictions(
    frame: pd.DataFrame, request_ids: Iterable[str], experiment: str | None
) -> dict[str, tuple[str | None, Any]]:
    """request id → (variant, prediction) of the log rows of ``request_ids``.

    With ``experiment`` only the rows the server routed for that experiment count.
    """
    wanted = set(request_ids)
    if frame.empty or not wanted:
        return {}
    rows = frame[frame["request_id"].isin(wanted)]
    if experiment is not None:
        if "experiment" not in rows.columns:
            return {}
        rows = rows[rows["experiment"] == experiment]
    has_variant = "variant" in rows.columns
    out: dict[str, tuple[str | None, Any]] = {}
    for record in rows.to_dict("records"):
        variant = record.get("variant") if has_variant else None
        if not isinstance(variant, str):
            variant = None
        out[str(record["request_id"])] = (variant, _first_output_row0(record.get("outputs")))
    return out


@dataclass(frozen=True)
class FeedbackOutcomes:
    """An experiment's outcome values per arm from the stored feedback, and what is left out.

    ``matched``: feedback rows attributed to an arm of the experiment (by the replica that
    served the request, or through the prediction log). ``unmatched``: rows of request ids that
    no replica knew and the prediction log does not hold (or no log to look in) — posted for a
    request never served, or one whose log is gone; never counted for any arm. Rows of other
    experiments' or models' requests are neither.
    """

    per_arm: dict[str, list[float]]
    matched: int
    unmatched: int


def match_feedback(
    views: TrafficViews,
    experiment: Experiment,
    *,
    prediction_log: str | None = None,
    read_log: Callable[[str, str | None], pd.DataFrame] | None = None,
) -> FeedbackOutcomes:
    """Outcome values per arm of ``experiment`` from the stored feedback (see the module doc).

    ``prediction_log`` is the log's location (``settings.resolved_prediction_log``);
    ``read_log(location, model)`` reads it (default :func:`modelplane.predlog.read_log`;
    ``model`` None: every model's, read only to tell an unknown request id from another
    model's). Rows without a usable outcome (no label for accuracy, no reward, a prediction not
    comparable with a label) give no value.
    """
    arms = {a.name for a in experiment.arms}
    out: dict[str, list[float]] = {a.name: [] for a in experiment.arms}
    matched = unmatched = 0
    rows = views.store.feedback()
    direct = [r for r in rows if r.get("subject") == experiment.subject]
    loose = [r for r in rows if r.get("subject") is None]
    need_log = loose or (experiment.metric == "accuracy" and direct)
    frame = None
    if need_log and prediction_log is not None:
        if read_log is None:
            from modelplane.predlog import read_log as _read

            read_log = _read
        frame = read_log(prediction_log, experiment.model)
    direct_predictions: dict[str, tuple[str | None, Any]] = {}
    loose_predictions: dict[str, tuple[str | None, Any]] = {}
    seen: set[str] = set()
    if frame is not None:
        if experiment.metric == "accuracy":
            direct_predictions = _predictions(frame, (r["request_id"] for r in direct), None)
        loose_predictions = _predictions(frame, (r["request_id"] for r in loose), experiment.name)
        seen = _logged_ids(frame, (r["request_id"] for r in loose))
    for r in direct:
        variant = r.get("variant")
        if variant not in arms:
            unmatched += 1
            continue
        matched += 1
        prediction = direct_predictions.get(r["request_id"], (None, None))[1]
        value = outcome_of(experiment.metric, prediction, r.get("label"), r.get("reward"))
        if value is not None:
            out[variant].append(value)
    unseen: list[str] = []
    for r in loose:
        found = loose_predictions.get(r["request_id"])
        if found is None or found[0] not in arms:
            if r["request_id"] not in seen:
                unseen.append(r["request_id"])
            continue
        matched += 1
        variant_name = found[0]
        assert variant_name is not None
        value = outcome_of(experiment.metric, found[1], r.get("label"), r.get("reward"))
        if value is not None:
            out[variant_name].append(value)
    if unseen and prediction_log is not None and read_log is not None:
        # Not in this model's log: another model's request, or one nobody served.
        unseen_set = set(unseen) - _logged_ids(read_log(prediction_log, None), unseen)
        unmatched += len(unseen_set)
    else:
        unmatched += len(unseen)
    return FeedbackOutcomes(out, matched, unmatched)


def _logged_ids(frame: pd.DataFrame, request_ids: Iterable[str]) -> set[str]:
    wanted = set(request_ids)
    if frame.empty or not wanted:
        return set()
    found = frame["request_id"][frame["request_id"].isin(wanted)]
    return {str(x) for x in found}


def load_outcomes(
    views: TrafficViews,
    experiment: Experiment,
    *,
    prediction_log: str | None = None,
    read_log: Callable[[str, str | None], pd.DataFrame] | None = None,
) -> dict[str, list[float]]:
    """Outcome values per arm of ``experiment`` (:func:`match_feedback`'s ``per_arm``)."""
    return match_feedback(
        views, experiment, prediction_log=prediction_log, read_log=read_log
    ).per_arm


def report_of(
    views: TrafficViews, experiment: Experiment, *, prediction_log: str | None
) -> ExperimentReport:
    """The report of ``experiment`` from its counters and the feedback stored so far.

    Outcomes come from the feedback rows (joined with the prediction log where needed), or
    from the outcome sums the serving replicas keep in the counters when those hold more.
    """
    counters = views.experiment_counters(experiment)
    outcomes: dict[str, list[float]] | None = None
    feedback: tuple[int, int] | None = None
    if experiment.kind == "split":
        loaded = match_feedback(views, experiment, prediction_log=prediction_log)
        feedback = (loaded.matched, loaded.unmatched)
        loaded_n = sum(len(values) for values in loaded.per_arm.values())
        if loaded_n > 0 and loaded_n >= sum(c.outcome_n for c in counters.values()):
            outcomes = loaded.per_arm
    return experiment_report(experiment, counters, outcomes, feedback=feedback)
