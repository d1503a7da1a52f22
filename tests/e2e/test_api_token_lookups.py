"""A write is authenticated once: ``limits.BodyLimit`` looks the bearer token up before the body
is read and hands it to the route, whose scope check (``security.require_write`` /
``require_admin``) uses it instead of a second database lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken
from modelplane.auth.model import Scope, Token
from modelplane.bootstrap import Platform
from tests.e2e.test_api import V1, Api, open_api, register_versions, save_skops


@pytest.fixture
def api(platform: Platform) -> Iterator[Api]:
    yield from open_api(create_app(platform))


@pytest.fixture
def lookups(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> list[Scope]:
    """The scope of every token lookup (``TokenViews.authenticate``) made from now on."""
    seen: list[Scope] = []
    authenticate: Callable[[str | None, Scope], Token] = platform.tokens.authenticate

    def counting(presented: str | None, scope: Scope) -> Token:
        seen.append(scope)
        return authenticate(presented, scope)

    monkeypatch.setattr(platform.tokens, "authenticate", counting)
    return seen


def _secret(platform: Platform, scope: str) -> str:
    secret: str = platform.bus.handle(CreateToken(name=f"once-{scope}", scope=scope)).secret
    return secret


def test_an_upload_looks_its_token_up_exactly_once(
    api: Api, platform: Platform, lookups: list[Scope], tmp_path: Path
) -> None:
    token = _secret(platform, "write")
    model_file = save_skops(tmp_path / "saved")
    lookups.clear()
    response = api.post(
        f"{V1}/models/fraud/versions",
        files={"file": (model_file.name, model_file.read_bytes(), "application/octet-stream")},
        token=token,
    )
    assert response.status_code == 201, response.text
    assert lookups == ["write"]


def test_every_write_looks_its_token_up_once(
    api: Api, platform: Platform, lookups: list[Scope]
) -> None:
    token = _secret(platform, "admin")
    register_versions(platform, "fraud", 1)
    lookups.clear()
    response = api.post(f"{V1}/models/fraud/versions/1/archive", token=token)
    assert response.status_code == 200, response.text
    response = api.put(f"{V1}/models/fraud/tags/team", json={"value": "risk"}, token=token)
    assert response.status_code == 200, response.text
    response = api.post(f"{V1}/experiments/ab/stop", token=token)  # an admin route
    assert response.status_code == 404, response.text  # authenticated, then the lookup of ab
    assert lookups == ["write", "write", "write"]  # one per request: the middleware's


def test_too_small_a_scope_is_still_refused_by_the_route(
    api: Api, platform: Platform, lookups: list[Scope]
) -> None:
    """The handed token passes the middleware's ``write`` check but not the route's ``admin``:
    the route looks it up itself, to refuse it with the reason."""
    token = _secret(platform, "write")
    response = api.post(f"{V1}/experiments/ab/start", token=token)
    assert response.status_code == 403, response.text
    assert "admin" in response.json()["error"]["message"]
    assert lookups == ["write", "admin"]


def test_a_read_is_looked_up_by_its_route_when_auth_is_required(
    api: Api, platform: Platform, lookups: list[Scope], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform.settings, "require_auth", True)
    token = _secret(platform, "read")
    response = api.get(f"{V1}/models", token=token)
    assert response.status_code == 200, response.text
    assert lookups == ["read"]  # reads skip the middleware's check
