"""Experiment statistics checked against scipy and textbook formulas on known data."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from modelplane.errors import InvalidInput
from modelplane.traffic.stats import (
    TestResult,
    decide,
    mean_ci,
    min_sample_size_means,
    min_sample_size_proportions,
    proportion_ci,
    sample_ratio_mismatch,
    summary,
    summary_from_sums,
    two_proportion_ztest,
    welch_ttest,
)

samples = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=60,
)


def _hand_z(sa: int, na: int, sb: int, nb: int) -> float:
    pa, pb = sa / na, sb / nb
    pooled = (sa + sb) / (na + nb)
    return (pb - pa) / math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))


class TestTwoProportionZTest:
    def test_known_data_matches_hand_computed_z_and_norm_p_value(self) -> None:
        result = two_proportion_ztest(200, 2_000, 250, 2_000)
        z = (0.125 - 0.10) / math.sqrt(0.1125 * 0.8875 * (2 / 2_000))
        assert result.statistic == pytest.approx(z, rel=1e-12)
        assert result.statistic == pytest.approx(2.5020, abs=1e-4)
        assert result.p_value == pytest.approx(2 * sp.norm.sf(z), rel=1e-12)
        assert result.difference == pytest.approx(0.025)
        assert result.significant

    def test_confidence_interval_uses_the_unpooled_standard_error(self) -> None:
        result = two_proportion_ztest(200, 2_000, 250, 2_000, alpha=0.1)
        se = math.sqrt(0.10 * 0.90 / 2_000 + 0.125 * 0.875 / 2_000)
        half = sp.norm.ppf(0.95) * se
        assert (result.ci_low, result.ci_high) == pytest.approx((0.025 - half, 0.025 + half))

    @given(
        st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
        st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    )
    def test_p_value_matches_norm_reference(
        self, arm_a: tuple[int, int], arm_b: tuple[int, int]
    ) -> None:
        (sa, na), (sb, nb) = arm_a, arm_b
        pooled = (sa + sb) / (na + nb)
        assume(0 < pooled < 1)
        z = _hand_z(sa, na, sb, nb)
        result = two_proportion_ztest(sa, na, sb, nb)
        assert result.statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert result.p_value == pytest.approx(2 * sp.norm.sf(abs(z)), rel=1e-9, abs=1e-300)
        assert result.ci_low <= result.difference <= result.ci_high

    def test_no_variance_gives_p_value_one(self) -> None:
        result = two_proportion_ztest(0, 100, 0, 50)
        assert (result.statistic, result.p_value) == (0.0, 1.0)

    def test_to_dict_is_plain_data(self) -> None:
        out = two_proportion_ztest(10, 100, 20, 100).to_dict()
        assert out["test"] == "two_proportion_ztest"
        assert set(out) >= {"difference", "ci_low", "ci_high", "p_value", "statistic"}

    @pytest.mark.parametrize(
        ("args", "kwargs", "field"),
        [
            ((1, 0, 1, 10), {}, "n_a"),
            ((1, 10, 1, -5), {}, "n_b"),
            ((11, 10, 1, 10), {}, "successes_a"),
            ((1, 10, -1, 10), {}, "successes_b"),
            ((1, 10, 1, 10), {"alpha": 0.0}, "alpha"),
            ((1, 10, 1, 10), {"alpha": 1.5}, "alpha"),
        ],
    )
    def test_bad_arguments_raise_invalid_input(
        self, args: tuple[int, int, int, int], kwargs: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            two_proportion_ztest(*args, **kwargs)
        assert info.value.field == field


class TestWelchTTest:
    @settings(max_examples=200)
    @given(samples, samples)
    def test_matches_scipy_ttest_ind_unequal_variance(self, a: list[float], b: list[float]) -> None:
        ma, va, na = summary(a)
        mb, vb, nb = summary(b)
        assume(va + vb > 1e-6)
        with warnings.catch_warnings():
            # scipy warns about precision when one sample is constant; the answer is still exact.
            warnings.simplefilter("ignore", RuntimeWarning)
            reference = sp.ttest_ind(a, b, equal_var=False)
        result = welch_ttest(ma, va, na, mb, vb, nb)
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)
        # scipy reports a - b; modelplane reports b - a.
        assert result.statistic == pytest.approx(-reference.statistic, rel=1e-9, abs=1e-12)
        assert result.df == pytest.approx(reference.df, rel=1e-9)

    def test_confidence_interval_matches_scipy(self) -> None:
        rng = np.random.default_rng(3)
        a, b = rng.normal(10, 2, 40), rng.normal(11, 3, 55)
        reference = sp.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
        result = welch_ttest(*summary(a), *summary(b), alpha=0.1)
        assert (result.ci_low, result.ci_high) == pytest.approx(
            (reference.low, reference.high), rel=1e-9
        )

    def test_zero_variance_equal_means_is_no_difference(self) -> None:
        result = welch_ttest(5.0, 0.0, 10, 5.0, 0.0, 10)
        assert (result.statistic, result.p_value) == (0.0, 1.0)

    def test_zero_variance_different_means_is_certain(self) -> None:
        result = welch_ttest(5.0, 0.0, 10, 6.0, 0.0, 10)
        assert result.statistic == math.inf
        assert result.p_value == 0.0

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            ((0.0, 1.0, 1, 0.0, 1.0, 10), "n_a"),
            ((0.0, -1.0, 10, 0.0, 1.0, 10), "var_a"),
            ((0.0, 1.0, 10, math.nan, 1.0, 10), "mean_b"),
        ],
    )
    def test_bad_arguments_raise_invalid_input(
        self, args: tuple[float, float, int, float, float, int], field: str
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            welch_ttest(*args)
        assert info.value.field == field


class TestSummary:
    @given(samples)
    def test_summary_matches_numpy(self, values: list[float]) -> None:
        mean, var, n = summary(values)
        assert n == len(values)
        assert mean == pytest.approx(np.mean(values), rel=1e-12, abs=1e-12)
        assert var == pytest.approx(np.var(values, ddof=1), rel=1e-12, abs=1e-12)

    def test_summary_from_sums_matches_summary(self) -> None:
        values = np.random.default_rng(4).normal(3.0, 1.5, 500)
        from_sums = summary_from_sums(float(values.sum()), float((values**2).sum()), 500)
        assert from_sums == pytest.approx(summary(values), rel=1e-9)

    def test_empty_values_are_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="non-empty"):
            summary([])


class TestIntervals:
    @given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
    def test_wilson_interval_matches_hand_formula(self, arm: tuple[int, int]) -> None:
        s, n = arm
        z = 1.959963984540054
        p = s / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        ci = proportion_ci(s, n)
        assert ci.low == pytest.approx(max(0.0, centre - half), rel=1e-9, abs=1e-12)
        assert ci.high == pytest.approx(min(1.0, centre + half), rel=1e-9, abs=1e-12)
        assert 0.0 <= ci.low <= p <= ci.high <= 1.0

    def test_wilson_interval_known_value(self) -> None:
        ci = proportion_ci(10, 100)
        assert (ci.low, ci.high) == pytest.approx((0.0552, 0.1744), abs=1e-4)

    def test_mean_interval_matches_scipy_t_interval(self) -> None:
        values = np.random.default_rng(6).normal(4.0, 2.0, 30)
        low, high = sp.t.interval(0.95, 29, loc=values.mean(), scale=sp.sem(values))
        ci = mean_ci(*summary(values))
        assert (ci.low, ci.high) == pytest.approx((low, high), rel=1e-9)

    @pytest.mark.parametrize(
        ("args", "field"), [((5, 0), "n"), ((11, 10), "successes"), ((-1, 10), "successes")]
    )
    def test_bad_proportion_arguments_raise(self, args: tuple[int, int], field: str) -> None:
        with pytest.raises(InvalidInput) as info:
            proportion_ci(*args)
        assert info.value.field == field

    def test_mean_interval_needs_two_values(self) -> None:
        with pytest.raises(InvalidInput, match="n must be at least 2"):
            mean_ci(1.0, 0.5, 1)


class TestSampleRatioMismatch:
    @given(
        st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 100)), min_size=2, max_size=6)
    )
    def test_matches_scipy_chisquare(self, arms: list[tuple[int, int]]) -> None:
        observed = [o for o, _ in arms]
        weights = [w for _, w in arms]
        assume(sum(observed) > 0)
        total = sum(observed)
        expected = [total * w / sum(weights) for w in weights]
        reference = sp.chisquare(observed, expected)
        result = sample_ratio_mismatch(observed, weights)
        assert result.statistic == pytest.approx(reference.statistic, rel=1e-9, abs=1e-9)
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)
        assert result.mismatch == (reference.pvalue < 0.001)

    def test_skewed_split_is_flagged(self) -> None:
        result = sample_ratio_mismatch([5_300, 4_700], [50, 50])
        assert result.mismatch
        assert result.to_dict()["observed"] == [5_300, 4_700]

    def test_healthy_split_is_not_flagged(self) -> None:
        assert not sample_ratio_mismatch([5_020, 4_980], [50, 50]).mismatch

    def test_units_in_a_zero_weight_arm_are_a_mismatch(self) -> None:
        result = sample_ratio_mismatch([100, 100, 1], [50, 50, 0])
        assert result.mismatch
        assert result.p_value == 0.0

    @pytest.mark.parametrize(
        ("observed", "weights", "field"),
        [
            ([1, 2], [50], "expected_weights"),
            ([1], [100], "observed"),
            ([0, 0], [50, 50], "observed"),
            ([1, -1], [50, 50], "observed[1]"),
            ([1, 1], [50, -50], "expected_weights[1]"),
            ([1, 1], [0, 0], "expected_weights"),
        ],
    )
    def test_bad_arguments_raise(
        self, observed: list[int], weights: list[float], field: str
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            sample_ratio_mismatch(observed, weights)
        assert info.value.field == field


class TestSampleSize:
    def test_proportions_textbook_example(self) -> None:
        # baseline 10 %, absolute MDE 2 points, alpha .05 two-sided, power .8.
        assert min_sample_size_proportions(0.10, 0.02) == 3_841

    @given(
        st.floats(0.01, 0.9),
        st.floats(0.005, 0.09),
        st.sampled_from([0.01, 0.05, 0.1]),
        st.sampled_from([0.8, 0.9]),
    )
    def test_proportions_match_the_formula(
        self, p1: float, mde: float, alpha: float, power: float
    ) -> None:
        p2 = p1 + mde
        z_a, z_b = sp.norm.ppf(1 - alpha / 2), sp.norm.ppf(power)
        p_bar = (p1 + p2) / 2
        n = (
            z_a * math.sqrt(2 * p_bar * (1 - p_bar))
            + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
        ) ** 2 / mde**2
        got = min_sample_size_proportions(p1, mde, alpha=alpha, power=power)
        assert got - 1 < n <= got + 1e-6

    def test_proportions_sample_size_achieves_the_power(self) -> None:
        n = min_sample_size_proportions(0.10, 0.02)
        se0 = math.sqrt(2 * 0.11 * 0.89 / n)
        se1 = math.sqrt((0.10 * 0.90 + 0.12 * 0.88) / n)
        power = sp.norm.sf((sp.norm.ppf(0.975) * se0 - 0.02) / se1)
        assert power == pytest.approx(0.8, abs=1e-3)

    def test_means_textbook_example(self) -> None:
        # 2 (1.96 + 0.8416)^2 sigma^2 / delta^2 with sigma = delta: 15.7 -> 16 per arm.
        assert min_sample_size_means(1.0, 1.0) == 16
        assert min_sample_size_means(10.0, 2.0) == math.ceil(
            2 * (sp.norm.ppf(0.975) + sp.norm.ppf(0.8)) ** 2 * 100 / 4
        )

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"baseline_rate": 0.0, "mde": 0.01}, "baseline_rate"),
            ({"baseline_rate": 1.0, "mde": 0.01}, "baseline_rate"),
            ({"baseline_rate": 0.5, "mde": 0.0}, "mde"),
            ({"baseline_rate": 0.95, "mde": 0.1}, "mde"),
            ({"baseline_rate": 0.1, "mde": 0.02, "alpha": 1.0}, "alpha"),
            ({"baseline_rate": 0.1, "mde": 0.02, "power": 0.0}, "power"),
        ],
    )
    def test_bad_proportion_arguments_raise(self, kwargs: dict[str, float], field: str) -> None:
        with pytest.raises(InvalidInput) as info:
            min_sample_size_proportions(**kwargs)
        assert info.value.field == field

    @pytest.mark.parametrize(
        ("std", "mde", "field"), [(0.0, 1.0, "std"), (1.0, -1.0, "mde"), (math.inf, 1.0, "std")]
    )
    def test_bad_mean_arguments_raise(self, std: float, mde: float, field: str) -> None:
        with pytest.raises(InvalidInput) as info:
            min_sample_size_means(std, mde)
        assert info.value.field == field


def _result(difference: float, p_value: float) -> TestResult:
    return TestResult(
        test="t",
        estimate_a=0.0,
        estimate_b=difference,
        difference=difference,
        ci_low=difference - 1,
        ci_high=difference + 1,
        statistic=0.0,
        p_value=p_value,
        alpha=0.05,
        df=None,
        significant=p_value < 0.05,
    )


class TestDecide:
    @given(
        st.floats(-1, 1, allow_nan=False),
        st.floats(0, 1),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.integers(1, 10_000),
    )
    def test_never_calls_a_winner_below_the_minimum_sample(
        self, difference: float, p_value: float, n_a: int, n_b: int, min_n: int
    ) -> None:
        verdict = decide(_result(difference, p_value), n_a, n_b, min_n)
        if min(n_a, n_b) < min_n:
            assert verdict == "insufficient_data"
        else:
            assert verdict != "insufficient_data"

    def test_significant_increase_is_b_better(self) -> None:
        assert decide(_result(0.03, 0.001), 5_000, 5_000, 3_841) == "b_better"

    def test_significant_decrease_is_a_better(self) -> None:
        assert decide(_result(-0.03, 0.001), 5_000, 5_000, 3_841) == "a_better"

    def test_lower_is_better_reverses_the_winner(self) -> None:
        verdict = decide(_result(0.03, 0.001), 5_000, 5_000, 100, higher_is_better=False)
        assert verdict == "a_better"

    def test_non_significant_difference_is_no_difference(self) -> None:
        assert decide(_result(0.03, 0.2), 5_000, 5_000, 3_841) == "no_difference"

    def test_strong_effect_below_minimum_sample_is_insufficient(self) -> None:
        result = two_proportion_ztest(10, 100, 60, 100)
        assert result.p_value < 1e-10
        assert decide(result, 100, 100, 3_841) == "insufficient_data"

    def test_bad_minimum_sample_raises(self) -> None:
        with pytest.raises(InvalidInput) as info:
            decide(_result(0.0, 1.0), 10, 10, 0)
        assert info.value.field == "min_n"
