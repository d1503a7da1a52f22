"""Schema-driven fuzzing: random strings in every route's path and query parameters.

The routes come from the app's own ``/openapi.json``, so a route added later is fuzzed too.
The property: bad input is never a server error, and every error has the JSON error shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform
from modelplane.client import Client
from tests.e2e.test_api import Api, open_api, register_versions

# Values a client might plausibly send, mixed with arbitrary text.
EDGE_VALUES = [
    "fraud",
    "1",
    "2",
    "0",
    "-1",
    "99999999999999999999",
    "champion",
    "latest",
    "..",
    ".",
    "\x00",
    "a" * 300,
    "auc>=0.9",
    "team:risk",
    "fraud@champion",
    "models:/fraud/1",
    "ready",
    "asc",
    "true",
]
BIG_NUMBERS = [0, -1, 2**31, 2**63, 10**30]
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
# Values that get past the first check of a parameter, so the fuzzing reaches deeper code.
PLAUSIBLE = {
    "name": st.just("fraud"),
    "alias": st.sampled_from(["champion", "latest", "ghost"]),
    "key": st.sampled_from(["team", "a/b", "ghost"]),
    "ref": st.sampled_from(["fraud", "fraud@champion", "models:/fraud/2", "fraud/0"]),
}


def values_for(param: dict[str, Any]) -> st.SearchStrategy[str]:
    """Strings for one OpenAPI parameter: plausible for its name and type, or arbitrary."""
    schema = param.get("schema", {})
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if "integer" in types:
        typed = st.one_of(st.integers(), st.sampled_from(BIG_NUMBERS)).map(str)
    else:
        typed = st.sampled_from(EDGE_VALUES)
    return st.one_of(PLAUSIBLE.get(param["name"], typed), typed, TEXT)


BODIES: list[Any] = [None, {}, {"version": 1}, {"value": "v"}, {"name": "x"}, [1]]


@pytest.fixture
def fuzz(platform: Platform) -> Iterator[tuple[Api, str, list[tuple[str, str, dict[str, Any]]]]]:
    register_versions(platform, "fraud", 3, tags={"team": "risk"}, metrics={"auc": 0.95})
    Client(platform=platform).set_alias("fraud", "champion", 2)
    admin = platform.bus.handle(CreateToken(name="fuzzer", scope="admin")).secret
    for api in open_api(create_app(platform)):
        doc = api.get("/openapi.json").json()
        operations = [
            (method.upper(), path, op)
            for path, item in doc["paths"].items()
            for method, op in item.items()
        ]
        yield api, admin, operations


class TestFuzz:
    @settings(
        max_examples=500,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def test_random_path_and_query_parameters_never_cause_a_server_error(
        self,
        fuzz: tuple[Api, str, list[tuple[str, str, dict[str, Any]]]],
        data: st.DataObject,
    ) -> None:
        api, admin, operations = fuzz
        method, template, op = data.draw(st.sampled_from(operations), label="operation")
        path, params = template, {}
        for param in op.get("parameters", []):
            if param["in"] == "path":
                value = data.draw(values_for(param), label=param["name"])
                path = path.replace("{" + param["name"] + "}", quote(value, safe=""))
            elif param["in"] == "query" and data.draw(st.booleans()):
                params[param["name"]] = data.draw(values_for(param), label=param["name"])
        body = data.draw(st.sampled_from(BODIES), label="body") if "requestBody" in op else None
        response = api.request(method, path, params=params, json=body, token=admin)
        assert response.status_code < 500, (method, path, params, response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message", "field"}
