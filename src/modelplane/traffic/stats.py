"""The statistics of an experiment report: tests, intervals, sample-ratio mismatch, power.

Everything works from counts or summary statistics (mean, sample variance, n), so that serving
replicas can aggregate sums and sums of squares through the database and the report never needs
the raw observations. Differences are always ``b - a``.

* :func:`two_proportion_ztest` — rates (conversion, error rate): pooled z-test, unpooled CI.
* :func:`welch_ttest` — means (latency, reward): Welch's t-test, Welch–Satterthwaite df.
* :func:`proportion_ci` (Wilson) and :func:`mean_ci` (t) — one variant's interval.
* :func:`sample_ratio_mismatch` — chi-square of observed counts vs the configured split.
* :func:`min_sample_size_proportions` / :func:`min_sample_size_means` — per-arm sample size.
* :func:`decide` — never calls a winner before the minimum sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelplane.errors import InvalidInput


def _scipy() -> Any:
    """``scipy.stats``, imported on first use: it costs ~0.8 s and ~40 MiB, and every process
    that imports delivery (``modelplane serve`` included) would pay it at start-up to judge a
    rollout it may never run (issue 13: start time and memory)."""
    from scipy import stats

    return stats


__all__ = [
    "ConfidenceInterval",
    "Decision",
    "SrmResult",
    "TestResult",
    "decide",
    "mean_ci",
    "min_sample_size_means",
    "min_sample_size_proportions",
    "proportion_ci",
    "sample_ratio_mismatch",
    "summary",
    "summary_from_sums",
    "two_proportion_ztest",
    "welch_ttest",
]

Decision = Literal["insufficient_data", "b_better", "a_better", "no_difference"]


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison of variant ``a`` (baseline) and ``b`` (candidate)."""

    __test__ = False  # not a pytest test class, despite its name

    test: str
    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    alpha: float
    df: float | None
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate and its two-sided ``1 - alpha`` interval."""

    estimate: float
    low: float
    high: float
    alpha: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SrmResult:
    """A sample-ratio-mismatch check: chi-square goodness of fit of counts to the split."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    df: int
    p_value: float
    alpha: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["observed"] = list(self.observed)
        out["expected"] = list(self.expected)
        return out


# --------------------------------------------------------------------------- validation


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def _check_alpha(alpha: float, field: str = "alpha") -> float:
    if not _is_number(alpha) or not 0.0 < float(alpha) < 1.0:
        raise InvalidInput(f"{field} must be strictly between 0 and 1, got {alpha!r}", field=field)
    return float(alpha)


def _check_count(value: int, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    if value < minimum:
        raise InvalidInput(f"{field} must be at least {minimum}, got {value}", field=field)
    return int(value)


def _check_finite(value: float, field: str) -> float:
    if not _is_number(value) or not math.isfinite(float(value)):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
    return float(value)


def _check_variance(value: float, field: str) -> float:
    var = _check_finite(value, field)
    if var < 0:
        raise InvalidInput(f"{field} must be >= 0, got {value!r}", field=field)
    return var


def _check_successes(successes: int, n: int, suffix: str = "") -> tuple[int, int]:
    n = _check_count(n, f"n{suffix}", minimum=1)
    s = _check_count(successes, f"successes{suffix}", minimum=0)
    if s > n:
        raise InvalidInput(
            f"successes{suffix} ({s}) cannot exceed n{suffix} ({n})", field=f"successes{suffix}"
        )
    return s, n


# --------------------------------------------------------------------------- two-sample tests


def two_proportion_ztest(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float = 0.05
) -> TestResult:
    """Pooled two-proportion z-test of ``p_b - p_a``; the CI uses the unpooled standard error.

    When both arms are all-successes or all-failures there is no variance: ``z = 0``, ``p = 1``.
    """
    alpha = _check_alpha(alpha)
    sa, n_a = _check_successes(successes_a, n_a, "_a")
    sb, n_b = _check_successes(successes_b, n_b, "_b")
    pa, pb = sa / n_a, sb / n_b
    diff = pb - pa
    pooled = (sa + sb) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se_pooled == 0.0:
        z, p = 0.0, 1.0
    else:
        z = diff / se_pooled
        p = float(2.0 * _scipy().norm.sf(abs(z)))
    se = math.sqrt(pa * (1.0 - pa) / n_a + pb * (1.0 - pb) / n_b)
    half = float(_scipy().norm.ppf(1.0 - alpha / 2.0)) * se
    return TestResult(
        test="two_proportion_ztest",
        estimate_a=pa,
        estimate_b=pb,
        difference=diff,
        ci_low=diff - half,
        ci_high=diff + half,
        statistic=z,
        p_value=p,
        alpha=alpha,
        df=None,
        significant=p < alpha,
    )


def welch_ttest(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """Welch's t-test of ``mean_b - mean_a`` from summary statistics (sample variances, ddof=1).

    Degrees of freedom by Welch–Satterthwaite. With zero variance in both arms, equal means give
    ``t = 0, p = 1`` and different means ``t = ±inf, p = 0`` (df is then ``n_a + n_b - 2``).
    """
    alpha = _check_alpha(alpha)
    ma, mb = _check_finite(mean_a, "mean_a"), _check_finite(mean_b, "mean_b")
    va, vb = _check_variance(var_a, "var_a"), _check_variance(var_b, "var_b")
    n_a = _check_count(n_a, "n_a", minimum=2)
    n_b = _check_count(n_b, "n_b", minimum=2)
    diff = mb - ma
    qa, qb = va / n_a, vb / n_b
    se = math.sqrt(qa + qb)
    if se == 0.0:
        df = float(n_a + n_b - 2)
        if diff == 0.0:
            t, p = 0.0, 1.0
        else:
            t, p = math.copysign(math.inf, diff), 0.0
        half = 0.0
    else:
        df = (qa + qb) ** 2 / (qa**2 / (n_a - 1) + qb**2 / (n_b - 1))
        t = diff / se
        p = float(2.0 * _scipy().t.sf(abs(t), df))
        half = float(_scipy().t.ppf(1.0 - alpha / 2.0, df)) * se
    return TestResult(
        test="welch_ttest",
        estimate_a=ma,
        estimate_b=mb,
        difference=diff,
        ci_low=diff - half,
        ci_high=diff + half,
        statistic=t,
        p_value=p,
        alpha=alpha,
        df=df,
        significant=p < alpha,
    )


def summary(values: Sequence[float] | npt.NDArray[np.floating[Any]]) -> tuple[float, float, int]:
    """``(mean, sample variance with ddof=1, n)`` of ``values``; the variance of one value is 0."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInput("values must be a non-empty sequence of numbers", field="values")
    if not np.all(np.isfinite(arr)):
        raise InvalidInput("values must all be finite", field="values")
    n = int(arr.size)
    var = float(np.var(arr, ddof=1)) if n > 1 else 0.0
    return float(np.mean(arr)), var, n


def summary_from_sums(total: float, total_of_squares: float, n: int) -> tuple[float, float, int]:
    """``(mean, sample variance, n)`` from ``sum(x)`` and ``sum(x*x)`` aggregated across replicas.

    Subject to cancellation when the mean is large relative to the spread; a tiny negative
    variance from rounding is clamped to 0.
    """
    n = _check_count(n, "n", minimum=1)
    s = _check_finite(total, "total")
    ss = _check_finite(total_of_squares, "total_of_squares")
    if ss < 0:
        raise InvalidInput(f"total_of_squares must be >= 0, got {ss!r}", field="total_of_squares")
    mean = s / n
    var = max(0.0, (ss - s * s / n) / (n - 1)) if n > 1 else 0.0
    return mean, var, n


# --------------------------------------------------------------------------- one-sample intervals


def proportion_ci(successes: int, n: int, *, alpha: float = 0.05) -> ConfidenceInterval:
    """Wilson score interval of ``successes / n``; exactly 0 (or 1) at 0 (or n) successes."""
    alpha = _check_alpha(alpha)
    s, n = _check_successes(successes, n)
    p = s / n
    z = float(_scipy().norm.ppf(1.0 - alpha / 2.0))
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return ConfidenceInterval(
        estimate=p,
        low=0.0 if s == 0 else max(0.0, center - half),
        high=1.0 if s == n else min(1.0, center + half),
        alpha=alpha,
        method="wilson",
    )


def mean_ci(mean: float, var: float, n: int, *, alpha: float = 0.05) -> ConfidenceInterval:
    """Student-t interval of a mean from its sample variance (ddof=1) and ``n >= 2``."""
    alpha = _check_alpha(alpha)
    m = _check_finite(mean, "mean")
    v = _check_variance(var, "var")
    n = _check_count(n, "n", minimum=2)
    half = float(_scipy().t.ppf(1.0 - alpha / 2.0, n - 1)) * math.sqrt(v / n)
    return ConfidenceInterval(estimate=m, low=m - half, high=m + half, alpha=alpha, method="t")


# --------------------------------------------------------------------------- sample ratio mismatch


def sample_ratio_mismatch(
    observed: Sequence[int], expected_weights: Sequence[float], *, alpha: float = 0.001
) -> SrmResult:
    """Chi-square goodness of fit of ``observed`` counts to the configured split.

    ``expected_weights`` are relative (percentages or any positive scale). An arm with weight 0
    that received units is an outright mismatch (``statistic = inf, p = 0``); an arm with weight
    0 and no units does not count towards the degrees of freedom.
    """
    alpha = _check_alpha(alpha)
    if len(observed) != len(expected_weights):
        raise InvalidInput(
            f"observed and expected_weights must have one entry per variant, got "
            f"{len(observed)} and {len(expected_weights)}",
            field="expected_weights",
        )
    if len(observed) < 2:
        raise InvalidInput(
            f"a sample-ratio check needs at least 2 variants, got {len(observed)}",
            field="observed",
        )
    counts = [_check_count(c, f"observed[{i}]", minimum=0) for i, c in enumerate(observed)]
    weights = [_check_variance(w, f"expected_weights[{i}]") for i, w in enumerate(expected_weights)]
    total, weight_sum = sum(counts), math.fsum(weights)
    if total == 0:
        raise InvalidInput("observed counts are all zero", field="observed")
    if weight_sum == 0.0:
        raise InvalidInput("expected_weights are all zero", field="expected_weights")
    expected = tuple(total * w / weight_sum for w in weights)
    active = [(o, e) for o, e in zip(counts, expected, strict=True) if e > 0.0]
    df = len(active) - 1
    if any(o > 0 and e == 0.0 for o, e in zip(counts, expected, strict=True)):
        statistic, p = math.inf, 0.0
    else:
        statistic = math.fsum((o - e) ** 2 / e for o, e in active)
        p = float(_scipy().chi2.sf(statistic, df)) if df > 0 else 1.0
    return SrmResult(
        observed=tuple(counts),
        expected=expected,
        statistic=statistic,
        df=df,
        p_value=p,
        alpha=alpha,
        mismatch=p < alpha,
    )


# --------------------------------------------------------------------------- power


def _z_quantiles(alpha: float, power: float) -> tuple[float, float]:
    """``(z_{1-alpha/2}, z_{power})``."""
    alpha = _check_alpha(alpha)
    power = _check_alpha(power, "power")
    return float(_scipy().norm.ppf(1.0 - alpha / 2.0)), float(_scipy().norm.ppf(power))


def _ceil(x: float) -> int:
    """Ceiling that ignores floating-point dust above an integer (15.000000000001 -> 15)."""
    return max(1, math.ceil(x - 1e-9))


def min_sample_size_proportions(
    baseline_rate: float, mde: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm to detect ``baseline_rate -> baseline_rate + mde`` (absolute, two-sided).

    ``n = (z_{1-a/2} sqrt(2 p̄ q̄) + z_{power} sqrt(p1 q1 + p2 q2))² / mde²``, ``p̄`` the mean of
    the two rates (Fleiss, without continuity correction).
    """
    p1 = _check_finite(baseline_rate, "baseline_rate")
    if not 0.0 < p1 < 1.0:
        raise InvalidInput(
            f"baseline_rate must be strictly between 0 and 1, got {baseline_rate!r}",
            field="baseline_rate",
        )
    d = _check_finite(mde, "mde")
    if d <= 0.0:
        raise InvalidInput(f"mde must be > 0, got {mde!r}", field="mde")
    p2 = p1 + d
    if p2 >= 1.0:
        raise InvalidInput(f"baseline_rate + mde must be below 1, got {p2:g}", field="mde")
    z_a, z_b = _z_quantiles(alpha, power)
    p_bar = (p1 + p2) / 2.0
    root = z_a * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_b * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return _ceil(root * root / (d * d))


def min_sample_size_means(
    std: float, mde: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm to detect a shift ``mde`` in a mean with standard deviation ``std``.

    ``n = 2 (z_{1-a/2} + z_{power})² std² / mde²`` (two-sided, equal arms).
    """
    sd = _check_finite(std, "std")
    if sd <= 0.0:
        raise InvalidInput(f"std must be > 0, got {std!r}", field="std")
    d = _check_finite(mde, "mde")
    if d <= 0.0:
        raise InvalidInput(f"mde must be > 0, got {mde!r}", field="mde")
    z_a, z_b = _z_quantiles(alpha, power)
    return _ceil(2.0 * (z_a + z_b) ** 2 * sd * sd / (d * d))


# --------------------------------------------------------------------------- decision


def decide(
    result: TestResult, n_a: int, n_b: int, min_n: int, *, higher_is_better: bool = True
) -> Decision:
    """The verdict of ``result``; ``"insufficient_data"`` while either arm has fewer than ``min_n``.

    With enough data: ``"no_difference"`` unless ``p < alpha``; otherwise the arm whose metric is
    better — higher by default, lower with ``higher_is_better=False`` (error rate, latency).
    """
    n_a = _check_count(n_a, "n_a", minimum=0)
    n_b = _check_count(n_b, "n_b", minimum=0)
    min_n = _check_count(min_n, "min_n", minimum=1)
    if n_a < min_n or n_b < min_n:
        return "insufficient_data"
    if not result.p_value < result.alpha or result.difference == 0.0:
        return "no_difference"
    b_higher = result.difference > 0.0
    return "b_better" if b_higher == higher_is_better else "a_better"
