"""The registry REST API, end to end over ASGI: routes, auth, errors, pagination.

Requests go through ``httpx.ASGITransport`` driven from a blocking portal, so tests stay
synchronous (Starlette's ``TestClient`` warns when used with httpx, and warnings are errors
here). Versions needed in bulk are registered through the bus directly, which keeps this file
fast; uploads with real files are in test_api_upload.py, fuzzing in test_api_fuzz.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken, RevokeToken
from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.core.pagination import encode_cursor
from modelplane.registry.commands import RegisterVersion

V1 = "/api/v1"
FAKE_DIGEST = "ab" * 32


class Api:
    """A synchronous HTTP client for an ASGI app (httpx over ASGITransport, in a portal)."""

    def __init__(self, app: FastAPI, portal: anyio.from_thread.BlockingPortal) -> None:
        self._portal = portal
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def request(
        self, method: str, url: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        call = functools.partial(self.client.request, method, url, headers=headers, **kwargs)
        return self._portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


def open_api(app: FastAPI) -> Iterator[Api]:
    with anyio.from_thread.start_blocking_portal() as portal:
        api = Api(app, portal)
        try:
            yield api
        finally:
            portal.call(api.client.aclose)


@pytest.fixture
def api(platform: Platform) -> Iterator[Api]:
    yield from open_api(create_app(platform))


@pytest.fixture
def tokens(platform: Platform) -> dict[str, str]:
    """One secret per scope: ``tokens["read"]``, ``["write"]``, ``["admin"]``."""
    return {
        scope: platform.bus.handle(CreateToken(name=f"t-{scope}", scope=scope)).secret
        for scope in ("read", "write", "admin")
    }


@pytest.fixture
def write(tokens: dict[str, str]) -> str:
    return tokens["write"]


def register_versions(platform: Platform, name: str, count: int, **fields: Any) -> None:
    """``count`` versions of ``name`` straight through the bus (no artifact is stored)."""
    for _ in range(count):
        platform.bus.handle(
            RegisterVersion(
                model=name,
                flavor="sklearn",
                digest=FAKE_DIGEST,
                size=1,
                artifact_name="model.skops",
                **fields,
            )
        )


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field
    return body["error"]


def save_skops(folder: Path) -> Path:
    """A small fitted LogisticRegression saved with skops: predicts 0 for [0, 1], 1 for [1, 0]."""
    from sklearn.linear_model import LogisticRegression

    from modelplane.runtimes import save_model

    x = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]]
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    return save_model(model, folder).path


# -- the app ---------------------------------------------------------------------------------
class TestApp:
    def test_factory_builds_nothing_until_the_lifespan_starts(self, tmp_path: Path) -> None:
        import uvicorn

        config = uvicorn.Config("modelplane.api.app:create_app", factory=True, lifespan="on")
        config.load()
        assert config.loaded_app is not None
        assert not (tmp_path / ".modelplane").exists()  # tmp_path is the working directory

    def test_lifespan_bootstraps_a_platform_and_closes_it(self, settings: Settings) -> None:
        app = create_app(settings=settings)
        assert app.state.platform is None

        async def run() -> int:
            async with app.router.lifespan_context(app):
                assert isinstance(app.state.platform, Platform)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    return (await http.get(f"{V1}/models")).status_code

        assert anyio.run(run) == 200
        assert app.state.platform is None

    def test_openapi_document_lists_every_route(self, api: Api) -> None:
        response = api.get("/openapi.json")
        assert response.status_code == 200
        doc = response.json()
        assert doc["info"]["title"] == "modelplane"
        assert doc["info"]["version"]
        paths = set(doc["paths"])
        assert {
            f"{V1}/models",
            f"{V1}/models/{{name}}",
            f"{V1}/models/{{name}}/versions",
            f"{V1}/models/{{name}}/versions/{{version}}",
            f"{V1}/models/{{name}}/versions/{{version}}/artifact",
            f"{V1}/models/{{name}}/versions/{{version}}/archive",
            f"{V1}/models/{{name}}/versions/{{version}}/restore",
            f"{V1}/models/{{name}}/versions/{{version}}/tags/{{key}}",
            f"{V1}/models/{{name}}/tags/{{key}}",
            f"{V1}/models/{{name}}/aliases",
            f"{V1}/models/{{name}}/aliases/{{alias}}",
            f"{V1}/resolve",
            f"{V1}/events",
            f"{V1}/tokens",
        } <= paths
        error = doc["components"]["schemas"]["ErrorResponse"]
        assert "error" in error["properties"]
        assert "HTTPValidationError" not in doc["components"]["schemas"]

    def test_docs_page_is_served(self, api: Api) -> None:
        response = api.get("/docs")
        assert response.status_code == 200
        assert "swagger" in response.text.lower()

    def test_unknown_route_is_a_json_404(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/nothing-here"), 404, "not_found")

    def test_wrong_method_is_a_json_405_naming_the_allowed_ones(self, api: Api) -> None:
        response = api.delete(f"{V1}/models")
        assert_error(response, 405, "method_not_allowed")
        assert "GET" in response.headers["allow"]


# -- auth ------------------------------------------------------------------------------------
class TestAuth:
    def test_write_without_token_is_401_with_bearer_challenge(self, api: Api) -> None:
        response = api.post(f"{V1}/models", json={"name": "fraud"})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    def test_write_with_unknown_token_is_401(self, api: Api) -> None:
        response = api.post(f"{V1}/models", json={"name": "fraud"}, token="mp_nope_nope")
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    def test_non_bearer_scheme_is_401(self, api: Api, write: str) -> None:
        headers = {"Authorization": f"Basic {write}"}
        response = api.post(f"{V1}/models", json={"name": "fraud"}, headers=headers)
        assert_error(response, 401, "unauthorized")

    def test_revoked_token_is_401(self, api: Api, platform: Platform) -> None:
        created = platform.bus.handle(CreateToken(name="ci", scope="write"))
        platform.bus.handle(RevokeToken(token_id=created.token.id))
        response = api.post(f"{V1}/models", json={"name": "fraud"}, token=created.secret)
        assert_error(response, 401, "unauthorized")
        assert "revoked" in response.json()["error"]["message"]

    def test_read_token_on_write_route_is_403(self, api: Api, tokens: dict[str, str]) -> None:
        response = api.post(f"{V1}/models", json={"name": "fraud"}, token=tokens["read"])
        assert_error(response, 403, "forbidden")

    def test_admin_token_may_write(self, api: Api, tokens: dict[str, str]) -> None:
        response = api.post(f"{V1}/models", json={"name": "fraud"}, token=tokens["admin"])
        assert response.status_code == 201

    def test_reads_are_open_by_default(self, api: Api) -> None:
        assert api.get(f"{V1}/models").status_code == 200

    def test_require_auth_makes_reads_need_a_token(self, settings: Settings) -> None:
        platform = bootstrap(
            Settings(home=settings.home, require_auth=True), raise_on_event_error=True
        )
        try:
            secret = platform.bus.handle(CreateToken(name="reader", scope="read")).secret
            for api in open_api(create_app(platform)):
                assert_error(api.get(f"{V1}/models"), 401, "unauthorized")
                assert_error(api.get(f"{V1}/events", token="mp_bad_bad"), 401, "unauthorized")
                assert api.get(f"{V1}/models", token=secret).status_code == 200
                assert api.get(f"{V1}/events", token=secret).status_code == 200
        finally:
            platform.close()

    def test_token_list_needs_admin_and_shows_no_secret(
        self, api: Api, tokens: dict[str, str]
    ) -> None:
        assert_error(api.get(f"{V1}/tokens", token=tokens["write"]), 403, "forbidden")
        response = api.get(f"{V1}/tokens", token=tokens["admin"])
        assert response.status_code == 200
        listed = response.json()["tokens"]
        assert sorted(t["scope"] for t in listed) == ["admin", "read", "write"]
        assert all(set(t) == {"id", "name", "scope", "created_at", "revoked_at"} for t in listed)
        assert not any(secret in response.text for secret in tokens.values())

    def test_token_list_can_include_revoked_tokens(
        self, api: Api, platform: Platform, tokens: dict[str, str]
    ) -> None:
        created = platform.bus.handle(CreateToken(name="old", scope="read"))
        platform.bus.handle(RevokeToken(token_id=created.token.id))
        admin = tokens["admin"]
        active = api.get(f"{V1}/tokens", token=admin).json()["tokens"]
        every = api.get(f"{V1}/tokens?include_revoked=true", token=admin).json()["tokens"]
        assert created.token.id not in {t["id"] for t in active}
        assert created.token.id in {t["id"] for t in every}


# -- models ----------------------------------------------------------------------------------
class TestModels:
    def test_register_returns_201_with_the_model_and_its_location(
        self, api: Api, write: str
    ) -> None:
        body = {"name": "fraud", "description": "card fraud", "tags": {"team": "risk"}}
        response = api.post(f"{V1}/models", json=body, token=write)
        assert response.status_code == 201
        model = response.json()
        assert model["name"] == "fraud"
        assert model["tags"] == {"team": "risk"}
        assert model["latest_version"] == 0
        assert response.headers["location"] == f"{V1}/models/fraud"
        assert api.get(response.headers["location"]).json() == model

    def test_registering_a_taken_name_is_409(self, api: Api, write: str) -> None:
        api.post(f"{V1}/models", json={"name": "fraud"}, token=write)
        response = api.post(f"{V1}/models", json={"name": "fraud"}, token=write)
        assert_error(response, 409, "model_exists", "name")

    @pytest.mark.parametrize("name", ["Fraud", "-fraud", "a b", "x" * 129, ""])
    def test_invalid_model_name_is_422(self, api: Api, write: str, name: str) -> None:
        response = api.post(f"{V1}/models", json={"name": name}, token=write)
        assert response.status_code == 422
        assert response.json()["error"]["code"] in ("invalid_name", "invalid_input")

    def test_invalid_name_in_the_path_is_422(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/models/Not%20Valid"), 422, "invalid_name", "name")

    def test_malformed_json_is_400(self, api: Api, write: str) -> None:
        response = api.post(
            f"{V1}/models",
            content=b'{"name": "fraud",',
            headers={"Content-Type": "application/json"},
            token=write,
        )
        assert_error(response, 400, "malformed_request", "body")

    def test_body_without_json_content_type_is_400(self, api: Api, write: str) -> None:
        response = api.post(f"{V1}/models", content=b"name=fraud", token=write)
        assert_error(response, 400, "malformed_request", "body")

    def test_unknown_body_field_is_422_naming_it(self, api: Api, write: str) -> None:
        response = api.post(f"{V1}/models", json={"name": "fraud", "owner": "x"}, token=write)
        assert_error(response, 422, "invalid_input", "body.owner")

    def test_nul_character_in_a_body_is_422(self, api: Api, write: str) -> None:
        response = api.post(f"{V1}/models", json={"name": "a", "description": "\x00"}, token=write)
        assert_error(response, 422, "invalid_input")

    def test_unknown_model_is_404(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/models/ghost"), 404, "model_not_found", "name")

    def test_list_filters_by_prefix_and_tags(self, api: Api, client: Client) -> None:
        client.register_model("fraud-a", tags={"team": "risk"})
        client.register_model("fraud-b", tags={"team": "growth"})
        client.register_model("churn")
        names = [m["name"] for m in api.get(f"{V1}/models?name_prefix=fraud").json()["models"]]
        assert names == ["fraud-a", "fraud-b"]
        tagged = api.get(f"{V1}/models", params={"tag": "team:risk"}).json()["models"]
        assert [m["name"] for m in tagged] == ["fraud-a"]

    def test_list_pages_through_models_with_a_cursor(self, api: Api, client: Client) -> None:
        for i in range(5):
            client.register_model(f"m{i}")
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = api.get(f"{V1}/models", params=params).json()
            seen += [m["name"] for m in page["models"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"m{i}" for i in range(5)]

    def test_tag_filter_without_a_colon_is_422(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/models?tag=team"), 422, "invalid_input", "query.tag")

    @pytest.mark.parametrize("limit", [0, -1, 1001, "many"])
    def test_limit_out_of_range_is_422(self, api: Api, limit: object) -> None:
        response = api.get(f"{V1}/models", params={"limit": limit})
        assert_error(response, 422, "invalid_input", "query.limit")

    def test_model_tags_are_set_and_deleted(self, api: Api, client: Client, write: str) -> None:
        client.register_model("fraud")
        url = f"{V1}/models/fraud/tags/owner/team"  # keys may hold '/'
        response = api.put(url, json={"value": "risk"}, token=write)
        assert response.status_code == 200
        assert response.json() == {
            "name": "fraud",
            "version": None,
            "key": "owner/team",
            "value": "risk",
        }
        assert api.get(f"{V1}/models/fraud").json()["tags"] == {"owner/team": "risk"}
        assert api.delete(url, token=write).status_code == 204
        assert api.get(f"{V1}/models/fraud").json()["tags"] == {}

    def test_deleting_a_missing_tag_is_422(self, api: Api, client: Client, write: str) -> None:
        client.register_model("fraud")
        assert_error(api.delete(f"{V1}/models/fraud/tags/nope", token=write), 422, "invalid_input")

    def test_tag_write_needs_a_token(self, api: Api, client: Client) -> None:
        client.register_model("fraud")
        response = api.put(f"{V1}/models/fraud/tags/a", json={"value": "b"})
        assert_error(response, 401, "unauthorized")


# -- versions --------------------------------------------------------------------------------
class TestVersions:
    def test_get_version_returns_its_fields(self, api: Api, platform: Platform) -> None:
        register_versions(platform, "fraud", 1, metrics={"auc": 0.91}, params={"C": "1.0"})
        version = api.get(f"{V1}/models/fraud/versions/1").json()
        assert version["name"] == "fraud"
        assert version["version"] == 1
        assert version["uri"] == "models:/fraud/1"
        assert version["status"] == "ready"
        assert version["metrics"] == {"auc": 0.91}
        assert version["params"] == {"C": "1.0"}
        assert version["digest"] == FAKE_DIGEST

    def test_unknown_version_is_404(self, api: Api, platform: Platform) -> None:
        register_versions(platform, "fraud", 1)
        assert_error(api.get(f"{V1}/models/fraud/versions/7"), 404, "version_not_found")

    def test_versions_of_an_unknown_model_are_404(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/models/ghost/versions"), 404, "model_not_found")

    @pytest.mark.parametrize("number", ["abc", "0", "-1", "99999999999999999999"])
    def test_version_number_out_of_range_is_422(self, api: Api, number: str) -> None:
        response = api.get(f"{V1}/models/fraud/versions/{number}")
        assert_error(response, 422, "invalid_input", "path.version")

    def test_list_filters_by_status_tag_and_metric(self, api: Api, platform: Platform) -> None:
        register_versions(platform, "fraud", 1, metrics={"auc": 0.80}, tags={"stage": "dev"})
        register_versions(platform, "fraud", 1, metrics={"auc": 0.95}, tags={"stage": "prod"})
        register_versions(platform, "fraud", 1, metrics={"auc": 0.97}, tags={"stage": "dev"})
        Client(platform=platform).archive_version("fraud", 3)
        url = f"{V1}/models/fraud/versions"

        def numbers(**params: Any) -> list[int]:
            response = api.get(url, params=params)
            assert response.status_code == 200, response.text
            return [v["version"] for v in response.json()["versions"]]

        assert numbers() == [3, 2, 1]
        assert numbers(order="asc") == [1, 2, 3]
        assert numbers(status="ready") == [2, 1]
        assert numbers(status="archived") == [3]
        assert numbers(tag="stage:dev") == [3, 1]
        assert numbers(metric="auc>=0.9") == [3, 2]
        assert numbers(metric=["auc>=0.9", "auc<0.96"]) == [2]
        assert numbers(metric="auc>0.9", tag="stage:dev", status="archived") == [3]

    @pytest.mark.parametrize("metric", ["auc>>0.9", "auc", ">=0.9", "auc>=high", "auc>=nan"])
    def test_bad_metric_filter_is_422(self, api: Api, platform: Platform, metric: str) -> None:
        register_versions(platform, "fraud", 1)
        response = api.get(f"{V1}/models/fraud/versions", params={"metric": metric})
        assert_error(response, 422, "invalid_input", "query.metric")

    @pytest.mark.parametrize(("param", "value"), [("status", "deleted"), ("order", "up")])
    def test_bad_status_or_order_is_422(
        self, api: Api, platform: Platform, param: str, value: str
    ) -> None:
        register_versions(platform, "fraud", 1)
        response = api.get(f"{V1}/models/fraud/versions", params={param: value})
        assert_error(response, 422, "invalid_input", f"query.{param}")

    @pytest.mark.parametrize("cursor", ["not-a-cursor", "!!!", encode_cursor({"x": 1})])
    def test_bad_cursor_is_400(self, api: Api, platform: Platform, cursor: str) -> None:
        register_versions(platform, "fraud", 1)
        response = api.get(f"{V1}/models/fraud/versions", params={"cursor": cursor})
        assert_error(response, 400, "malformed_request", "cursor")

    @pytest.mark.parametrize("key", ["x", [1], 10**30])
    def test_tampered_cursor_is_400(self, api: Api, platform: Platform, key: object) -> None:
        register_versions(platform, "fraud", 1)
        cursor = encode_cursor({"v": key})
        response = api.get(f"{V1}/models/fraud/versions", params={"cursor": cursor})
        assert_error(response, 400, "malformed_request", "cursor")

    @pytest.mark.parametrize("key", ["x", [1], 10**30])
    def test_tampered_event_cursor_is_400(self, api: Api, key: object) -> None:
        response = api.get(f"{V1}/events", params={"cursor": encode_cursor({"id": key})})
        assert_error(response, 400, "malformed_request", "cursor")

    def test_cursor_pagination_returns_every_version_exactly_once(
        self, api: Api, platform: Platform
    ) -> None:
        register_versions(platform, "fraud", 250)
        for order, expected in (("desc", range(250, 0, -1)), ("asc", range(1, 251))):
            seen: list[int] = []
            cursor: str | None = None
            pages = 0
            while True:
                params: dict[str, Any] = {"limit": 100, "order": order}
                if cursor:
                    params["cursor"] = cursor
                page = api.get(f"{V1}/models/fraud/versions", params=params).json()
                seen += [v["version"] for v in page["versions"]]
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == list(expected)
            assert pages == 3

    def test_archive_and_restore(self, api: Api, platform: Platform, write: str) -> None:
        register_versions(platform, "fraud", 2)
        archived = api.post(f"{V1}/models/fraud/versions/1/archive", token=write)
        assert archived.status_code == 200
        assert archived.json()["status"] == "archived"
        again = api.post(f"{V1}/models/fraud/versions/1/archive", token=write)
        assert again.json()["status"] == "archived"
        restored = api.post(f"{V1}/models/fraud/versions/1/restore", token=write)
        assert restored.json()["status"] == "ready"

    def test_archiving_a_version_an_alias_points_at_is_409(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 1, aliases=("champion",))
        response = api.post(f"{V1}/models/fraud/versions/1/archive", token=write)
        error = assert_error(response, 409, "version_in_use", "version")
        assert "champion" in error["message"]
        assert api.get(f"{V1}/models/fraud/versions/1").json()["status"] == "ready"

    def test_archive_needs_write_scope(
        self, api: Api, platform: Platform, tokens: dict[str, str]
    ) -> None:
        register_versions(platform, "fraud", 1)
        response = api.post(f"{V1}/models/fraud/versions/1/archive", token=tokens["read"])
        assert_error(response, 403, "forbidden")

    def test_version_tags_are_set_and_deleted(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 2)
        url = f"{V1}/models/fraud/versions/2/tags/validated"
        response = api.put(url, json={"value": "yes"}, token=write)
        assert response.json() == {
            "name": "fraud",
            "version": 2,
            "key": "validated",
            "value": "yes",
        }
        assert api.get(f"{V1}/models/fraud/versions/2").json()["tags"] == {"validated": "yes"}
        assert api.get(f"{V1}/models/fraud/versions/1").json()["tags"] == {}
        assert api.delete(url, token=write).status_code == 204
        assert api.get(f"{V1}/models/fraud/versions/2").json()["tags"] == {}

    def test_tag_value_must_be_a_string(self, api: Api, platform: Platform, write: str) -> None:
        register_versions(platform, "fraud", 1)
        url = f"{V1}/models/fraud/versions/1/tags/k"
        response = api.put(url, json={"value": 3}, token=write)
        assert_error(response, 422, "invalid_input", "body.value")


# -- aliases ---------------------------------------------------------------------------------
class TestAliases:
    def test_set_get_list_resolve_and_remove(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 3)
        url = f"{V1}/models/fraud/aliases/champion"
        response = api.put(url, json={"version": 2}, token=write)
        assert response.status_code == 200
        assert response.json() == {"name": "fraud", "alias": "champion", "version": 2}
        pointed = api.get(url).json()
        assert pointed["version"] == 2
        assert pointed["aliases"] == ["champion"]
        assert api.get(f"{V1}/models/fraud/aliases").json() == {
            "name": "fraud",
            "aliases": {"champion": 2},
        }
        assert api.get(f"{V1}/resolve", params={"ref": "fraud@champion"}).json()["version"] == 2
        assert api.get(f"{V1}/resolve", params={"ref": "models:/fraud/3"}).json()["version"] == 3
        assert api.delete(url, token=write).status_code == 204
        assert_error(api.get(url), 404, "alias_not_found")

    def test_moving_an_alias_points_it_at_the_new_version(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 2)
        url = f"{V1}/models/fraud/aliases/champion"
        api.put(url, json={"version": 1}, token=write)
        api.put(url, json={"version": 2}, token=write)
        assert api.get(url).json()["version"] == 2
        assert api.get(f"{V1}/models/fraud/versions/1").json()["aliases"] == []

    def test_latest_resolves_to_the_newest_ready_version(
        self, api: Api, platform: Platform
    ) -> None:
        register_versions(platform, "fraud", 2)
        assert api.get(f"{V1}/models/fraud/aliases/latest").json()["version"] == 2

    @pytest.mark.parametrize("alias", ["Champion", "latest", "3", "-x"])
    def test_invalid_alias_is_422(
        self, api: Api, platform: Platform, write: str, alias: str
    ) -> None:
        register_versions(platform, "fraud", 1)
        url = f"{V1}/models/fraud/aliases/{alias}"
        assert_error(api.put(url, json={"version": 1}, token=write), 422, "invalid_name", "alias")

    def test_alias_to_an_unknown_version_is_404(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 1)
        url = f"{V1}/models/fraud/aliases/champion"
        assert_error(api.put(url, json={"version": 9}, token=write), 404, "version_not_found")

    def test_unknown_alias_is_404(self, api: Api, platform: Platform, write: str) -> None:
        register_versions(platform, "fraud", 1)
        url = f"{V1}/models/fraud/aliases/ghost"
        assert_error(api.get(url), 404, "alias_not_found")
        assert_error(api.delete(url, token=write), 404, "alias_not_found")

    @pytest.mark.parametrize("body", [{"version": "1"}, {"version": True}, {"version": 0}, {}])
    def test_alias_body_needs_a_positive_integer_version(
        self, api: Api, platform: Platform, write: str, body: dict[str, Any]
    ) -> None:
        register_versions(platform, "fraud", 1)
        response = api.put(f"{V1}/models/fraud/aliases/champion", json=body, token=write)
        assert_error(response, 422, "invalid_input", "body.version")

    def test_resolve_rejects_a_bad_reference(self, api: Api) -> None:
        response = api.get(f"{V1}/resolve", params={"ref": "Fraud@@x"})
        assert response.status_code == 422
        assert_error(api.get(f"{V1}/resolve"), 422, "invalid_input", "query.ref")


# -- events ----------------------------------------------------------------------------------
class TestEvents:
    def test_events_of_a_model_are_listed_in_order(
        self, api: Api, platform: Platform, write: str
    ) -> None:
        register_versions(platform, "fraud", 1)
        register_versions(platform, "churn", 1)
        api.put(f"{V1}/models/fraud/aliases/champion", json={"version": 1}, token=write)
        page = api.get(f"{V1}/events", params={"model": "fraud"}).json()
        assert [e["type"] for e in page["events"]] == [
            "ModelRegistered",
            "ModelVersionRegistered",
            "AliasSet",
        ]
        assert [e["sequence"] for e in page["events"]] == [1, 2, 3]
        assert {e["aggregate_id"] for e in page["events"]} == {"fraud"}
        assert page["next_cursor"] is None

    def test_events_filter_by_type_and_aggregate_type(
        self, api: Api, platform: Platform, tokens: dict[str, str]
    ) -> None:
        register_versions(platform, "fraud", 2)
        by_type = api.get(f"{V1}/events", params={"type": "ModelVersionRegistered"}).json()
        assert [e["payload"]["version"] for e in by_type["events"]] == [1, 2]
        tokens_only = api.get(f"{V1}/events", params={"aggregate_type": "token"}).json()
        assert {e["type"] for e in tokens_only["events"]} == {"TokenCreated"}

    def test_events_page_with_a_cursor(self, api: Api, platform: Platform) -> None:
        register_versions(platform, "fraud", 4)
        first = api.get(f"{V1}/events", params={"model": "fraud", "limit": 3}).json()
        assert len(first["events"]) == 3
        rest = api.get(
            f"{V1}/events", params={"model": "fraud", "limit": 3, "cursor": first["next_cursor"]}
        ).json()
        ids = [e["id"] for e in first["events"] + rest["events"]]
        assert len(ids) == 5
        assert ids == sorted(set(ids))
        assert rest["next_cursor"] is None

    def test_invalid_model_filter_is_422(self, api: Api) -> None:
        response = api.get(f"{V1}/events", params={"model": "Not Valid"})
        assert_error(response, 422, "invalid_name", "query.model")

    def test_model_filter_narrows_with_another_aggregate_type(self, api: Api) -> None:
        response = api.get(f"{V1}/events", params={"model": "fraud", "aggregate_type": "token"})
        assert response.status_code == 200
        assert response.json()["events"] == []  # a model's events are never token events

    def test_bad_event_cursor_is_400(self, api: Api) -> None:
        assert_error(api.get(f"{V1}/events?cursor=%%%"), 400, "malformed_request", "cursor")
