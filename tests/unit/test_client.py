"""The Python API end to end on embedded defaults: log, load, predict, refuse what is unsafe."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelplane
from modelplane.auth.commands import CreateToken, RevokeToken
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.errors import (
    ArtifactCorrupted,
    ArtifactMissing,
    Conflict,
    Forbidden,
    InvalidInput,
    SignatureMismatch,
    TokenNotFound,
    Unauthorized,
    UntrustedArtifact,
)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(200, 3))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.fixture
def fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


class TestLogAndLoad:
    def test_logged_model_loads_by_alias_and_predicts_the_same(
        self, client: Client, fitted: LogisticRegression
    ) -> None:
        version = client.log_model(
            fitted, name="fraud", input_example=X, alias="champion", metrics={"auc": 0.9}
        )
        assert (version.version, version.flavor, version.aliases) == (1, "sklearn", ("champion",))
        loaded = client.load_model("models:/fraud@champion")
        np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
        np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))

    def test_signature_from_a_2d_array_is_one_tensor(
        self, client: Client, fitted: LogisticRegression
    ) -> None:
        version = client.log_model(fitted, name="fraud", input_example=X)
        assert version.signature is not None
        assert version.signature["inputs"] == [
            {"name": "input-0", "dtype": "float64", "shape": [-1, 3]}
        ]

    def test_signature_from_a_dataframe_has_one_input_per_column(self, client: Client) -> None:
        frame = pd.DataFrame(X, columns=["amount", "hour", "distance"])
        model = LogisticRegression().fit(frame, Y)
        version = client.log_model(model, name="fraud", input_example=frame)
        assert version.signature is not None
        assert [i["name"] for i in version.signature["inputs"]] == ["amount", "hour", "distance"]
        loaded = client.load_model("fraud")
        records = frame.head(2).to_dict(orient="records")
        np.testing.assert_array_equal(loaded.predict(records), model.predict(frame.head(2)))

    def test_input_that_does_not_match_the_signature_names_the_problem(
        self, client: Client, fitted: LogisticRegression
    ) -> None:
        client.log_model(fitted, name="fraud", input_example=X)
        loaded = client.load_model("fraud/1")
        with pytest.raises(SignatureMismatch) as info:
            loaded.predict(np.zeros((2, 5)))
        assert info.value.field == "input-0"

    def test_missing_column_names_the_column(self, client: Client) -> None:
        frame = pd.DataFrame(X, columns=["amount", "hour", "distance"])
        client.log_model(LogisticRegression().fit(frame, Y), name="fraud", input_example=frame)
        loaded = client.load_model("fraud")
        with pytest.raises(SignatureMismatch) as info:
            loaded.predict(frame.drop(columns=["hour"]))
        assert info.value.field == "hour"

    def test_lineage_params_and_tags_are_kept(
        self, client: Client, fitted: LogisticRegression
    ) -> None:
        v = client.log_model(
            fitted,
            name="fraud",
            params={"C": 1.0},
            tags={"team": "risk"},
            lineage={
                "data_sources": [{"uri": "file:///tx.parquet", "hash": "sha256:00"}],
                "code_commit": "abc123",
            },
        )
        got = client.get_version("fraud", v.version)
        assert got.params == {"C": "1.0"}
        assert got.lineage.data_sources[0].uri == "file:///tx.parquet"
        assert got.lineage.code_commit == "abc123"

    def test_module_level_api_uses_modelplane_home(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fitted: LogisticRegression
    ) -> None:
        monkeypatch.setenv("MODELPLANE_HOME", str(tmp_path / "mphome"))
        modelplane.log_model(fitted, name="fraud", input_example=X, alias="champion")
        loaded = modelplane.load_model("models:/fraud@champion")
        assert loaded.version.version == 1
        assert (tmp_path / "mphome" / "modelplane.db").exists()


class TestArtifactSafety:
    def test_corrupted_artifact_fails_loading_naming_the_version(
        self, client: Client, platform: Platform, fitted: LogisticRegression
    ) -> None:
        v = client.log_model(fitted, name="fraud")
        obj = Path(platform.settings.resolved_artifacts) / "objects" / v.digest[:2] / v.digest
        obj.write_bytes(obj.read_bytes()[:-10] + b"0123456789")
        with pytest.raises(ArtifactCorrupted, match="fraud/1"):
            client.load_model("fraud")

    def test_missing_artifact_fails_loading_naming_the_version(
        self, client: Client, platform: Platform, fitted: LogisticRegression
    ) -> None:
        v = client.log_model(fitted, name="fraud")
        (Path(platform.settings.resolved_artifacts) / "objects" / v.digest[:2] / v.digest).unlink()
        with pytest.raises(ArtifactMissing, match="fraud/1"):
            client.load_model("fraud")

    def test_pickle_is_refused_without_trust_and_nothing_is_registered(
        self, client: Client, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(fitted))
        with pytest.raises(UntrustedArtifact):
            client.register_file("fraud", path)
        assert client.list_models().items == []
        assert client.list_events().items == []

    def test_pickle_with_trust_is_registered_and_the_grant_recorded(
        self, client: Client, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(fitted))
        v = client.register_file("fraud", path, trust=True)
        assert v.trusted_by is not None
        assert v.trusted_by.startswith("local:")
        assert v.trusted_at is not None
        stored = client.get_version("fraud", 1)
        assert (stored.trusted_by, stored.trusted_at) == (v.trusted_by, v.trusted_at)
        assert stored.to_dict()["trusted_by"] == v.trusted_by
        registered = [e for e in client.list_events().items if e.type == "ModelVersionRegistered"]
        assert registered[0].payload["trusted_by"] == v.trusted_by
        # Loading honours the record; an explicit trust=False still refuses.
        np.testing.assert_array_equal(client.load_model("fraud").predict(X), fitted.predict(X))
        with pytest.raises(UntrustedArtifact):
            client.load_model("fraud", trust=False)

    def test_a_version_registered_without_trust_records_nobody(
        self, client: Client, fitted: LogisticRegression
    ) -> None:
        v = client.log_model(fitted, name="fraud")
        assert (v.trusted_by, v.trusted_at) == (None, None)
        assert client.get_version("fraud", 1).trusted_by is None

    def test_a_pyfunc_model_always_needs_trust(self, client: Client) -> None:
        from tests.e2e import serving_models

        with pytest.raises(UntrustedArtifact, match="trust"):
            client.log_model(serving_models.row_sums, name="sums", input_example=X)
        assert client.list_models().items == []
        v = client.log_model(serving_models.row_sums, name="sums", input_example=X, trust=True)
        assert v.trusted_by is not None
        np.testing.assert_allclose(client.load_model("sums").predict(X), X.sum(axis=1))

    def test_file_that_is_not_a_model_is_refused(self, client: Client, tmp_path: Path) -> None:
        path = tmp_path / "model.onnx"
        path.write_bytes(b"not a model at all")
        with pytest.raises(InvalidInput):
            client.register_file("fraud", path)
        assert client.list_models().items == []

    def test_missing_file_is_invalid_input(self, client: Client, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput):
            client.register_file("fraud", tmp_path / "nope.skops")


class TestTokens:
    def test_token_secret_is_shown_once_and_only_its_hash_stored(self, platform: Platform) -> None:
        created = platform.bus.handle(CreateToken(name="ci", scope="write"))
        assert created.secret.startswith("mp_")
        listed = platform.tokens.list_tokens()
        assert [t.id for t in listed] == [created.token.id]
        assert created.secret not in repr(listed)
        assert listed[0].hash != created.secret

    def test_scopes_are_ordered_read_write_admin(self, platform: Platform) -> None:
        write = platform.bus.handle(CreateToken(name="w", scope="write")).secret
        assert platform.tokens.authenticate(write, "read").scope == "write"
        assert platform.tokens.authenticate(write, "write").scope == "write"
        with pytest.raises(Forbidden):
            platform.tokens.authenticate(write, "admin")

    def test_missing_wrong_and_revoked_tokens_are_unauthorized(self, platform: Platform) -> None:
        created = platform.bus.handle(CreateToken(name="w", scope="admin"))
        with pytest.raises(Unauthorized):
            platform.tokens.authenticate(None, "read")
        with pytest.raises(Unauthorized):
            platform.tokens.authenticate(created.secret + "x", "read")
        platform.bus.handle(RevokeToken(token_id=created.token.id))
        with pytest.raises(Unauthorized):
            platform.tokens.authenticate(created.secret, "read")
        with pytest.raises(Conflict):
            platform.bus.handle(RevokeToken(token_id=created.token.id))

    def test_unknown_token_and_bad_scope(self, platform: Platform) -> None:
        with pytest.raises(TokenNotFound):
            platform.bus.handle(RevokeToken(token_id="nope"))
        with pytest.raises(InvalidInput):
            platform.bus.handle(CreateToken(name="x", scope="root"))

    def test_token_events_are_written(self, platform: Platform) -> None:
        created = platform.bus.handle(CreateToken(name="w", scope="read"))
        platform.bus.handle(RevokeToken(token_id=created.token.id))
        events = platform.events.list_events(aggregate_type="token").items
        assert [e.type for e in events] == ["TokenCreated", "TokenRevoked"]
        assert "secret" not in str(events[0].payload)


class TestOnnxSignature:
    def test_onnx_model_gets_the_signature_its_graph_declares(self, client: Client) -> None:
        pytest.importorskip("onnxruntime")
        from onnx import TensorProto, helper

        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
        w = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [1, 2, 3])
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w]
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9
        version = client.log_model(model, name="onx")
        assert version.signature == {
            "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 1]}],
        }
        loaded = client.load_model("onx")
        np.testing.assert_allclose(loaded.predict(np.ones((2, 3), dtype=np.float32)), [[6], [6]])
        with pytest.raises(SignatureMismatch) as info:
            loaded.predict(np.ones((2, 4)))
        assert info.value.field == "x"


class TestGarbageCollection:
    def test_only_unreferenced_old_artifacts_are_collected(
        self, client: Client, platform: Platform, fitted: LogisticRegression, tmp_path: Path
    ) -> None:
        kept = client.log_model(fitted, name="fraud")
        orphan_file = tmp_path / "orphan.onnx"
        orphan_file.write_bytes(b"left behind by a failed registration")
        orphan = platform.artifacts.put(orphan_file)
        assert client.collect_garbage(older_than_s=3600) == []  # too young: may be in flight
        assert client.collect_garbage(older_than_s=0, dry_run=True) == [orphan.digest]
        assert platform.artifacts.exists(orphan.digest)
        assert client.collect_garbage(older_than_s=0) == [orphan.digest]
        assert not platform.artifacts.exists(orphan.digest)
        assert platform.artifacts.exists(kept.digest)
        client.load_model("fraud")
