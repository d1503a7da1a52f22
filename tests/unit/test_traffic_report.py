"""The experiment report: its statistics checked against scipy and hand formulas on known data,
the insufficient-data rule, the sample-ratio check, shadows, and where outcomes come from."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from modelplane.bootstrap import Platform
from modelplane.traffic.commands import RecordFeedback
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters, LiveStats
from modelplane.traffic.model import Arm
from modelplane.traffic.outcomes import load_outcomes, outcome_of
from modelplane.traffic.report import experiment_report
from modelplane.traffic.stats import min_sample_size_means, min_sample_size_proportions

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def experiment(
    *weights: float,
    metric: str = "accuracy",
    mde: float = 0.05,
    bandit: bool = False,
    name: str = "ab",
) -> Experiment:
    arms = tuple(Arm(chr(ord("a") + i), i + 1, w) for i, w in enumerate(weights))
    return Experiment.create(
        name,
        "fraud",
        kind="split",
        arms=arms,
        metric=metric,
        mde=mde,
        alpha=0.05,
        power=0.8,
        bandit=bandit,
        shadow_percent=0.0,
        now=NOW,
    )


def counters(requests: int, errors: int = 0, latency_ms: float = 5.0) -> Counters:
    live = LiveStats()
    for i in range(requests):
        live.request("s", "v", latency_ms + i % 3, ok=i >= errors)
    return live.drain().get(("s", "v"), Counters())


def ones(n: int, k: int) -> list[float]:
    return [1.0] * k + [0.0] * (n - k)


class TestStatistics:
    def test_rates_use_the_two_proportion_ztest(self) -> None:
        exp = experiment(50, 50)
        rep = experiment_report(
            exp,
            {"a": counters(1000), "b": counters(1000)},
            {"a": ones(1000, 800), "b": ones(1000, 850)},
        )
        (c,) = rep.comparisons
        assert c.test == "two_proportion_ztest"
        pooled = 1650 / 2000
        z = (0.85 - 0.80) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
        assert c.result is not None
        assert c.result.statistic == pytest.approx(z)
        assert c.p_value == pytest.approx(2 * sp.norm.sf(abs(z)))
        assert c.difference == pytest.approx(0.05)
        assert rep.min_sample_size == min_sample_size_proportions(0.8, 0.05)
        assert c.decision == "b_better"
        assert rep.winner == "b"
        a = rep.variants[0]
        assert a.value == pytest.approx(0.8)
        assert a.ci is not None
        assert a.ci.method == "wilson"
        assert a.ci.low < 0.8 < a.ci.high

    def test_rewards_use_welch_as_scipy_does(self) -> None:
        rng = np.random.default_rng(7)
        xa = rng.normal(10.0, 2.0, size=300).tolist()
        xb = rng.normal(10.8, 3.0, size=250).tolist()
        exp = experiment(50, 50, metric="reward", mde=1.0)
        rep = experiment_report(exp, {"a": counters(300), "b": counters(250)}, {"a": xa, "b": xb})
        (c,) = rep.comparisons
        expected = sp.ttest_ind(xb, xa, equal_var=False)
        assert c.test == "welch_ttest"
        assert c.result is not None
        assert c.result.statistic == pytest.approx(expected.statistic)
        assert c.p_value == pytest.approx(expected.pvalue)
        assert c.difference == pytest.approx(np.mean(xb) - np.mean(xa))
        ci = rep.variants[0].ci
        assert ci is not None
        low, high = sp.t.interval(0.95, 299, loc=np.mean(xa), scale=sp.sem(xa))
        assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
        pooled = math.sqrt((299 * np.var(xa, ddof=1) + 249 * np.var(xb, ddof=1)) / 548)
        assert rep.min_sample_size == min_sample_size_means(pooled, 1.0)

    def test_reward_outcomes_that_are_all_0_or_1_use_the_ztest(self) -> None:
        exp = experiment(50, 50, metric="reward")
        rep = experiment_report(exp, {}, {"a": ones(100, 40), "b": ones(100, 60)})
        assert rep.comparisons[0].test == "two_proportion_ztest"

    def test_the_srm_check_matches_scipy_chisquare(self) -> None:
        exp = experiment(20, 30, 50)
        observed = [230, 290, 480]
        rep = experiment_report(
            exp, {name: counters(n) for name, n in zip("abc", observed, strict=True)}, None
        )
        expected = sp.chisquare(observed, [200, 300, 500])
        assert rep.srm is not None
        assert rep.srm.statistic == pytest.approx(expected.statistic)
        assert rep.srm.p_value == pytest.approx(expected.pvalue)
        assert rep.srm.mismatch is bool(expected.pvalue < 0.001)

    def test_a_mismatch_is_flagged_in_the_summary(self) -> None:
        rep = experiment_report(experiment(50, 50), {"a": counters(1000), "b": counters(800)})
        assert rep.srm is not None
        assert rep.srm.mismatch
        assert "sample ratio mismatch" in rep.summary
        assert rep.srm_note.startswith("MISMATCH")

    def test_bandits_skip_the_srm_check(self) -> None:
        rep = experiment_report(
            experiment(50, 50, bandit=True), {"a": counters(1000), "b": counters(100)}
        )
        assert rep.srm is None
        assert "bandit" in rep.srm_note


class TestInsufficientData:
    def test_no_winner_before_every_arm_has_the_minimum_sample(self) -> None:
        # a huge, significant difference on too few outcomes is still no winner
        rep = experiment_report(
            experiment(50, 50, mde=0.01), {}, {"a": ones(400, 100), "b": ones(400, 300)}
        )
        (c,) = rep.comparisons
        assert c.result is not None
        assert c.p_value is not None
        assert c.p_value < 1e-10
        need = min_sample_size_proportions(0.25, 0.01)
        assert c.decision == "insufficient_data"
        assert c.verdict == f"insufficient data: n=400 of {need}"
        assert rep.winner is None
        assert rep.sufficient is False
        assert rep.summary.startswith(f"no winner yet: need {need}")

    def test_one_short_arm_is_enough_to_withhold_a_verdict(self) -> None:
        need = min_sample_size_proportions(0.5, 0.2)
        rep = experiment_report(
            experiment(50, 50, mde=0.2), {}, {"a": ones(need, need // 2), "b": ones(need - 1, 0)}
        )
        assert rep.comparisons[0].decision == "insufficient_data"

    @pytest.mark.parametrize("correct", [0, 200])
    def test_a_control_rate_of_0_or_1_sizes_with_half(self, correct: int) -> None:
        rep = experiment_report(experiment(50, 50), {}, {"a": ones(200, correct), "b": []})
        assert rep.min_sample_size == min_sample_size_proportions(0.5, 0.05)
        assert rep.comparisons[0].decision == "insufficient_data"

    def test_no_outcomes_at_all(self) -> None:
        rep = experiment_report(experiment(50, 50), {"a": counters(10), "b": counters(10)})
        assert rep.min_sample_size == min_sample_size_proportions(0.5, 0.05)
        assert rep.comparisons[0].test is None
        assert rep.winner is None
        assert rep.variants[0].value is None

    def test_means_need_two_values_per_arm_to_be_sized(self) -> None:
        rep = experiment_report(experiment(50, 50, metric="reward"), {}, {"a": [1.5], "b": [2.5]})
        assert rep.min_sample_size is None
        assert rep.comparisons[0].verdict.startswith("insufficient data: n=1 of ?")

    def test_three_arms_need_each_to_reach_the_minimum(self) -> None:
        rep = experiment_report(
            experiment(40, 30, 30, mde=0.1),
            {},
            {"a": ones(1000, 500), "b": ones(1000, 600), "c": ones(100, 60)},
        )
        decisions = [c.decision for c in rep.comparisons]
        assert decisions == ["b_better", "insufficient_data"]
        assert rep.winner is None


class TestSourcesAndShapes:
    def test_counters_alone_give_the_outcomes(self) -> None:
        live = LiveStats()
        for i in range(500):
            live.outcome("s", "a", 1.0 if i < 400 else 0.0)
            live.outcome("s", "b", 1.0 if i < 450 else 0.0)
        drained = live.drain()
        rep = experiment_report(experiment(50, 50), {v: drained[("s", v)] for v in "ab"})
        assert [v.outcome_n for v in rep.variants] == [500, 500]
        assert rep.comparisons[0].test == "two_proportion_ztest"
        assert rep.variants[1].value == pytest.approx(0.9)

    def test_shadow_report(self) -> None:
        exp = Experiment.create(
            "sh",
            "fraud",
            kind="shadow",
            arms=(Arm("shadow", 2, 100.0),),
            metric="accuracy",
            mde=0.02,
            alpha=0.05,
            power=0.8,
            bandit=False,
            shadow_percent=20.0,
            now=NOW,
        )
        live = LiveStats()
        for i in range(40):
            live.shadow("s", "shadow", 2.0 + i % 5, ok=True, agree=i % 4 != 0, absdiff=0.5)
        live.shadow("s", "shadow", 1.0, ok=False)
        for _ in range(3):
            live.shadow_dropped("s", "shadow")
        rep = experiment_report(exp, {"shadow": live.drain()[("s", "shadow")]})
        shadow = rep.variants[0].shadow
        assert shadow is not None
        assert shadow.compared == 40
        assert shadow.agreement_rate == pytest.approx(0.75)
        assert shadow.mean_abs_diff == pytest.approx(0.5)
        assert (shadow.errors, shadow.dropped) == (1, 3)
        assert shadow.latency_p50_ms is not None
        assert rep.comparisons == ()
        assert "75.0% agreement" in rep.summary

        labels = LiveStats()  # label outputs: they agree or not, no difference is measured
        for i in range(10):
            labels.shadow("s", "shadow", 2.0, ok=True, agree=i != 0, absdiff=None)
        only_labels = experiment_report(exp, {"shadow": labels.drain()[("s", "shadow")]})
        summary = only_labels.variants[0].shadow
        assert summary is not None
        assert summary.agreement_rate == pytest.approx(0.9)
        assert summary.mean_abs_diff is None

    def test_to_dict_is_json(self) -> None:
        rep = experiment_report(
            experiment(50, 50),
            {"a": counters(100, 2), "b": counters(100)},
            {"a": ones(100, 50), "b": ones(100, 60)},
        )
        data: dict[str, Any] = json.loads(json.dumps(rep.to_dict()))
        assert data["control"] == "a"
        assert data["comparisons"][0]["variant"] == "b"
        assert data["variants"][0]["error_rate"] == pytest.approx(0.02)

    @pytest.mark.parametrize(
        ("metric", "prediction", "label", "reward", "expected"),
        [
            ("accuracy", 1, 1.0, None, 1.0),
            ("accuracy", [0], 1.0, None, 0.0),
            ("accuracy", 1, None, 0.5, None),
            ("accuracy", [0.2, 0.8], 1.0, None, None),
            ("accuracy", [float("nan")], 1.0, None, None),  # the log keeps NaN: no value
            ("accuracy", None, 1.0, None, None),  # older logs wrote NaN as null
            ("reward", None, None, 0.25, 0.25),
            ("reward", 1, 1.0, None, None),
        ],
    )
    def test_outcome_of_a_row(
        self,
        metric: str,
        prediction: Any,
        label: float | None,
        reward: float | None,
        expected: float | None,
    ) -> None:
        assert outcome_of(metric, prediction, label, reward) == expected


class TestLoadOutcomes:
    def test_feedback_is_attributed_directly_or_through_the_log(self, platform: Platform) -> None:
        exp = experiment(50, 50)
        handle = platform.bus.handle
        # attributed by the replica that served it: its prediction comes from the log
        handle(RecordFeedback("r1", label=1.0, reward=None, subject=exp.subject, variant="a"))
        handle(RecordFeedback("r2", label=0.0, reward=None, subject=exp.subject, variant="b"))
        # unknown to the replica that took the feedback: joined with the log
        handle(RecordFeedback("r3", label=1.0, reward=None, subject=None, variant=None))
        handle(RecordFeedback("r4", label=1.0, reward=None, subject=None, variant=None))
        # logged for another experiment, or another experiment's feedback: ignored
        handle(RecordFeedback("r5", label=1.0, reward=None, subject=None, variant=None))
        handle(RecordFeedback("r6", label=1.0, reward=None, subject="experiment:zz", variant="a"))
        # no label: no accuracy outcome
        handle(RecordFeedback("r7", label=None, reward=1.0, subject=exp.subject, variant="a"))
        log = pd.DataFrame(
            {
                "request_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
                "outputs": [
                    '{"predict": [1]}',
                    '{"predict": [1]}',
                    '{"predict": [[1]], "proba": [[0.1, 0.9]]}',
                    '{"predict": [0]}',
                    '{"predict": [1]}',
                    '{"predict": [1]}',
                ],
                "experiment": [None, None, "ab", "ab", "other", None],
                "variant": [None, None, "b", "a", "a", None],
            }
        )
        calls: list[tuple[str, str]] = []

        def read_log(location: str, model: str) -> pd.DataFrame:
            calls.append((location, model))
            return log

        out = load_outcomes(platform.traffic, exp, prediction_log="mem://log", read_log=read_log)
        assert calls == [("mem://log", "fraud")]
        assert sorted(out["a"]) == [0.0, 1.0]  # r1 right, r4 wrong
        assert sorted(out["b"]) == [0.0, 1.0]  # r2 wrong, r3 right

    def test_rewards_need_no_log_for_attributed_rows(self, platform: Platform) -> None:
        exp = experiment(50, 50, metric="reward")
        handle = platform.bus.handle
        handle(RecordFeedback("r1", label=None, reward=2.5, subject=exp.subject, variant="a"))
        handle(RecordFeedback("r2", label=None, reward=None, subject=exp.subject, variant="b"))
        handle(RecordFeedback("r3", label=None, reward=1.0, subject=exp.subject, variant="zz"))

        def read_log(location: str, model: str) -> pd.DataFrame:
            raise AssertionError("the log is not needed")

        out = load_outcomes(platform.traffic, exp, prediction_log="x", read_log=read_log)
        assert out == {"a": [2.5], "b": []}

    def test_a_log_without_the_experiment_columns_attributes_nothing_loose(
        self, platform: Platform
    ) -> None:
        exp = experiment(50, 50, metric="reward")
        platform.bus.handle(
            RecordFeedback("r1", label=None, reward=1.0, subject=None, variant=None)
        )
        frame = pd.DataFrame({"request_id": ["r1"], "outputs": ['{"p": [1]}']})
        out = load_outcomes(
            platform.traffic, exp, prediction_log="x", read_log=lambda loc, model: frame
        )
        assert out == {"a": [], "b": []}
