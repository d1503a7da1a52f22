"""The numbers of an experiment report, arm by arm: what each variant did, how it compares.

The parts that :func:`~modelplane.traffic.report.experiment_report` assembles:
:func:`variant_report` (requests, errors, latency, the metric and its confidence interval, a
shadow's agreement), :func:`min_sample_size` (the power calculation), :func:`compare` (one
variant against the control, with its verdict), :func:`srm_check` (the sample-ratio check) and
:func:`conclusion` (the winner, if any). Pure, no I/O; the statistical tests themselves are
:mod:`modelplane.traffic.stats`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

__all__ = [
    "SRM_ALPHA",
    "Comparison",
    "Outcomes",
    "ShadowSummary",
    "VariantReport",
    "compare",
    "conclusion",
    "min_sample_size",
    "srm_check",
    "variant_report",
]

#: Significance level of the sample-ratio-mismatch check (a mismatch is a broken experiment).
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Outcomes:
    """Sufficient statistics of one arm's outcomes."""

    n: int
    total: float
    total_sq: float
    binary: bool

    @classmethod
    def of_values(cls, values: Sequence[float]) -> Outcomes:
        finite = [float(v) for v in values if math.isfinite(float(v))]
        return cls(
            n=len(finite),
            total=math.fsum(finite),
            total_sq=math.fsum(v * v for v in finite),
            binary=all(v in (0.0, 1.0) for v in finite),
        )

    @classmethod
    def of_counters(cls, c: Counters) -> Outcomes:
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


def variant_report(
    name: str,
    version: int,
    weight: float,
    c: Counters,
    o: Outcomes,
    binary: bool,
    experiment: Experiment,
) -> VariantReport:
    """One variant's numbers: traffic, latency, the metric with its interval, a shadow's summary."""
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


def min_sample_size(
    experiment: Experiment, stats: Mapping[str, Outcomes], binary: bool
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


def compare(
    control: str,
    variant: str,
    a: Outcomes,
    b: Outcomes,
    binary: bool,
    min_n: int | None,
    experiment: Experiment,
) -> Comparison:
    """One variant against the control: the test that fits the outcomes, and its verdict."""
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


def srm_check(
    experiment: Experiment, per_arm: Mapping[str, Counters]
) -> tuple[SrmResult | None, str]:
    """The sample-ratio check of the request counts against the weights, and its note."""
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


def conclusion(
    experiment: Experiment,
    variants: Sequence[VariantReport],
    comparisons: Sequence[Comparison],
    min_n: int | None,
) -> tuple[str | None, str]:
    """The winner (None: none yet, or keep the control) and the summary line."""
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
