"""Error bodies: OIP's ``{"error": "<string>"}`` on every ``/v2`` route (unknown paths and
methods too), the API's ``{"error": {code, message, field}}`` elsewhere, an ``Allow`` header on
every 405 — and never a server path or a stack trace in any of them.

A gallery of failing requests runs against the real serving app (its lifespan, pool and
runtimes): models that fail with the server's paths in their messages, a model whose artifact
was deleted, malformed and oversized bodies, unknown routes and methods.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.api.errors import error_json, public_message, redact_paths
from modelplane.api.server import create_serving_app
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.errors import ArtifactMissing, InvalidInput, PredictionFailed
from modelplane.serving.options import ServeOptions

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(2)
X = RNG.normal(size=(60, 4))
Y = (X[:, 1] > 0).astype(int)
PATH_VARIABLE = "MP_TEST_ERROR_PATH"


def rejects_with_a_path(batch: Any) -> Any:
    """A model whose input check names a file of the server (ValueError: the caller's 422)."""
    raise ValueError(f"cannot read {os.environ[PATH_VARIABLE]}/features/lookup.parquet")


def crashes_with_a_path(batch: Any) -> Any:
    """A model that fails (a 500) with a server path in its exception."""
    raise RuntimeError(f"segfault near {os.environ[PATH_VARIABLE]}/lib/native.so")


@pytest.fixture
def gallery(client: Client, home: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setenv(PATH_VARIABLE, str(home.absolute()))
    before = {p for p in home.rglob("*") if p.is_file()}
    client.log_model(LogisticRegression().fit(X, Y), name="gone", input_example=X)
    for path in {p for p in home.rglob("*") if p.is_file()} - before:
        if path.suffix not in (".db", ".db-wal", ".db-shm") and "artifacts" in path.parts:
            path.unlink()  # the artifact is gone from the store
    client.log_model(LogisticRegression().fit(X, Y), name="fraud", input_example=X)
    client.log_model(rejects_with_a_path, trust=True, name="rejects", input_example=X)
    client.log_model(crashes_with_a_path, trust=True, name="crashes", input_example=X)
    return client


@pytest.fixture
async def http(platform: Platform, gallery: Client) -> AsyncIterator[httpx.AsyncClient]:
    platform.settings.max_body_bytes = 4096
    app = create_serving_app(platform=platform, options=ServeOptions(
        grpc_port=None, poll_interval_s=3600, access_log=False))  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mp") as client:
            yield client


def oip(rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}  # fmt: skip


GALLERY: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/v2/models/rejects/infer", {"json": oip(X[:1])}, 422),
    ("POST", "/v2/models/crashes/infer", {"json": oip(X[:1])}, 500),
    ("POST", "/v2/models/gone/infer", {"json": oip(X[:1])}, 500),
    ("GET", "/v2/models/gone", {}, 500),
    ("GET", "/v2/models/gone/ready", {}, 500),
    ("POST", "/v2/models/fraud/infer", {"content": b"{not json"}, 400),
    ("POST", "/v2/models/fraud/infer", {"json": {"inputs": "nope"}}, 400),
    ("POST", "/v2/models/fraud/infer", {"content": b"[" + b"1," * 5000 + b"1]"}, 413),
    ("POST", "/v2/models/nope/infer", {"json": oip(X[:1])}, 404),
    ("GET", "/v2/nothing/here", {}, 404),
    ("GET", "/v2/models/fraud/infer", {}, 405),
    ("DELETE", "/v2/models/fraud", {}, 405),
    ("PUT", "/v2/health/live", {}, 405),
    ("POST", "/predict", {"json": {"model": "rejects", "inputs": X[:1].tolist()}}, 422),
    ("POST", "/predict", {"json": {"model": "crashes", "inputs": X[:1].tolist()}}, 500),
    ("POST", "/predict", {"json": {"model": "gone", "inputs": X[:1].tolist()}}, 500),
    ("POST", "/predict", {"content": b"[" + b"1," * 5000 + b"1]"}, 413),
    ("GET", "/api/v1/models/gone/versions/1/artifact", {}, 500),
    ("GET", "/api/v1/nothing", {}, 404),
    ("DELETE", "/api/v1/models", {}, 405),
    ("GET", "/api/v1/models?limit=zero", {}, 422),
]


def is_oip(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class TestGallery:
    @pytest.mark.parametrize(("method", "path", "request_args", "status"), GALLERY)
    async def test_no_server_path_or_traceback_in_any_error(
        self, http: httpx.AsyncClient, home: Path, method: str, path: str,
        request_args: dict[str, Any], status: int,
    ) -> None:  # fmt: skip
        r = await http.request(method, path, **request_args)
        if path.endswith("/artifact") and r.status_code == 404:
            pytest.skip("no artifact download route in this build")  # pragma: no cover
        assert r.status_code == status, r.text
        text = r.text
        assert str(home.absolute()) not in text
        assert str(home.parent) not in text
        assert "Traceback" not in text
        assert 'File "' not in text
        assert "site-packages" not in text

    @pytest.mark.parametrize(("method", "path", "request_args", "status"), GALLERY)
    async def test_the_shape_of_the_body_follows_the_route(
        self, http: httpx.AsyncClient, method: str, path: str,
        request_args: dict[str, Any], status: int,
    ) -> None:  # fmt: skip
        r = await http.request(method, path, **request_args)
        error = r.json()["error"]
        assert isinstance(error, str) is is_oip(path)  # a string under /v2, an object elsewhere
        if not is_oip(path):
            assert set(error) == {"code", "message", "field"}
        message = error if is_oip(path) else error["message"]
        assert isinstance(message, str)
        assert message

    async def test_a_500_says_its_code_not_its_cause(self, http: httpx.AsyncClient) -> None:
        r = await http.post("/predict", json={"model": "crashes", "inputs": X[:1].tolist()})
        error = r.json()["error"]
        assert error["code"] == "prediction_failed"
        assert "segfault" not in error["message"]
        r = await http.post("/v2/models/crashes/infer", json=oip(X[:1]))
        assert "prediction_failed" in r.json()["error"]
        assert "segfault" not in r.json()["error"]

    async def test_a_path_in_a_client_error_is_cut_to_its_file_name(
        self, http: httpx.AsyncClient
    ) -> None:
        r = await http.post("/v2/models/rejects/infer", json=oip(X[:1]))
        assert "lookup.parquet" in r.json()["error"]


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("GET", "/v2/models/fraud/infer", "POST"),
            ("DELETE", "/v2/models/fraud", "GET"),
            ("POST", "/v2/health/ready", "GET"),
            ("DELETE", "/api/v1/models", "GET"),
            ("GET", "/predict", "POST"),
        ],
    )
    async def test_405_carries_allow(self, http: httpx.AsyncClient, method: str, path: str,
                                     allowed: str) -> None:  # fmt: skip
        r = await http.request(method, path)
        assert r.status_code == 405
        assert allowed in r.headers["allow"]
        message = r.json()["error"] if is_oip(path) else r.json()["error"]["message"]
        assert method in message


class TestRedaction:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ("no file at /srv/mp/home/artifacts/ab/model.skops", "no file at model.skops"),
            ("cannot open '/a/b/c.onnx': gone", "cannot open 'c.onnx': gone"),
            ("PosixPath('/x/y/z')", "PosixPath('z')"),
            ("file:///srv/x/y.onnx is missing", "y.onnx is missing"),
            ("see http://host/a/b and s3://bucket/a/b", "see http://host/a/b and s3://bucket/a/b"),
            ("model fraud/2 on /predict", "model fraud/2 on /predict"),
        ],
    )
    def test_absolute_paths_become_file_names(self, message: str, expected: str) -> None:
        assert redact_paths(message) == expected

    def test_500s_say_their_code_only(self) -> None:
        assert "/srv" not in public_message(ArtifactMissing("no file at /srv/a/b"))
        assert public_message(PredictionFailed("x")).startswith("internal error (prediction_")
        assert public_message(InvalidInput("bad /srv/a/b.csv")) == "bad b.csv"


class TestRawSenders:
    def test_error_json_follows_the_route(self) -> None:
        oip_body = orjson.loads(error_json("/v2/models/x/infer", "payload_too_large", "too big"))
        assert oip_body == {"error": "too big"}
        api_body = orjson.loads(error_json("/api/v1/models", "too_large", "big", "body"))
        assert api_body == {"error": {"code": "too_large", "message": "big", "field": "body"}}
