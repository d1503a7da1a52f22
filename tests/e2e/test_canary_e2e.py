"""Canaries end to end: the real serving app routes live requests by the rollout, counts them,
and its own controller decides — a candidate failing about 20 % of its requests is rolled back
by itself, a healthy one is promoted by itself, with nobody calling the controller."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest

from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.serving.options import ServeOptions
from modelplane.traffic.rollout import Rollout
from tests.e2e import serving_models
from tests.e2e.test_serving_app import serve

pytestmark = pytest.mark.anyio

X = np.random.default_rng(11).normal(size=(400, 3))


def fast() -> ServeOptions:
    return ServeOptions(
        grpc_port=None,
        access_log=False,
        poll_interval_s=0.05,
        controller=True,
        controller_interval_s=0.05,
        stats_flush_s=0.05,
    )


@pytest.fixture
def canary(client: Client) -> Client:
    """``card``: v1 healthy champion; v2 fails ~20 % of requests; v3 healthy. All gated."""
    client.log_model(
        serving_models.row_sums, trust=True, name="card", input_example=X, alias="champion"
    )
    client.log_model(
        serving_models.fails_one_in_five, trust=True, name="card", input_example=X[X[:, 0] < 0]
    )
    client.log_model(serving_models.row_sums, trust=True, name="card", input_example=X)
    for version in (1, 2, 3):
        client.record_gate_result("card", version, passed=True)
    return client


async def drive(
    http: httpx.AsyncClient, platform: Platform, seconds: float
) -> tuple[Rollout, Counter[int]]:
    """Send live traffic (many units) until the rollout ends or time runs out."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    i = 0
    rollout = platform.traffic.latest_rollout("card")
    while time.monotonic() < deadline and rollout.status == "running":
        batch = []
        for _ in range(20):
            row = X[i % len(X) : i % len(X) + 1]
            body: dict[str, Any] = {"model": "card", "inputs": row.tolist(), "unit_id": f"u{i}"}
            batch.append(http.post("/predict", json=body))
            i += 1
        for response in await asyncio.gather(*batch):
            statuses[response.status_code] += 1
        await asyncio.sleep(0.01)
        rollout = await asyncio.to_thread(platform.traffic.latest_rollout, "card")
    return rollout, statuses


async def test_a_candidate_failing_a_fifth_of_requests_is_rolled_back_by_the_server(
    platform: Platform, canary: Client
) -> None:
    canary.start_rollout("card", 2, steps=(25, 50, 100), step_duration_s=0, min_requests=100)
    async with serve(platform, fast()) as http:
        rollout, statuses = await drive(http, platform, 30)
    assert rollout.status == "rolled_back", rollout
    assert rollout.step_index == 0  # stopped in its first step, before the minimum sample
    assert "above the 1.00% limit" in rollout.reason
    assert canary.get_model("card").aliases["champion"] == 1
    assert statuses[500] > 0  # the candidate's own failures reached their callers (25 %)
    assert statuses[500] < statuses[200]
    events = [e.type for e in canary.list_events(limit=100).items]
    assert "CanaryRolledBack" in events
    assert "CanaryPromoted" not in events


async def test_a_healthy_candidate_is_promoted_by_the_server(
    platform: Platform, canary: Client
) -> None:
    canary.start_rollout("card", 3, steps=(25, 50, 100), step_duration_s=0, min_requests=60)
    async with serve(platform, fast()) as http:
        rollout, statuses = await drive(http, platform, 60)
        after = await http.post("/predict", json={"model": "card", "inputs": X[:1].tolist()})
    assert rollout.status == "promoted", rollout
    assert statuses == Counter({200: sum(statuses.values())})
    assert canary.get_model("card").aliases["champion"] == 3
    assert after.json()["version"] == 3
    records = sorted(canary.list_events(limit=100).items, key=lambda e: e.id)
    steps = [e.type for e in records if e.type.startswith("Canary")]
    assert steps == ["CanaryStepAdvanced", "CanaryStepAdvanced", "CanaryPromoted"]


async def test_the_promoted_candidate_keeps_the_traffic_the_moment_the_route_ends(
    platform: Platform, canary: Client
) -> None:
    slow_polls = ServeOptions(
        grpc_port=None, access_log=False, poll_interval_s=3600, controller=False
    )
    canary.start_rollout("card", 3, steps=(100,), step_duration_s=0, min_requests=1)
    async with serve(platform, slow_polls) as http:
        body = {"model": "card", "inputs": X[:1].tolist()}
        assert (await http.post("/predict", json=body)).json()["version"] == 3  # routed
        canary.decide_rollout("card", "promote", reason="test")
        router = http._transport.app.state.serving.service.router  # type: ignore[attr-defined]
        await router.refresh()  # the route ends; the pool's own poll is an hour away
        for _ in range(20):
            assert (await http.post("/predict", json=body)).json()["version"] == 3
