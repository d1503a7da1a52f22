"""Release gates on real (small) scikit-learn models saved and loaded through the client."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelplane.client import Client, LoadedModel
from modelplane.config import Settings
from modelplane.errors import InvalidInput
from modelplane.traffic.gates import (
    Check,
    GateConfig,
    GateReport,
    SmokeCase,
    load_smoke,
    run_gates,
)

RNG = np.random.default_rng(11)
N = 400
FRAME = pd.DataFrame(RNG.normal(size=(N, 3)), columns=["amount", "hour", "distance"])
LABEL = (FRAME["amount"] + 0.5 * FRAME["hour"] + RNG.normal(scale=0.5, size=N) > 0).astype(int)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    """Champion, a better and a worse candidate, and one missing a column; loaded back."""
    client = Client(Settings(home=tmp_path_factory.mktemp("home")))
    two = FRAME[["amount", "distance"]]
    fitted = {
        "champion": (LogisticRegression().fit(two, LABEL), two),
        "better": (LogisticRegression().fit(FRAME, LABEL), FRAME),
        "worse": (DummyClassifier(strategy="prior").fit(FRAME, LABEL), FRAME),
        "narrow": (LogisticRegression().fit(FRAME[["amount"]], LABEL), FRAME[["amount"]]),
    }
    loaded = {}
    for name, (model, frame) in fitted.items():
        client.log_model(model, name=name, input_example=frame)
        loaded[name] = client.load_model(name, trust=True)
    # A champion that takes all three columns (same as "better"'s signature).
    client.log_model(
        LogisticRegression().fit(two.assign(hour=0.0)[list(FRAME.columns)], LABEL),
        name="wide",
        input_example=FRAME,
    )
    loaded["wide"] = client.load_model("wide")
    reg = LinearRegression().fit(FRAME, FRAME["amount"] * 2.0)
    client.log_model(reg, name="reg", input_example=FRAME)
    loaded["reg"] = client.load_model("reg")
    client.close()
    return loaded


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["amount", "hour", "distance"])
    frame["label"] = (frame["amount"] + 0.5 * frame["hour"] > 0).astype(int)
    path = tmp_path_factory.mktemp("data") / "holdout.parquet"
    frame.to_parquet(path)
    return str(path)


def by_name(report: GateReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


class TestHoldout:
    def test_a_better_candidate_passes(self, models: dict[str, LoadedModel], holdout: str) -> None:
        config = GateConfig(holdout=holdout, label="label", metric="roc_auc")
        report = run_gates(models["better"], models["wide"], config)
        assert report.passed, report.to_dict()
        check = by_name(report)["holdout"]
        assert check.data["candidate"] > check.data["champion"] > 0.5
        assert (report.candidate, report.champion) == ("better/1", "wide/1")

    def test_a_much_worse_candidate_fails_despite_the_margin(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        config = GateConfig(holdout=holdout, label="label", metric="roc_auc", margin=0.05)
        report = run_gates(models["worse"], models["champion"], config)
        assert not report.passed
        check = by_name(report)["holdout"]
        assert not check.passed
        assert check.data["candidate"] == pytest.approx(0.5)
        assert "worse than allowed" in check.detail

    def test_the_margin_lets_a_slightly_worse_candidate_pass(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        # The champion against the better model: worse by a little.
        strict = GateConfig(holdout=holdout, label="label", metric="accuracy")
        gap_report = run_gates(models["champion"], models["better"], strict)
        check = by_name(gap_report)["holdout"]
        gap = check.data["champion"] - check.data["candidate"]
        assert 0 < gap < 0.2
        assert not check.passed
        loose = GateConfig(holdout=holdout, label="label", metric="accuracy", margin=gap + 0.01)
        assert by_name(run_gates(models["champion"], models["better"], loose))["holdout"].passed

    @pytest.mark.parametrize("metric", ["f1", "average_precision", "accuracy"])
    def test_other_classification_metrics(
        self, models: dict[str, LoadedModel], holdout: str, metric: str
    ) -> None:
        config = GateConfig(holdout=holdout, label="label", metric=metric)
        check = by_name(run_gates(models["better"], models["champion"], config))["holdout"]
        assert check.passed, check.detail
        assert 0.5 < check.data["candidate"] <= 1.0

    @pytest.mark.parametrize("metric", ["rmse", "mae"])
    def test_lower_is_better_for_errors(
        self, models: dict[str, LoadedModel], tmp_path: Path, metric: str
    ) -> None:
        frame = FRAME.assign(target=FRAME["amount"] * 2.0)
        path = tmp_path / "reg.csv"
        frame.to_csv(path, index=False)
        config = GateConfig(holdout=str(path), label="target", metric=metric)
        good = by_name(run_gates(models["reg"], models["better"], config))["holdout"]
        assert good.passed
        assert good.data["candidate"] < 1e-6 < good.data["champion"]
        bad = by_name(run_gates(models["better"], models["reg"], config))["holdout"]
        assert not bad.passed

    def test_a_bad_holdout_file_is_a_failed_check_not_an_exception(
        self, models: dict[str, LoadedModel], tmp_path: Path
    ) -> None:
        config = GateConfig(holdout=str(tmp_path / "absent.csv"), label="label")
        check = by_name(run_gates(models["better"], None, config))["holdout"]
        assert not check.passed
        assert "absent.csv" in check.detail
        wrong_label = GateConfig(holdout=str(tmp_path / "x.json"), label="label")
        assert not by_name(run_gates(models["better"], None, wrong_label))["holdout"].passed

    def test_a_missing_label_column_fails(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        config = GateConfig(holdout=holdout, label="nope")
        check = by_name(run_gates(models["better"], None, config))["holdout"]
        assert not check.passed
        assert "nope" in check.detail


class TestSignature:
    def test_a_missing_column_fails(self, models: dict[str, LoadedModel]) -> None:
        report = run_gates(models["narrow"], models["champion"], GateConfig())
        check = by_name(report)["signature"]
        assert not check.passed
        assert not report.passed
        assert "'distance'" in check.detail
        assert "missing" in check.detail

    def test_a_new_required_column_fails(self, models: dict[str, LoadedModel]) -> None:
        check = by_name(run_gates(models["better"], models["champion"], GateConfig()))["signature"]
        assert not check.passed
        assert "'hour'" in check.detail
        assert "new" in check.detail

    def test_the_same_columns_pass(self, models: dict[str, LoadedModel]) -> None:
        check = by_name(run_gates(models["better"], models["wide"], GateConfig()))["signature"]
        assert check.passed, check.detail

    def test_no_champion_is_skipped_with_a_reason(self, models: dict[str, LoadedModel]) -> None:
        check = by_name(run_gates(models["better"], None, GateConfig()))["signature"]
        assert check.passed
        assert "no champion" in check.detail


class TestLatency:
    def test_a_tiny_budget_fails_and_a_large_one_passes(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        tight = GateConfig(holdout=holdout, latency_budget_ms=0.0001)
        check = by_name(run_gates(models["better"], None, tight))["latency"]
        assert not check.passed
        assert check.data["p95_ms"] > 0.0001
        assert check.data["calls"] == 50
        roomy = GateConfig(holdout=holdout, latency_budget_ms=10_000)
        assert by_name(run_gates(models["better"], None, roomy))["latency"].passed

    def test_uses_the_injected_clock(self, models: dict[str, LoadedModel], holdout: str) -> None:
        ticks = iter(np.arange(0, 1000, 0.002))  # every call "takes" 2 ms
        config = GateConfig(holdout=holdout, latency_budget_ms=1.5)
        check = by_name(
            run_gates(models["better"], None, config, clock=lambda: float(next(ticks)))
        )["latency"]
        assert check.data["p95_ms"] == pytest.approx(2.0)
        assert not check.passed

    def test_a_budget_with_nothing_to_time_fails(self, models: dict[str, LoadedModel]) -> None:
        check = by_name(run_gates(models["better"], None, GateConfig(latency_budget_ms=5)))[
            "latency"
        ]
        assert not check.passed
        assert "nothing to time" in check.detail

    def test_times_smoke_inputs_without_a_holdout(self, models: dict[str, LoadedModel]) -> None:
        config = GateConfig(
            latency_budget_ms=10_000,
            smoke=(SmokeCase({"amount": 1.0, "hour": 0.0, "distance": 0.0}),),
        )
        check = by_name(run_gates(models["better"], None, config))["latency"]
        assert check.passed
        assert check.data["source"] == "smoke inputs"


class TestSmoke:
    def test_expectations_and_bounds(self, models: dict[str, LoadedModel]) -> None:
        high = {"amount": 3.0, "hour": 1.0, "distance": 0.0}
        low = [-3.0, -1.0, 0.0]  # a list: the columns in signature order
        config = GateConfig(
            smoke=(
                SmokeCase(high, expect=1),
                SmokeCase(low, expect=0),
                SmokeCase(high, min=0.9),
                SmokeCase(low, min=0.0, max=0.1),
            )
        )
        check = by_name(run_gates(models["better"], None, config))["smoke"]
        assert check.passed, check.detail
        assert [c["passed"] for c in check.data["cases"]] == [True] * 4

    def test_a_failing_case_is_named(self, models: dict[str, LoadedModel]) -> None:
        high = {"amount": 3.0, "hour": 1.0, "distance": 0.0}
        config = GateConfig(
            smoke=(
                SmokeCase(high, expect=1),
                SmokeCase(high, expect=0),
                SmokeCase(high, max=0.5),
                SmokeCase({"amount": 1.0}, expect=1),  # a missing column: the model refuses it
            )
        )
        check = by_name(run_gates(models["better"], None, config))["smoke"]
        assert not check.passed
        assert "case 0" not in check.detail
        assert "case 1: predicted 1, expected 0" in check.detail
        assert "case 2: score" in check.detail
        assert "above max 0.5" in check.detail
        assert "case 3:" in check.detail
        assert "hour" in check.detail

    def test_bounds_on_a_regressor_use_the_prediction(self, models: dict[str, LoadedModel]) -> None:
        case = {"amount": 1.0, "hour": 5.0, "distance": -2.0}
        ok = GateConfig(smoke=(SmokeCase(case, min=1.9, max=2.1),))
        assert by_name(run_gates(models["reg"], None, ok))["smoke"].passed
        bad = GateConfig(smoke=(SmokeCase(case, max=1.0),))
        assert not by_name(run_gates(models["reg"], None, bad))["smoke"].passed

    def test_load_smoke_reads_a_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "smoke.json"
        path.write_text(
            json.dumps([{"input": {"a": 1}, "expect": 0}, {"input": [1, 2], "min": 0, "max": 0.5}])
        )
        cases = load_smoke(path)
        assert cases == (SmokeCase({"a": 1}, expect=0), SmokeCase([1, 2], min=0, max=0.5))

    @pytest.mark.parametrize(
        "text",
        [
            "not json",
            '{"input": 1}',
            '[{"expect": 1}]',
            '[{"input": {"a": 1}, "wat": 1}]',
            '[{"input": [1], "min": 2, "max": 1}]',
            '[{"input": 5}]',
        ],
    )
    def test_load_smoke_rejects_bad_files(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "smoke.json"
        path.write_text(text)
        with pytest.raises(InvalidInput):
            load_smoke(path)

    def test_load_smoke_rejects_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput):
            load_smoke(tmp_path / "absent.json")


class TestWithoutChampion:
    def test_every_check_passes_and_records_values(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        config = GateConfig(
            holdout=holdout,
            label="label",
            latency_budget_ms=10_000,
            smoke=(SmokeCase([3.0, 1.0, 0.0], expect=1),),
        )
        report = run_gates(models["better"], None, config)
        assert report.passed, report.to_dict()
        assert report.champion is None
        assert [c.name for c in report.checks] == ["signature", "holdout", "latency", "smoke"]
        check = by_name(report)["holdout"]
        assert check.data["champion"] is None
        assert check.data["candidate"] > 0.8
        assert "no champion" in check.detail


class TestConfig:
    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"metric": "r2"}, "metric"),
            ({"margin": -0.1}, "margin"),
            ({"margin": "lots"}, "margin"),
            ({"label": "y"}, "label"),
            ({"holdout": "h.csv", "latency_budget_ms": -1}, "latency_budget_ms"),
            ({"colour": "blue"}, "colour"),
            ({"smoke": 3}, "smoke"),
        ],
    )
    def test_bad_settings_name_their_field(self, data: dict[str, object], field: str) -> None:
        with pytest.raises(InvalidInput) as info:
            GateConfig.from_dict(data)
        assert info.value.field == field

    def test_round_trip(self, tmp_path: Path) -> None:
        config = GateConfig(
            holdout="h.csv",
            label="y",
            metric="rmse",
            margin=0.5,
            latency_budget_ms=20.0,
            smoke=(SmokeCase({"a": 1}, expect=2), SmokeCase([1], min=0.0)),
        )
        data = json.loads(json.dumps(config.to_dict()))
        assert GateConfig.from_dict(data) == config
        path = tmp_path / "smoke.json"
        path.write_text(json.dumps(data["smoke"]))
        assert GateConfig.from_dict({**data, "smoke": str(path)}) == config

    def test_defaults(self) -> None:
        assert GateConfig.from_dict({}) == GateConfig()
        assert GateConfig().to_dict()["metric"] == "roc_auc"


class TestReport:
    def test_to_dict_is_json_and_round_trips(
        self, models: dict[str, LoadedModel], holdout: str
    ) -> None:
        config = GateConfig(
            holdout=holdout,
            label="label",
            latency_budget_ms=10_000,
            smoke=(SmokeCase([3.0, 1.0, 0.0], expect=1, min=0.5),),
        )
        report = run_gates(models["better"], models["wide"], config)
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert data["passed"] is report.passed
        assert GateReport.from_dict(data) == report

    def test_passed_needs_every_check(self) -> None:
        ok = Check("a", True, "", {})
        assert GateReport("m/2", None, (ok, ok)).passed
        report = GateReport("m/2", "m/1", (ok, Check("b", False, "no", {})))
        assert not report.passed
        assert [c.name for c in report.failed] == ["b"]
