"""The registry's use cases called directly, without Client: the bus's handle, the views and the
artifact store of an in-process bootstrap over a tmp SQLite database are all they take."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.bootstrap import Platform
from modelplane.errors import Conflict, InvalidInput, UntrustedArtifact
from modelplane.registry import usecases
from modelplane.registry.model import GATE_TAG
from modelplane.traffic.gates import SmokeCase
from modelplane.traffic.gating import GatePorts, evaluate_gates

RNG = np.random.default_rng(11)
X = RNG.normal(size=(100, 3))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


@pytest.fixture
def fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


class TestLogAndLoad:
    def test_a_logged_model_loads_by_alias_and_predicts_the_same(
        self, platform: Platform, fitted: LogisticRegression
    ) -> None:
        version = usecases.log_model(
            platform.bus.handle,
            platform.artifacts,
            fitted,
            name="fraud",
            input_example=X,
            alias="champion",
            metrics={"auc": 0.9},
        )
        assert (version.version, version.flavor, version.aliases) == (1, "sklearn", ("champion",))
        assert version.signature is not None
        loaded = usecases.load_model(
            platform.registry, platform.artifacts, "models:/fraud@champion"
        )
        assert isinstance(loaded, usecases.LoadedModel)
        assert (loaded.name, loaded.flavor, loaded.version.version) == ("fraud", "sklearn", 1)
        np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
        assert platform.registry.get_model("fraud").aliases == {"champion": 1}

    def test_a_bad_alias_is_refused_before_anything_is_stored(
        self, platform: Platform, fitted: LogisticRegression
    ) -> None:
        with pytest.raises(InvalidInput):
            usecases.log_model(
                platform.bus.handle, platform.artifacts, fitted, name="fraud", alias="latest"
            )
        assert list(platform.artifacts.objects()) == []
        assert platform.registry.list_models().items == []

    def test_register_model_then_a_file_without_creating_the_model(
        self, platform: Platform, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        from modelplane.runtimes import save_model

        model = usecases.register_model(platform.bus.handle, "fraud", tags={"team": "risk"})
        assert (model.name, model.tags) == ("fraud", {"team": "risk"})
        with pytest.raises(Conflict):
            usecases.register_model(platform.bus.handle, "fraud")
        saved = save_model(fitted, tmp_path / "saved")
        version = usecases.register_file(
            platform.bus.handle, platform.artifacts, "fraud", saved.path, create_model=False
        )
        assert (version.version, version.flavor, version.trusted_by) == (1, "sklearn", None)
        loaded = usecases.load_model(platform.registry, platform.artifacts, "fraud/1")
        np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


class TestTrust:
    def test_a_pickle_needs_trust_and_the_version_records_who_gave_it(
        self, platform: Platform, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(fitted))
        with pytest.raises(UntrustedArtifact):
            usecases.register_file(platform.bus.handle, platform.artifacts, "fraud", path)
        assert platform.registry.list_models().items == []
        version = usecases.register_file(
            platform.bus.handle,
            platform.artifacts,
            "fraud",
            path,
            trust=True,
            trusted_by="token:ci",
        )
        assert version.trusted_by == "token:ci"
        # The version's record decides by default; the caller may refuse it here and now.
        loaded = usecases.load_model(platform.registry, platform.artifacts, "fraud")
        np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
        with pytest.raises(UntrustedArtifact):
            usecases.load_model(platform.registry, platform.artifacts, "fraud", trust=False)

    def test_trust_given_without_a_name_is_the_local_user(
        self, platform: Platform, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(fitted))
        version = usecases.register_file(
            platform.bus.handle, platform.artifacts, "fraud", path, trust=True
        )
        assert version.trusted_by is not None
        assert version.trusted_by.startswith("local:")


class TestGarbage:
    def test_only_unreferenced_artifacts_older_than_the_grace_period_go(
        self, platform: Platform, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        kept = usecases.log_model(platform.bus.handle, platform.artifacts, fitted, name="fraud")
        orphan_file = tmp_path / "orphan.onnx"
        orphan_file.write_bytes(b"left behind by a failed registration")
        orphan = platform.artifacts.put(orphan_file)
        written = dict(platform.artifacts.objects())[orphan.digest]
        assert written is not None

        def collect(now: float, *, dry_run: bool = False) -> list[str]:
            return usecases.collect_garbage(
                platform.registry,
                platform.artifacts,
                older_than_s=60,
                dry_run=dry_run,
                now=lambda: now,
            )

        assert collect(written + 30) == []  # younger than the grace period: may be in flight
        assert collect(written + 120, dry_run=True) == [orphan.digest]
        assert platform.artifacts.exists(orphan.digest)
        assert collect(written + 120) == [orphan.digest]
        assert not platform.artifacts.exists(orphan.digest)
        assert platform.artifacts.exists(kept.digest)


class TestRegistryAccess:
    def test_it_fits_the_gates_ports_and_records_their_result(
        self, platform: Platform, fitted: LogisticRegression
    ) -> None:
        usecases.log_model(
            platform.bus.handle, platform.artifacts, fitted, name="fraud", input_example=X
        )
        ports: GatePorts = usecases.RegistryAccess(
            platform.bus.handle, platform.registry, platform.artifacts
        )
        smoke = (SmokeCase(input=X[0].tolist(), expect=int(fitted.predict(X[:1])[0])),)
        given = {"smoke": smoke, "latency_budget_ms": 60_000.0}
        report = evaluate_gates(ports, "fraud", 1, given, save=True)
        assert report.passed
        version = platform.registry.get_version("fraud", 1)
        assert version.tags[GATE_TAG] == "passed"
        assert "gate.config" in platform.registry.get_model("fraud").tags
