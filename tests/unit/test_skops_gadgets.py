"""A gallery of gadget artifacts: scikit-learn models whose "safe" skops files would write
files, read files or run code at load or predict time. Without an admin's trust each one is
refused before anything of it runs, and nothing is written; real models still load.

The trust policy is an allowlist (runtimes/skops_policy.py): these tests try the class of
fault — any callable reference outside a short list of pure functions — not one case.
"""

from __future__ import annotations

import functools
import operator
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.errors import UntrustedArtifact
from modelplane.runtimes import load_runtime, save_model
from modelplane.runtimes.skops_policy import is_allowed, refused

RNG = np.random.default_rng(3)
X = RNG.normal(size=(60, 3))
Y = (X[:, 0] > 0).astype(int)


class Passthrough(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A user's own class: code the allowlist cannot vouch for."""

    def fit(self, X: Any, y: Any = None) -> Passthrough:
        return self

    def transform(self, X: Any) -> Any:
        return X


def gadgets(target: Path) -> dict[str, Any]:
    """Each gadget would write ``target`` (or run a command) when its model predicts."""
    t = str(target)
    return {
        "partial of numpy.save": FunctionTransformer(functools.partial(np.save, t)),
        "partial of numpy.savetxt": FunctionTransformer(functools.partial(np.savetxt, t)),
        "numpy.savetxt with kw_args": FunctionTransformer(np.savetxt, kw_args={"fname": t}),
        "methodcaller tofile": FunctionTransformer(operator.methodcaller("tofile", t)),
        "attrgetter chain": FunctionTransformer(operator.attrgetter("__class__.__init__")),
        "itemgetter": FunctionTransformer(operator.itemgetter(0)),
        "partial of os.system": FunctionTransformer(functools.partial(os.system, f"touch {t}")),
        "subprocess through a partial": FunctionTransformer(
            functools.partial(subprocess.call, ["touch", t])
        ),
        "eval": FunctionTransformer(eval),
        "partial of exec": FunctionTransformer(functools.partial(exec, f"open({t!r}, 'w')")),
        "builtins.open": FunctionTransformer(open),
        "builtins.getattr": FunctionTransformer(functools.partial(getattr, "text")),
        "builtins.print": FunctionTransformer(print),
        "builtins.__import__": FunctionTransformer(__import__),
        "numpy.load": FunctionTransformer(np.load),
        "inverse_func os.system": FunctionTransformer(np.log1p, inverse_func=os.system),
        "inverse_func partial of numpy.save": FunctionTransformer(
            np.log1p, inverse_func=functools.partial(np.save, t)
        ),
        "nested pipeline in a column transformer": ColumnTransformer(
            [
                (
                    "deep",
                    make_pipeline(
                        StandardScaler(), FunctionTransformer(functools.partial(np.save, t))
                    ),
                    [0, 1],
                )
            ]
        ),
        "partial of a pure function beside a writer": make_pipeline(
            FunctionTransformer(functools.partial(np.clip, a_min=-1, a_max=1)),
            FunctionTransformer(functools.partial(np.save, t)),
        ),
        "a user's own class": Passthrough(),
        "text vectorizer reading the files requests name": CountVectorizer(input="filename"),
    }


def _dump(model: Any, folder: Path) -> Path:
    try:
        return save_model(model, folder).path
    except TypeError:  # some gadgets do not pickle-reduce through skops: skip them honestly
        pytest.skip("skops cannot save this object")


class TestGadgetsAreRefusedWithoutTrust:
    @pytest.mark.parametrize("kind", list(gadgets(Path("/x"))))
    def test_load_refuses_and_writes_nothing(self, kind: str, tmp_path: Path) -> None:
        target = tmp_path / "written.pth"
        transformer = gadgets(target)[kind]
        model = Pipeline([("gadget", transformer), ("clf", LogisticRegression())])
        path = _dump(model, tmp_path / "artifact")
        before = set(tmp_path.rglob("*"))
        with pytest.raises(UntrustedArtifact):
            load_runtime("sklearn", path)
        assert not target.exists()
        assert set(tmp_path.rglob("*")) == before  # nothing written at load

    @pytest.mark.parametrize("kind", ["partial of numpy.save", "eval", "a user's own class"])
    def test_register_refuses_and_stores_nothing(self, kind: str, tmp_path: Path) -> None:
        target = tmp_path / "written.pth"
        model = Pipeline([("gadget", gadgets(target)[kind]), ("clf", LogisticRegression())])
        path = _dump(model, tmp_path / "artifact")
        client = Client(Settings(home=tmp_path / "home"))
        try:
            with pytest.raises(UntrustedArtifact):
                client.register_file("gadget", path)
            with pytest.raises(UntrustedArtifact):
                client.log_model(model, name="gadget")
            assert client.list_models().items == []
            assert not target.exists()
        finally:
            client.close()

    def test_a_corrupt_tree_predictor_is_refused(self, tmp_path: Path) -> None:
        model = HistGradientBoostingClassifier(max_iter=2).fit(X, Y)
        nodes = model._predictors[0][0].nodes
        inner = np.flatnonzero(~nodes["is_leaf"].astype(bool))
        nodes["left"][inner[0]] = 10**6  # an index scikit-learn would follow unchecked
        path = save_model(model, tmp_path).path
        with pytest.raises(UntrustedArtifact, match="outside the tree"):
            load_runtime("sklearn", path)

    def test_a_pipeline_caching_to_disk_is_refused(self, tmp_path: Path) -> None:
        model = Pipeline(
            [("s", StandardScaler()), ("c", LogisticRegression())], memory=str(tmp_path / "cache")
        ).fit(X, Y)
        path = save_model(model, tmp_path / "artifact").path
        with pytest.raises(UntrustedArtifact, match="memory"):
            load_runtime("sklearn", path)


class TestRealModelsLoadWithoutTrust:
    @pytest.mark.parametrize(
        "model",
        [
            GradientBoostingClassifier(n_estimators=5),
            RandomForestClassifier(n_estimators=5),
            HistGradientBoostingClassifier(max_iter=5),
            KNeighborsClassifier(algorithm="kd_tree"),
            KNeighborsClassifier(algorithm="ball_tree"),
            make_pipeline(StandardScaler(), LogisticRegression()),
            make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
            make_pipeline(
                FunctionTransformer(functools.partial(np.clip, a_min=-2, a_max=2)),
                LogisticRegression(),
            ),
        ],
        ids=lambda m: type(m).__name__ if not isinstance(m, Pipeline) else "pipeline",
    )
    def test_numeric_models(self, model: Any, tmp_path: Path) -> None:
        fitted = model.fit(np.abs(X), Y)
        runtime = load_runtime("sklearn", save_model(fitted, tmp_path).path)
        np.testing.assert_array_equal(runtime.predict(np.abs(X)), fitted.predict(np.abs(X)))

    def test_categorical_models(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"a": X[:, 0], "c": pd.Categorical(np.where(X[:, 1] > 0, "x", "y"))})
        hgb = HistGradientBoostingClassifier(max_iter=3, categorical_features="from_dtype")
        hgb.fit(frame, Y)  # keeps partial(check_array, …): pure, so allowed
        runtime = load_runtime("sklearn", save_model(hgb, tmp_path / "hgb").path)
        np.testing.assert_array_equal(runtime.predict(frame), hgb.predict(frame))
        onehot = make_pipeline(
            ColumnTransformer(
                [("c", OneHotEncoder(handle_unknown="ignore"), ["c"])], remainder="passthrough"
            ),
            LogisticRegression(),
        ).fit(frame.astype({"c": str}), Y)
        runtime = load_runtime("sklearn", save_model(onehot, tmp_path / "oh").path)
        np.testing.assert_array_equal(
            runtime.predict(frame.astype({"c": str})), onehot.predict(frame.astype({"c": str}))
        )

    def test_a_gadget_loads_only_with_trust(self, tmp_path: Path) -> None:
        model = make_pipeline(Passthrough(), LogisticRegression()).fit(X, Y)
        runtime = load_runtime("sklearn", save_model(model, tmp_path).path, trust=True)
        np.testing.assert_array_equal(runtime.predict(X), model.predict(X))


class TestAllowlist:
    @pytest.mark.parametrize(
        "name",
        [
            "sklearn.linear_model._logistic.LogisticRegression",
            "sklearn.feature_extraction.text.CountVectorizer",
            "sklearn.tree._tree.Tree",
            "sklearn.utils.validation.check_array",
            "sklearn.metrics._dist_metrics.EuclideanDistance64",
            "scipy.sparse._csr.csr_matrix",
            "builtins.dict",
        ],
    )
    def test_allowed(self, name: str) -> None:
        assert is_allowed(name)

    @pytest.mark.parametrize(
        "name",
        [
            "functools.partial",  # only beside pure functions (see refused)
            "operator.methodcaller",
            "operator.attrgetter",
            "builtins.getattr",
            "builtins.eval",
            "numpy.save",
            "numpy.memmap",
            "numpy.lib.npyio.NpzFile",
            "posix.system",
            "sklearn.utils.validation.column_or_1d",  # a function, not on the short list
            "sklearn.utils._testing.TempMemmap",
            "sklearn.externals._arff.ArffDecoder",
            "sklearn.datasets.fetch_openml",
            "sklearn.no_such_module.Thing",
            "sklearn.linear_model.__import__",
            "tests.unit.test_skops_gadgets.Passthrough",
        ],
    )
    def test_refused(self, name: str) -> None:
        assert not is_allowed(name)

    def test_partial_is_allowed_only_beside_pure_functions(self) -> None:
        pure = ["functools.partial", "sklearn.utils.validation.check_array"]
        assert refused(pure) == []
        assert refused([*pure, "numpy.save"]) == ["functools.partial", "numpy.save"]
