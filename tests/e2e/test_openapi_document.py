"""The OpenAPI document tells the truth: name patterns, security, and response codes.

The patterns are the domain's own regexes (``core.names.NAME_RE``, ``registry.model.TAG_KEY_RE``)
anchored for JSON Schema; an ECMA-262 validator (jsonschema_rs, as schemathesis uses) must accept
exactly what the server's ``fullmatch`` accepts. Security and scopes are checked against what the
app does, operation by operation, so a route added later is checked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelplane.api import create_app
from modelplane.api.schemas import (
    ALIAS_OR_LATEST_PATTERN,
    ALIAS_PATTERN,
    CURSOR_PATTERN,
    NAME_PATTERN,
    TAG_KEY_PATTERN,
)
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings
from modelplane.core.pagination import encode_cursor
from modelplane.errors import InvalidInput
from modelplane.registry.model import TAG_KEY_RE, validate_alias, validate_name
from tests.e2e.test_api import Api, open_api, register_versions

DOC: dict[str, Any] = create_app().openapi()
OPERATIONS = [
    (method.upper(), path, op) for path, item in DOC["paths"].items() for method, op in item.items()
]
IDS = [f"{m} {p}" for m, p, _ in OPERATIONS]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def accepts(pattern: str, text: str) -> bool:
    return bool(jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(text))


def domain_accepts(check: Any, text: str) -> bool:
    try:
        check(text)
    except InvalidInput:
        return False
    return True


def _alias_or_latest(text: str) -> str:
    return text if text == "latest" else validate_alias(text)


def _tag_key(text: str) -> str:
    if not TAG_KEY_RE.fullmatch(text):
        raise InvalidInput("bad key")
    return text


RULES = [
    (NAME_PATTERN, validate_name),
    (ALIAS_PATTERN, validate_alias),
    (ALIAS_OR_LATEST_PATTERN, _alias_or_latest),
    (TAG_KEY_PATTERN, _tag_key),
]
EDGES = [
    "fraud", "fraud\n", "\nfraud", "fraud ", "Fraud", "a", "", "-a", "a-", "a" * 128, "a" * 129,
    "latest", "latest2", "12", "1a", "０", "a/b", "team:risk", " a", "a b", "a" * 250, "a" * 251,
    "fraud\x00", "é",
]  # fmt: skip


class TestPatterns:
    @pytest.mark.parametrize(("pattern", "check"), RULES)
    @pytest.mark.parametrize("text", EDGES)
    def test_a_pattern_accepts_exactly_what_the_server_accepts(
        self, pattern: str, check: Any, text: str
    ) -> None:
        assert accepts(pattern, text) == domain_accepts(check, text)

    @pytest.mark.parametrize(("pattern", "check"), RULES)
    @settings(max_examples=200, deadline=None)
    @given(text=st.text(st.sampled_from("az09._-/: \nLé"), max_size=12))
    def test_the_same_holds_for_generated_text(self, pattern: str, check: Any, text: str) -> None:
        assert accepts(pattern, text) == domain_accepts(check, text)

    def test_every_cursor_the_server_issues_matches_its_pattern(self) -> None:
        for data in ({"id": 1}, {"v": 2**62, "n": "zz"}, {"k": "é" * 9}):
            assert re.fullmatch(CURSOR_PATTERN, encode_cursor(data))

    @pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
    def test_every_name_alias_key_and_cursor_parameter_carries_its_pattern(
        self, method: str, path: str, op: dict[str, Any]
    ) -> None:
        expected = {
            "name": NAME_PATTERN,
            "model": NAME_PATTERN,
            "key": TAG_KEY_PATTERN,
            "cursor": CURSOR_PATTERN,
            "alias": ALIAS_OR_LATEST_PATTERN if method == "GET" else ALIAS_PATTERN,
        }
        for param in op.get("parameters", []):
            if param["name"] in expected:
                schema = param["schema"]
                assert schema.get("pattern") == expected[param["name"]], param
                assert schema.get("maxLength", 0) or any(
                    s.get("maxLength") for s in schema.get("anyOf", [])
                ), param


# -- behaviour against the document -------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, str]]]:
    """One app over fraud (2 versions, champion → 1) and a token per scope."""
    platform: Platform = bootstrap(Settings(home=tmp_path_factory.mktemp("home")))
    register_versions(platform, "fraud", 2)
    Client(platform=platform).set_alias("fraud", "champion", 1)
    tokens = {
        scope: platform.bus.handle(CreateToken(name=f"doc-{scope}", scope=scope)).secret
        for scope in ("read", "write", "admin")
    }
    for api in open_api(create_app(platform)):
        yield api, tokens
    platform.close()


def concrete(path: str) -> str:
    values = {"name": "fraud", "version": "1", "alias": "champion", "key": "team"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


class TestSecurity:
    @pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
    def test_security_is_optional_exactly_on_read_routes(
        self, method: str, path: str, op: dict[str, Any]
    ) -> None:
        security = op["security"]
        assert {"HTTPBearer": []} in security
        assert ({} in security) == (method == "GET" and path != "/api/v1/tokens")

    @pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
    def test_the_scope_is_stated_and_is_what_the_route_needs(
        self, method: str, path: str, op: dict[str, Any], world: tuple[Api, dict[str, str]]
    ) -> None:
        api, tokens = world
        scope = op["x-required-scope"]
        url = concrete(path)
        anonymous = api.request(method, url)
        if scope == "read":
            assert anonymous.status_code not in (401, 403), anonymous.text
            return
        assert anonymous.status_code == 401, anonymous.text
        below = {"write": "read", "admin": "write"}[scope]
        refused = api.request(method, url, token=tokens[below])
        assert refused.status_code == 403, refused.text
        assert "403" in op["responses"]
        assert "401" in op["responses"]


class TestResponses:
    @pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
    def test_413_is_documented_exactly_where_a_body_is_read(
        self, method: str, path: str, op: dict[str, Any]
    ) -> None:
        assert ("413" in op["responses"]) == ("requestBody" in op)

    @pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
    def test_400_is_documented_exactly_where_a_body_or_cursor_is_parsed(
        self, method: str, path: str, op: dict[str, Any]
    ) -> None:
        names = {p["name"] for p in op.get("parameters", [])}
        assert ("400" in op["responses"]) == ("requestBody" in op or "cursor" in names)

    @pytest.mark.parametrize(
        ("method", "path", "op"),
        [o for o in OPERATIONS if "requestBody" in o[2] and "versions" not in o[1]],
        ids=[i for i, o in zip(IDS, OPERATIONS, strict=True) if "requestBody" in o[2]
             and "versions" not in o[1]],
    )  # fmt: skip
    def test_a_body_over_the_limit_is_413(
        self, method: str, path: str, op: dict[str, Any], world: tuple[Api, dict[str, str]]
    ) -> None:
        api, tokens = world
        too_big = b"{" + b" " * (16 << 20) + b"}"
        response = api.request(
            method,
            concrete(path),
            token=tokens["admin"],
            content=too_big,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"

    def test_a_cursor_the_server_did_not_issue_is_400_even_when_it_decodes(
        self, world: tuple[Api, dict[str, str]]
    ) -> None:
        api, _ = world
        cursor = encode_cursor({"v": 2}) + "!"  # base64 decoding alone would skip the "!"
        for url in ("/api/v1/models/fraud/versions", "/api/v1/models", "/api/v1/events"):
            response = api.get(url, params={"cursor": cursor})
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["field"] == "cursor"


class TestServingDocument:
    def test_the_serving_app_documents_the_same_operations(self) -> None:
        from modelplane.api.server import create_serving_app

        serving = create_serving_app().app.openapi()  # the hot OIP routes are not in it
        assert serving["paths"] == DOC["paths"]


class TestMethodNotAllowed:
    def test_allow_names_every_method_the_path_takes(
        self, world: tuple[Api, dict[str, str]]
    ) -> None:
        api, _ = world
        for path, item in DOC["paths"].items():
            documented = {m.upper() for m in item}
            response = api.request("PATCH", concrete(path))
            assert response.status_code == 405, (path, response.text)
            allowed = {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"}
            assert allowed == documented, path
