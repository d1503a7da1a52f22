"""Runtimes: detect, save, guess, load and predict for every flavor; the safety rules."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
)
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from modelplane.errors import (
    ArtifactMissing,
    DependencyMissing,
    InvalidInput,
    UntrustedArtifact,
)
from modelplane.runtimes import (
    FLAVORS,
    Runtime,
    SavedModel,
    detect_flavor,
    guess_flavor,
    load_runtime,
    save_model,
)
from modelplane.runtimes.sklearn import SklearnRuntime

SRC = Path(__file__).resolve().parents[2] / "src"


def double_sum(batch: Any) -> Any:
    """A module-level function: a valid pyfunc model."""
    return np.asarray(batch).sum(axis=1) * 2


class SumRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A custom estimator outside scikit-learn: skops cannot vouch for it."""

    def fit(self, x: Any, y: Any) -> SumRegressor:
        self.fitted_ = True
        return self

    def predict(self, x: Any) -> Any:
        return np.asarray(x).sum(axis=1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def renamed(path: Path) -> Path:
    """The file under a name without extension, as a content-addressed store may keep it."""
    blob = path.parent / "blob"
    path.rename(blob)
    return blob


def round_trip(
    model: Any, tmp_path: Path, *, trust: bool = False, **kwargs: Any
) -> tuple[SavedModel, Runtime]:
    saved = save_model(model, tmp_path / "artifact", **kwargs)
    flavor = guess_flavor(saved.path)
    assert flavor == saved.flavor
    return saved, load_runtime(flavor, saved.path, trust=trust)


class TestDetectFlavor:
    def test_sklearn_estimator_is_sklearn(self) -> None:
        assert detect_flavor(LogisticRegression()) == "sklearn"

    def test_custom_estimator_on_sklearn_base_is_sklearn(self) -> None:
        assert detect_flavor(SumRegressor()) == "sklearn"

    def test_module_level_function_is_pyfunc(self) -> None:
        assert detect_flavor(double_sum) == "pyfunc"

    def test_xgboost_wrapper_is_xgboost(self) -> None:
        xgb = pytest.importorskip("xgboost")
        assert detect_flavor(xgb.XGBClassifier()) == "xgboost"

    def test_lightgbm_wrapper_is_lightgbm(self) -> None:
        lgb = pytest.importorskip("lightgbm")
        assert detect_flavor(lgb.LGBMClassifier()) == "lightgbm"

    def test_torch_module_is_torch(self) -> None:
        torch = pytest.importorskip("torch")
        assert detect_flavor(torch.nn.Linear(2, 1)) == "torch"

    def test_onnx_model_proto_is_onnx(self, onnx_model: Any) -> None:
        assert detect_flavor(onnx_model) == "onnx"

    def test_onnx_bytes_are_onnx(self, onnx_model: Any) -> None:
        assert detect_flavor(onnx_model.SerializeToString()) == "onnx"

    def test_unknown_object_is_refused(self) -> None:
        with pytest.raises(InvalidInput, match="cannot tell the flavor"):
            detect_flavor(object())


class TestSklearn:
    def test_round_trip_gives_the_same_predictions(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        model = LogisticRegression().fit(x, y)
        saved, runtime = round_trip(model, tmp_path)
        assert saved.path.name == "model.skops"
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))

    def test_predict_proba_matches_the_original(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        model = LogisticRegression().fit(x, y)
        _, runtime = round_trip(model, tmp_path)
        assert runtime.has_proba
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))

    def test_tree_ensemble_loads_without_trust(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y)
        _, runtime = round_trip(model, tmp_path)
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))

    def test_dict_of_columns_reaches_a_dataframe_model(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
        model = LogisticRegression().fit(frame, y)
        _, runtime = round_trip(model, tmp_path)
        columns = {name: frame[name].to_numpy() for name in frame.columns}
        np.testing.assert_array_equal(runtime.predict(columns), model.predict(frame))

    def test_regressor_has_no_predict_proba(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        _, runtime = round_trip(LinearRegression().fit(x, y), tmp_path)
        assert not runtime.has_proba
        with pytest.raises(InvalidInput, match="no predict_proba"):
            runtime.predict_proba(x)

    def test_custom_type_in_skops_file_is_refused_without_trust(
        self, data: Any, tmp_path: Path
    ) -> None:
        x, y = data
        saved = save_model(SumRegressor().fit(x, y), tmp_path)
        with pytest.raises(UntrustedArtifact, match="SumRegressor"):
            load_runtime("sklearn", saved.path)

    def test_custom_type_in_skops_file_loads_with_trust(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        saved = save_model(SumRegressor().fit(x, y), tmp_path)
        runtime = load_runtime("sklearn", saved.path, trust=True)
        np.testing.assert_allclose(runtime.predict(x), x.sum(axis=1))


class NanTolerant(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A user's model that imputes in ``predict``: its tags say nothing of NaN."""

    def fit(self, x: Any, y: Any) -> NanTolerant:
        self.means_ = np.nanmean(x, 0)
        self.lr_ = LogisticRegression().fit(x, y)
        return self

    def predict(self, x: Any) -> Any:
        return self.lr_.predict(np.where(np.isnan(x), self.means_, x))


def outcome(method: Any, x: Any) -> tuple[str, Any]:
    """What a call gives: ("ok", the answer) or (the exception's type, its message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", np.asarray(method(x)).tolist()
        except ValueError as exc:
            return "ValueError", str(exc)


FIVE = make_classification(200, 5, random_state=0)


def _gbc() -> Any:
    return GradientBoostingClassifier(n_estimators=5, random_state=0).fit(*FIVE)


# (estimator, input) pairs where skipping scikit-learn's own checks would change the outcome
# (found by review): a value float32 cannot hold, NaN a model would take, inner estimators.
TRICKY = {
    "GBC, 1e39 (its trees cast to float32)": (_gbc, np.full((1, 5), 1e39)),
    "GBC, NaN": (_gbc, np.array([[np.nan, 0, 0, 0, 0.0]])),
    "GBC, -inf": (_gbc, np.array([[-np.inf, 0, 0, 0, 0.0]])),
    "AdaBoost over trees, -1e39": (
        lambda: AdaBoostClassifier(DecisionTreeClassifier(max_depth=2), n_estimators=3).fit(*FIVE),
        np.full((1, 5), -1e39),
    ),
    "isotonic calibration, 1e308": (
        lambda: CalibratedClassifierCV(LinearSVC(), method="isotonic").fit(*FIVE),
        np.full((1, 5), 1e308),
    ),
    "frozen bagging of a polynomial pipeline, 1e200": (
        lambda: FrozenEstimator(
            BaggingClassifier(
                make_pipeline(PolynomialFeatures(), LogisticRegression()), n_estimators=2
            ).fit(*FIVE)
        ),
        np.array([[1e200, 1, 1, 1, 1.0]]),
    ),
    "search refit to an imputing pipeline, NaN": (
        lambda: GridSearchCV(
            BaggingClassifier(LogisticRegression(), n_estimators=2),
            {"estimator": [make_pipeline(SimpleImputer(), LogisticRegression())]},
            cv=2,
        ).fit(*FIVE),
        np.array([[np.nan, 0, 0, 0, 0.0]]),
    ),
    "a user's NaN-tolerant estimator, NaN": (
        lambda: NanTolerant().fit(*FIVE),
        np.array([[np.nan, 0, 0, 0, 0.0]]),
    ),
    "log pipeline, finite input that becomes NaN": (
        lambda: make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(
            np.abs(FIVE[0]), FIVE[1]
        ),
        np.array([[-2.0, 0, 0, 0, 0.0]]),
    ),
}


class TestSklearnFiniteCheck:
    """For plain scikit-learn estimators the runtime checks a numeric array once and lets
    scikit-learn skip its repeated checks; answers and refusals stay scikit-learn's own."""

    @pytest.mark.parametrize("case", list(TRICKY))
    def test_answers_and_refusals_are_scikit_learns(self, case: str) -> None:
        make, x = TRICKY[case]
        model = make()
        runtime = SklearnRuntime(model)
        assert outcome(runtime.predict, x) == outcome(model.predict, x)
        assert sklearn.get_config()["assume_finite"] is False  # restored

    @pytest.mark.parametrize(
        "dtype", [np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_]
    )
    def test_plain_estimators_take_the_short_path_with_the_same_answers(
        self, dtype: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from modelplane.runtimes import sklearn as sklearn_runtime

        taken: list[bool] = []
        original = sklearn_runtime._assuming_finite

        def counted(method: Any, x: Any) -> Any:
            taken.append(sklearn.get_config()["assume_finite"])
            return original(method, x)

        monkeypatch.setattr(sklearn_runtime, "_assuming_finite", counted)
        x, y = FIVE
        for model in (_gbc(), LogisticRegression().fit(x, y), KNeighborsClassifier().fit(x, y)):
            runtime = SklearnRuntime(model)
            sample = (x[:7] * 3).astype(dtype)
            np.testing.assert_array_equal(runtime.predict(sample), model.predict(sample))
            np.testing.assert_array_equal(
                runtime.predict_proba(sample), model.predict_proba(sample)
            )
        assert taken == [False] * 6  # every call went the short way, from a clean setting
        assert sklearn.get_config()["assume_finite"] is False

    @pytest.mark.parametrize("case", [c for c in TRICKY if not c.startswith("GBC")])
    def test_other_estimators_keep_scikit_learns_checks(self, case: str) -> None:
        make, _ = TRICKY[case]
        assert SklearnRuntime(make())._own_finite_check is False

    def test_a_model_that_takes_nan_still_gets_it(self, data: Any) -> None:
        x, y = data
        model = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
        sample = x[:2].copy()
        sample[0, 0] = np.nan
        np.testing.assert_array_equal(SklearnRuntime(model).predict(sample), model.predict(sample))

    def test_an_assume_finite_set_by_the_caller_is_kept(self, data: Any) -> None:
        x, y = data
        runtime = SklearnRuntime(LogisticRegression().fit(x, y))
        with sklearn.config_context(assume_finite=True):
            runtime.predict(x[:2])
            assert sklearn.get_config()["assume_finite"] is True

    def test_the_setting_is_per_thread(self) -> None:
        """With --threads N, predictions of several threads toggle only their own setting."""
        from concurrent.futures import ThreadPoolExecutor

        model = _gbc()
        runtime = SklearnRuntime(model)
        good = FIVE[0][:1]
        bad = good.copy()
        bad[0, 0] = np.nan

        def one(i: int) -> tuple[str, Any]:
            got = outcome(runtime.predict, bad if i % 3 == 0 else good)
            assert sklearn.get_config()["assume_finite"] is False
            return got

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(300)))
        assert all(r[0] == "ValueError" for r in results[::3])
        assert all(
            r == ("ok", model.predict(good).tolist()) for i, r in enumerate(results) if i % 3
        )


class TestSkopsTrustedTypes:
    @pytest.mark.parametrize("func", [np.load, eval], ids=["numpy.load", "builtins.eval"])
    def test_file_reading_or_code_running_function_is_refused_without_trust(
        self, func: Any, tmp_path: Path
    ) -> None:
        saved = save_model(FunctionTransformer(func=func), tmp_path)
        with pytest.raises(UntrustedArtifact, match=func.__name__):
            load_runtime("sklearn", saved.path)

    def test_numpy_ufunc_in_a_pipeline_is_trusted(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        model = make_pipeline(FunctionTransformer(np.tanh), LogisticRegression()).fit(x, y)
        _, runtime = round_trip(model, tmp_path)
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))


class TestPickle:
    @pytest.fixture
    def pickle_file(self, data: Any, tmp_path: Path) -> Path:
        x, y = data
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(LogisticRegression().fit(x, y)))
        return path

    def test_pickle_file_is_guessed_as_sklearn(self, pickle_file: Path) -> None:
        assert guess_flavor(pickle_file) == "sklearn"

    def test_pickle_is_refused_without_trust(self, pickle_file: Path) -> None:
        with pytest.raises(UntrustedArtifact, match="is a pickle"):
            load_runtime("sklearn", pickle_file)

    def test_pickle_is_loaded_with_trust(self, pickle_file: Path, data: Any) -> None:
        x, _ = data
        runtime = load_runtime("sklearn", pickle_file, trust=True)
        assert runtime.predict(x).shape == (len(x),)

    def test_pickle_is_detected_by_content_whatever_its_name(
        self, pickle_file: Path, tmp_path: Path
    ) -> None:
        disguised = tmp_path / "model.skops"
        disguised.write_bytes(pickle_file.read_bytes())
        with pytest.raises(UntrustedArtifact):
            load_runtime("sklearn", disguised)

    def test_unnamed_pickle_is_guessed_from_its_header(
        self, pickle_file: Path, tmp_path: Path
    ) -> None:
        unnamed = tmp_path / "blob"
        unnamed.write_bytes(pickle_file.read_bytes())
        assert guess_flavor(unnamed) == "sklearn"


class TestXGBoost:
    def test_classifier_round_trip_keeps_predict_and_proba(self, data: Any, tmp_path: Path) -> None:
        xgb = pytest.importorskip("xgboost")
        x, y = data
        model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
        saved, runtime = round_trip(model, tmp_path)
        assert saved.path.name == "model.xgbclassifier.ubj"
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))

    def test_renamed_classifier_file_still_loads_as_a_classifier(
        self, data: Any, tmp_path: Path
    ) -> None:
        xgb = pytest.importorskip("xgboost")
        x, y = data
        model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
        blob = renamed(save_model(model, tmp_path).path)
        runtime = load_runtime(guess_flavor(blob), blob)
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))

    def test_booster_round_trip_gives_the_same_predictions(self, data: Any, tmp_path: Path) -> None:
        xgb = pytest.importorskip("xgboost")
        x, y = data
        booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=3)
        saved, runtime = round_trip(booster, tmp_path)
        assert saved.path.name == "model.ubj"
        np.testing.assert_allclose(runtime.predict(x), booster.inplace_predict(x))
        assert not runtime.has_proba


class TestLightGBM:
    def test_classifier_with_string_labels_keeps_its_labels(
        self, data: Any, tmp_path: Path
    ) -> None:
        lgb = pytest.importorskip("lightgbm")
        x, y = data
        labels = np.where(y == 1, "fraud", "ok")
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, labels)
        saved, runtime = round_trip(model, tmp_path)
        assert saved.path.name == "model.lgb.txt"
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))

    def test_binary_classifier_predict_proba_matches(self, data: Any, tmp_path: Path) -> None:
        lgb = pytest.importorskip("lightgbm")
        x, y = data
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
        _, runtime = round_trip(model, tmp_path)
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))

    def test_multiclass_predict_proba_matches(self, data: Any, tmp_path: Path) -> None:
        lgb = pytest.importorskip("lightgbm")
        x, _ = data
        y3 = np.digitize(x[:, 0], [-0.5, 0.5])
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y3)
        _, runtime = round_trip(model, tmp_path)
        np.testing.assert_allclose(runtime.predict_proba(x), model.predict_proba(x))
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))

    def test_renamed_classifier_file_keeps_its_labels(self, data: Any, tmp_path: Path) -> None:
        lgb = pytest.importorskip("lightgbm")
        x, y = data
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y + 10)
        blob = renamed(save_model(model, tmp_path).path)
        runtime = load_runtime(guess_flavor(blob), blob)
        np.testing.assert_array_equal(runtime.predict(x), model.predict(x))

    def test_regressor_round_trip_gives_the_same_predictions(
        self, data: Any, tmp_path: Path
    ) -> None:
        lgb = pytest.importorskip("lightgbm")
        x, _ = data
        model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(x, x[:, 0])
        _, runtime = round_trip(model, tmp_path)
        np.testing.assert_allclose(runtime.predict(x), model.predict(x))
        assert not runtime.has_proba


@pytest.fixture(scope="module")
def torch_model() -> Any:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def torch_reference(model: Any, x: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy()


class TestTorch:
    def test_exported_program_predicts_like_the_module(
        self, torch_model: Any, data: Any, tmp_path: Path
    ) -> None:
        x, _ = data
        saved, runtime = round_trip(torch_model, tmp_path, input_example=x[:1])
        assert saved.path.name == "model.pt2"
        np.testing.assert_allclose(runtime.predict(x), torch_reference(torch_model, x), rtol=1e-5)

    def test_exported_program_takes_any_batch_size(
        self, torch_model: Any, data: Any, tmp_path: Path
    ) -> None:
        x, _ = data
        _, runtime = round_trip(torch_model, tmp_path, input_example=x[:8])
        assert runtime.predict(x[:3]).shape == (3, 2)
        assert runtime.predict(x[:1]).shape == (1, 2)

    def test_renamed_exported_program_is_guessed_and_loaded(
        self, torch_model: Any, data: Any, tmp_path: Path
    ) -> None:
        x, _ = data
        blob = renamed(save_model(torch_model, tmp_path, input_example=x[:2]).path)
        runtime = load_runtime(guess_flavor(blob), blob)
        np.testing.assert_allclose(runtime.predict(x), torch_reference(torch_model, x), rtol=1e-5)

    def test_module_without_input_example_is_refused(
        self, torch_model: Any, tmp_path: Path
    ) -> None:
        with pytest.raises(InvalidInput, match="input_example"):
            save_model(torch_model, tmp_path)

    @pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
    def test_torchscript_module_round_trips(
        self, torch_model: Any, data: Any, tmp_path: Path
    ) -> None:
        import torch

        x, _ = data
        saved, runtime = round_trip(torch.jit.script(torch_model), tmp_path)
        assert saved.path.name == "model.torchscript.pt"
        np.testing.assert_allclose(runtime.predict(x), torch_reference(torch_model, x), rtol=1e-5)

    def test_torch_has_no_predict_proba(self, torch_model: Any, data: Any, tmp_path: Path) -> None:
        x, _ = data
        _, runtime = round_trip(torch_model, tmp_path, input_example=x[:2])
        with pytest.raises(InvalidInput, match="no predict_proba"):
            runtime.predict_proba(x)


@pytest.fixture(scope="module")
def onnx_model() -> Any:
    """logits = x @ W + b, probabilities = softmax(logits), built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(4, 2)).astype(np.float32)
    bias = np.array([0.1, -0.1], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("x", tp.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("logits", tp.FLOAT, [None, 2]),
            helper.make_tensor_value_info("probabilities", tp.FLOAT, [None, 2]),
        ],
        [onnx.numpy_helper.from_array(weights, "W"), onnx.numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model.doc_string = "test"
    return model


def onnx_reference(model: Any, x: Any) -> Any:
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return x.astype(np.float32) @ weights["W"] + weights["B"]


class TestOnnx:
    def test_round_trip_predicts_the_first_output(
        self, onnx_model: Any, data: Any, tmp_path: Path
    ) -> None:
        pytest.importorskip("onnxruntime")
        x, _ = data
        saved, runtime = round_trip(onnx_model, tmp_path)
        assert saved.path.name == "model.onnx"
        np.testing.assert_allclose(runtime.predict(x), onnx_reference(onnx_model, x), rtol=1e-5)

    def test_renamed_file_is_guessed_from_its_header(self, onnx_model: Any, tmp_path: Path) -> None:
        blob = renamed(save_model(onnx_model, tmp_path).path)
        assert guess_flavor(blob) == "onnx"

    def test_probabilities_output_serves_predict_proba(
        self, onnx_model: Any, data: Any, tmp_path: Path
    ) -> None:
        pytest.importorskip("onnxruntime")
        x, _ = data
        _, runtime = round_trip(onnx_model, tmp_path)
        assert runtime.has_proba
        np.testing.assert_allclose(runtime.predict_proba(x).sum(axis=1), 1.0, rtol=1e-5)

    def test_dataframe_input_is_cast_to_the_declared_type(
        self, onnx_model: Any, data: Any, tmp_path: Path
    ) -> None:
        pytest.importorskip("onnxruntime")
        x, _ = data
        _, runtime = round_trip(onnx_model, tmp_path)
        out = runtime.predict(pd.DataFrame(x))  # float64 in, float32 model
        np.testing.assert_allclose(out, onnx_reference(onnx_model, x), rtol=1e-5)


class TestPyfunc:
    def test_round_trip_calls_the_function_when_trusted(self, data: Any, tmp_path: Path) -> None:
        x, _ = data
        saved, runtime = round_trip(double_sum, tmp_path, trust=True)
        assert json.loads(saved.path.read_text()) == {"entrypoint": f"{__name__}:double_sum"}
        np.testing.assert_allclose(runtime.predict(x), x.sum(axis=1) * 2)

    def test_lambda_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput, match="lambda"):
            save_model(lambda batch: batch, tmp_path)

    def test_nested_function_is_refused(self, tmp_path: Path) -> None:
        def inner(batch: Any) -> Any:
            return batch

        with pytest.raises(InvalidInput, match="nested"):
            save_model(inner, tmp_path)

    @pytest.mark.parametrize(
        "entrypoint",
        [
            f"{__name__}:double_sum",  # your own module: still code, still needs trust
            "subprocess:getoutput",
            "pandas:read_pickle",
            "joblib:load",
            "numpy.lib.npyio:load",
            "os:system",
            "tests.unit.gadget_module:f",  # would run code at import: never imported
        ],
    )
    def test_every_entrypoint_is_refused_without_trust_before_its_module_is_imported(
        self, tmp_path: Path, entrypoint: str
    ) -> None:
        path = tmp_path / "model.pyfunc.json"
        path.write_text(json.dumps({"entrypoint": entrypoint}))
        module = entrypoint.split(":")[0]
        was_imported = module in sys.modules
        with pytest.raises(UntrustedArtifact, match="trust"):
            load_runtime("pyfunc", path)
        assert (module in sys.modules) == was_imported

    def test_missing_module_is_a_dependency_error(self, tmp_path: Path) -> None:
        path = tmp_path / "model.pyfunc.json"
        path.write_text(json.dumps({"entrypoint": "no_such_module_here:f"}))
        with pytest.raises(DependencyMissing):
            load_runtime("pyfunc", path, trust=True)


class TestGuessAndLoad:
    def test_lightgbm_text_is_guessed_from_its_first_line(self, tmp_path: Path) -> None:
        path = tmp_path / "booster.txt"
        path.write_text("tree\nversion=v4\n")
        assert guess_flavor(path) == "lightgbm"

    def test_unrecognised_file_asks_for_a_flavor(self, tmp_path: Path) -> None:
        path = tmp_path / "model.bin"
        path.write_bytes(b"\x00\x01 whatever")
        with pytest.raises(InvalidInput, match="name it explicitly"):
            guess_flavor(path)

    def test_unknown_flavor_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput, match="unknown flavor"):
            load_runtime("caffe", tmp_path)

    def test_missing_file_is_artifact_missing(self, tmp_path: Path) -> None:
        with pytest.raises(ArtifactMissing):
            load_runtime("sklearn", tmp_path / "nope.skops")

    def test_folder_with_one_model_file_is_loaded(self, data: Any, tmp_path: Path) -> None:
        x, y = data
        saved = save_model(LogisticRegression().fit(x, y), tmp_path / "m")
        assert load_runtime(saved.flavor, tmp_path / "m").predict(x).shape == (len(x),)

    def test_folder_with_two_files_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "a.skops").write_bytes(b"")
        (tmp_path / "b.skops").write_bytes(b"")
        with pytest.raises(InvalidInput, match="exactly one"):
            load_runtime("sklearn", tmp_path)

    def test_missing_engine_names_the_extra_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "model.lgb.txt"
        path.write_text("tree\n")
        monkeypatch.setitem(sys.modules, "lightgbm", None)  # makes `import lightgbm` fail
        with pytest.raises(DependencyMissing, match=r"modelplane\[lightgbm\]"):
            load_runtime("lightgbm", path)

    def test_every_flavor_has_a_module(self) -> None:
        assert set(FLAVORS) == {"sklearn", "onnx", "xgboost", "lightgbm", "torch", "pyfunc"}


class TestLazyImports:
    def test_importing_runtimes_imports_no_engine(self) -> None:
        engines = ["sklearn", "skops", "onnxruntime", "onnx", "xgboost", "lightgbm", "torch"]
        code = (
            "import sys, modelplane.runtimes, modelplane.core.signature\n"
            f"loaded = [m for m in {[*engines, 'pandas']!r} if m in sys.modules]\n"
            "assert not loaded, loaded\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONPATH": str(SRC)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
