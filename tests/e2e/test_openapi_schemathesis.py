"""A bounded schemathesis run over the whole OpenAPI document, against the app in process.

Every operation of ``/openapi.json`` gets a few generated requests, valid and invalid, sent with
an ``admin`` token (so write routes are reached) to an app over a fresh home holding a couple of
models. What is checked is that the document tells the truth: no 5xx, every status code and
content type documented, and every response body valid against its documented schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelplane.api import create_app
from modelplane.auth.commands import CreateToken
from modelplane.bootstrap import Platform
from modelplane.client import Client

#: Generated requests per operation and phase: the whole run stays well under a minute.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def admin(platform: Platform) -> str:
    return str(platform.bus.handle(CreateToken(name="schemathesis", scope="admin")).secret)


@pytest.fixture
def api_schema(platform: Platform, admin: str) -> Any:
    """The app over a home with fraud (3 versions, champion → 2, tagged) and other (1).

    The versions are real (stored artifacts), since the document's examples name ``fraud``
    and version 2: the artifact download is generated like every other operation.
    """
    from sklearn.linear_model import LogisticRegression

    x = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]]
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    client = Client(platform=platform)
    for name, count in (("fraud", 3), ("other", 1)):
        for _ in range(count):
            client.log_model(
                model, name=name, input_example=x, tags={"team": "risk"}, metrics={"auc": 0.95}
            )
    client.set_alias("fraud", "champion", 2)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(platform))


def run_operation(operation: Any, mode: GenerationMode, admin: str) -> tuple[int, list[str]]:
    """Up to :data:`EXAMPLES` generated requests of ``mode``: (requests sent, failures)."""
    sent = 0
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure is never a fluke
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers={"Authorization": f"Bearer {admin}"}, checks=CHECKS)

    try:
        check()
    except (Exception, FailureGroup) as exc:  # a group: every check the first bad case broke
        failures.append(f"{operation.label} ({mode.value}): {exc}")
    return sent, failures


def test_every_operation_keeps_to_its_documented_responses(api_schema: Any, admin: str) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30  # the registry, delivery, events and tokens routes
    sent = 0
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n, found = run_operation(operation, mode, admin)
            sent += n
            failures += found
    assert sent >= len(operations) * 2
    assert not failures, "\n\n".join(failures)
