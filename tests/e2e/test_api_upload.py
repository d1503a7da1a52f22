"""Uploading model files over REST, and downloading verified artifacts.

An upload is loaded once before anything is stored, so a pickle or a pyfunc file (unless an
admin token asks for ``trust``: a write token never grants it), or a file name that would escape
its folder, leaves no model, no version, no event row and no stored object behind.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.registry.commands import RegisterVersion
from tests.e2e.test_api import V1, Api, assert_error, open_api, register_versions, save_skops


@pytest.fixture
def api(platform: Platform) -> Iterator[Api]:
    yield from open_api(create_app(platform))


def _token(platform: Platform, scope: str) -> str:
    secret: str = platform.bus.handle(CreateToken(name=f"up-{scope}", scope=scope)).secret
    return secret


@pytest.fixture
def write(platform: Platform) -> str:
    return _token(platform, "write")


@pytest.fixture
def skops_file(tmp_path: Path) -> Path:
    return save_skops(tmp_path / "saved")


class TestUpload:
    def upload(
        self,
        api: Api,
        token: str,
        filename: str,
        content: bytes,
        metadata: dict[str, Any] | str | None = None,
        name: str = "fraud",
    ) -> httpx.Response:
        data = {}
        if metadata is not None:
            data["metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
        return api.post(
            f"{V1}/models/{name}/versions",
            files={"file": (filename, content, "application/octet-stream")},
            data=data,
            token=token,
        )

    def test_skops_upload_registers_a_loadable_version(
        self, api: Api, client: Client, write: str, skops_file: Path
    ) -> None:
        metadata = {
            "metrics": {"auc": 0.93},
            "params": {"C": 1.0},
            "tags": {"team": "risk"},
            "lineage": {"data_sources": [{"uri": "data.parquet", "hash": "abc"}], "run_id": "r1"},
            "alias": "champion",
            "signature": {"inputs": [{"name": "input-0", "dtype": "float64", "shape": [-1, 2]}]},
            "description": "first",
        }
        response = self.upload(api, write, skops_file.name, skops_file.read_bytes(), metadata)
        assert response.status_code == 201, response.text
        version = response.json()
        assert version["version"] == 1
        assert version["flavor"] == "sklearn"
        assert version["artifact_name"] == skops_file.name
        assert version["aliases"] == ["champion"]
        assert version["metrics"] == {"auc": 0.93}
        assert version["params"] == {"C": "1.0"}
        assert version["lineage"]["run_id"] == "r1"
        assert version["tags"] == {"team": "risk"}
        assert response.headers["location"] == f"{V1}/models/fraud/versions/1"
        loaded = client.load_model("models:/fraud@champion")
        assert loaded.predict([[0.0, 1.0], [1.0, 0.0]]).tolist() == [0, 1]

    def test_uploaded_artifact_downloads_byte_for_byte(
        self, api: Api, write: str, skops_file: Path
    ) -> None:
        content = skops_file.read_bytes()
        digest = self.upload(api, write, "model.skops", content).json()["digest"]
        response = api.get(f"{V1}/models/fraud/versions/1/artifact")
        assert response.status_code == 200
        assert response.content == content
        assert response.headers["etag"] == f'"{digest}"'
        assert "model.skops" in response.headers["content-disposition"]

    def test_artifact_of_an_unknown_version_is_404(self, api: Api, platform: Platform) -> None:
        register_versions(platform, "fraud", 1)
        assert_error(api.get(f"{V1}/models/fraud/versions/5/artifact"), 404, "version_not_found")

    def test_folder_artifact_cannot_be_downloaded(
        self, api: Api, platform: Platform, tmp_path: Path
    ) -> None:
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"123")
        stored = platform.artifacts.put(folder)
        platform.bus.handle(
            RegisterVersion(
                model="fraud",
                flavor="torch",
                digest=stored.digest,
                size=stored.size,
                artifact_name=stored.name,
            )
        )
        assert_error(api.get(f"{V1}/models/fraud/versions/1/artifact"), 409, "conflict")

    def test_pickle_upload_is_refused_and_nothing_is_written(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        payload = pickle.dumps({"not": "a model"})
        response = self.upload(api, write, "model.pkl", payload, {"flavor": "sklearn"})
        assert_error(response, 422, "untrusted_artifact")
        assert_error(api.get(f"{V1}/models/fraud"), 404, "model_not_found")
        assert platform.events.list_events(aggregate_type="model").items == []
        objects = platform.settings.home / "artifacts" / "objects"
        assert not objects.exists() or not any(objects.rglob("*"))

    def test_invalid_alias_is_refused_before_anything_is_stored(
        self, api: Api, platform: Platform, write: str, skops_file: Path
    ) -> None:
        metadata = {"alias": ["champion", "Not Valid"]}
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), metadata)
        assert_error(response, 422, "invalid_name", "alias")
        objects = platform.settings.home / "artifacts" / "objects"
        assert not objects.exists() or not any(objects.rglob("*"))

    def test_pickle_named_skops_is_still_refused(self, api: Api, write: str) -> None:
        response = self.upload(api, write, "model.skops", pickle.dumps([1, 2]))
        assert_error(response, 422, "untrusted_artifact")

    def test_a_categorical_signature_is_accepted_with_its_categories(
        self, api: Api, write: str, skops_file: Path
    ) -> None:
        spec = {
            "name": "city",
            "dtype": "string",
            "shape": [-1],
            "categories": ["Paris", "Lyon"],
            "ordered": True,
        }
        metadata = {"signature": {"inputs": [spec]}}
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), metadata)
        assert response.status_code == 201, response.text
        stored = response.json()["signature"]["inputs"][0]
        assert stored["categories"] == ["Paris", "Lyon"]
        assert stored["ordered"] is True

    def test_pyfunc_upload_is_refused(self, api: Api, write: str) -> None:
        body = json.dumps({"entrypoint": "modelplane.client:load_model"}).encode()
        response = self.upload(api, write, "model.pyfunc.json", body)
        assert_error(response, 422, "untrusted_artifact", "metadata.trust")

    def test_a_gadget_skops_upload_is_refused_and_writes_nothing(
        self, api: Api, platform: Platform, write: str, tmp_path: Path
    ) -> None:
        """The review's exploit: a FunctionTransformer holding partial(numpy.save, <a .pth
        path>) uploaded with a write token. Refused before anything is stored or run."""
        import functools

        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        from modelplane.runtimes import save_model

        target = tmp_path / "evil.pth"
        gadget = make_pipeline(
            FunctionTransformer(functools.partial(np.save, str(target))), LogisticRegression()
        )
        saved = save_model(gadget, tmp_path / "artifact").path
        response = self.upload(api, write, saved.name, saved.read_bytes())
        assert_error(response, 422, "untrusted_artifact", "metadata.trust")
        assert "numpy.save" in response.json()["error"]["message"]
        assert not target.exists()
        assert_error(api.get(f"{V1}/models/fraud"), 404, "model_not_found")
        objects = platform.settings.home / "artifacts" / "objects"
        assert not objects.exists() or not any(objects.rglob("*"))

    @pytest.mark.parametrize("filename", ["model.pkl", "model.pyfunc.json"])
    def test_a_write_token_cannot_grant_trust(
        self, api: Api, platform: Platform, write: str, filename: str
    ) -> None:
        response = self.upload(api, write, filename, b"{}", {"trust": True})
        assert_error(response, 403, "forbidden", "metadata.trust")
        assert platform.events.list_events(aggregate_type="model").items == []

    def test_an_admin_token_grants_trust_and_it_is_recorded(
        self, api: Api, platform: Platform, client: Client, skops_file: Path
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        admin = _token(platform, "admin")
        payload = pickle.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
        response = self.upload(api, admin, "model.pkl", payload, {"trust": True})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["trusted_by"] == "token:up-admin"
        assert body["trusted_at"]
        assert client.load_model("fraud/1").predict([[1.0]]).tolist() == [1]
        # Trust is asked for, never implied: the same admin without trust is refused.
        response = self.upload(api, admin, "model.pkl", payload)
        assert_error(response, 422, "untrusted_artifact", "metadata.trust")
        response = self.upload(api, admin, skops_file.name, skops_file.read_bytes())
        assert response.status_code == 201, response.text
        assert response.json()["trusted_by"] is None

    @pytest.mark.parametrize(
        "filename", ["../../evil.skops", "..", "a/b.skops", "x#y.skops", "/etc/passwd"]
    )
    def test_filename_escape_is_refused(
        self, api: Api, platform: Platform, write: str, skops_file: Path, filename: str
    ) -> None:
        response = self.upload(api, write, filename, skops_file.read_bytes())
        assert_error(response, 422, "unsafe_path", "file")
        assert_error(api.get(f"{V1}/models/fraud"), 404, "model_not_found")

    def test_windows_path_in_filename_keeps_only_the_base_name(
        self, api: Api, write: str, skops_file: Path
    ) -> None:
        response = self.upload(api, write, "C:\\Users\\me\\model.skops", skops_file.read_bytes())
        assert response.status_code == 201, response.text
        assert response.json()["artifact_name"] == "model.skops"

    def test_invalid_metadata_json_is_400(self, api: Api, write: str, skops_file: Path) -> None:
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), "{not json")
        assert_error(response, 400, "malformed_request", "metadata")

    @pytest.mark.parametrize(
        ("metadata", "field"),
        [
            ({"metrics": {"auc": "high"}}, "metadata.metrics.auc"),
            ('{"metrics": {"auc": NaN}}', "metadata.metrics.auc"),
            ({"trust": "maybe"}, "metadata.trust"),
            ({"lineage": {"parent_version": 0}}, "metadata.lineage.parent_version"),
            ({"signature": {"inputs": 5}}, "metadata.signature.inputs"),
            ([1, 2], "metadata"),
        ],
    )
    def test_invalid_metadata_is_422_naming_the_field(
        self, api: Api, write: str, skops_file: Path, metadata: Any, field: str
    ) -> None:
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), metadata)
        assert_error(response, 422, "invalid_input", field)

    def test_unknown_flavor_is_422(self, api: Api, write: str, skops_file: Path) -> None:
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), {"flavor": "cobol"})
        assert_error(response, 422, "invalid_input", "flavor")

    def test_file_that_is_not_a_model_is_422(self, api: Api, write: str) -> None:
        response = self.upload(api, write, "model.bin", b"just some bytes")
        assert_error(response, 422, "invalid_input")

    def test_upload_without_a_file_is_422(self, api: Api, write: str) -> None:
        response = api.post(f"{V1}/models/fraud/versions", data={"metadata": "{}"}, token=write)
        assert_error(response, 422, "invalid_input", "body.file")

    def test_upload_to_an_invalid_model_name_is_422(
        self, api: Api, write: str, skops_file: Path
    ) -> None:
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), name="Bad")
        assert_error(response, 422, "invalid_name", "name")

    def test_upload_without_create_model_needs_the_model(
        self, api: Api, write: str, skops_file: Path
    ) -> None:
        metadata = {"create_model": False}
        response = self.upload(api, write, "m.skops", skops_file.read_bytes(), metadata)
        assert_error(response, 404, "model_not_found")

    def test_upload_needs_write_scope(self, api: Api, platform: Platform, skops_file: Path) -> None:
        response = self.upload(api, _token(platform, "read"), "m.skops", skops_file.read_bytes())
        assert_error(response, 403, "forbidden")
