"""The serving view and a served version, over fake ports (no database, no registry).

- a request is resolved once, whatever the edge: the arm of a routed bare name is picked once
  and the request carries it to the recorder;
- one refresh reads the source once and applies the models (aliases) before the routing table;
- ``ServedModel.predict`` goes through its own breaker and bulkhead.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from modelplane.errors import CircuitOpen, ModelNotFound, Overloaded, PredictionFailed
from modelplane.serving.delivery import TrafficRouter
from modelplane.serving.feedback import FeedbackMemory
from modelplane.serving.options import ModelOptions, ServeOptions
from modelplane.serving.pool import ModelPool
from modelplane.serving.ports import LoadedVersion, ModelFacts, Snapshot, StaticRouting
from modelplane.serving.resilience import Bulkhead, CircuitBreaker
from modelplane.serving.served import ServedModel
from modelplane.serving.service import InferenceService
from modelplane.serving.shadow import ShadowRunner
from modelplane.serving.types import InferRequest
from modelplane.serving.view import ServingView

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- fakes -------------------------------------------------------------------------------------
class Runtime:
    """Predicts its version number for every row (so an answer names who gave it)."""

    has_proba = False

    def __init__(self, version: int, fail: bool = False) -> None:
        self.version = version
        self.fail = fail
        self.calls = 0

    def predict(self, batch: Any) -> Any:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the model is broken")
        return np.full(len(batch), self.version)

    def predict_proba(self, batch: Any) -> Any:
        raise NotImplementedError


class Loader:
    """Loads any version of model ``m``; remembers the order it was asked in."""

    def __init__(self) -> None:
        self.loaded: list[tuple[str, int]] = []

    def __call__(self, name: str, version: int) -> LoadedVersion:
        if name != "m":
            raise ModelNotFound(f"model {name!r} does not exist")
        self.loaded.append((name, version))
        return LoadedVersion(name, version, "fake", Runtime(version), None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Arm:
    name: str
    version: int


@dataclass
class Route:
    """A route sending everything to its one arm; counts its picks."""

    model: str
    arms: tuple[Arm, ...]
    name: str = "exp"
    subject: str = "experiment:exp"
    picks: list[str | None] = field(default_factory=list)

    def pick(self, unit_id: str | None) -> Arm:
        self.picks.append(unit_id)
        return self.arms[0]


class Source:
    """What the registry and traffic say, as the test sets it."""

    def __init__(self) -> None:
        self.aliases: dict[str, int] = {"champion": 1}
        self.routes: dict[str, Route] = {}
        self.snapshots = 0

    def model(self, name: str) -> ModelFacts:
        if name != "m":
            raise ModelNotFound(f"model {name!r} does not exist")
        return ModelFacts("m", dict(self.aliases), max(self.aliases.values()), {})

    def snapshot(self, names: Collection[str]) -> Snapshot:
        self.snapshots += 1
        models = {n: self.model(n) for n in names if n == "m"}
        return Snapshot(models, StaticRouting(routes=dict(self.routes)))

    def model_names(self) -> Sequence[str]:
        return ["m"]


class Recorder:
    """Counts requests per (subject, variant)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bool]] = []

    def request(self, subject: str, variant: str, latency_ms: float, *, ok: bool) -> None:
        self.requests.append((subject, variant, ok))

    def outcome(self, subject: str, variant: str, value: float) -> None: ...

    def shadow(self, subject: str, variant: str, latency_ms: float, **kw: Any) -> None: ...

    def shadow_dropped(self, subject: str, variant: str) -> None: ...

    def store_feedback(self, request_id: str, **kw: Any) -> int:
        return 1

    async def flush(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class CountingView(ServingView):
    """A view that counts how often a request is resolved."""

    resolved = 0

    async def resolve(self, request: InferRequest) -> ServedModel:
        self.resolved += 1
        return await super().resolve(request)


def serving(source: Source, loader: Loader) -> tuple[CountingView, InferenceService, Recorder]:
    options = ServeOptions(grpc_port=None, executor_threads=0, poll_interval_s=3600)
    view = CountingView(source, ModelPool(loader, options, executor=None), options)
    service = InferenceService(view)
    recorder = Recorder()
    shadows = ShadowRunner(service.predict_unlogged, recorder)  # type: ignore[arg-type]
    router = TrafficRouter(view, recorder, shadows, FeedbackMemory(recorder))  # type: ignore[arg-type]
    service.attach(router)
    return view, service, recorder


def request(model: str = "m", unit_id: str | None = "u1") -> InferRequest:
    return InferRequest(model=model, inputs={"x": np.zeros((1, 2))}, unit_id=unit_id)


# -- resolution --------------------------------------------------------------------------------
class TestResolution:
    async def test_a_routed_request_is_resolved_and_its_arm_picked_once(self) -> None:
        source, loader = Source(), Loader()
        route = Route("m", (Arm("candidate", 2),))
        source.routes = {"m": route}
        view, service, recorder = serving(source, loader)
        await view.refresh()  # knows nothing yet: reads the routing table only
        result = await service.infer(request())
        assert view.resolved == 1
        assert route.picks == ["u1"]
        assert (result.version, result.parameters["variant"]) == (2, "candidate")
        assert recorder.requests == [("experiment:exp", "candidate", True)]

    async def test_an_edge_that_resolved_passes_the_version_on_and_nothing_is_picked_again(
        self,
    ) -> None:
        source, loader = Source(), Loader()
        route = Route("m", (Arm("candidate", 2),))
        source.routes = {"m": route}
        view, service, recorder = serving(source, loader)
        await view.refresh()
        req = request()
        served = await view.resolve(req)  # what /predict does to decode with the arm's signature
        result = await service.infer(req, served)
        assert view.resolved == 1
        assert len(route.picks) == 1
        assert result.parameters["variant"] == "candidate"
        assert recorder.requests == [("experiment:exp", "candidate", True)]

    async def test_an_unrouted_request_is_resolved_once_by_its_aliases(self) -> None:
        view, service, recorder = serving(Source(), Loader())
        result = await service.infer(request(unit_id=None))
        assert view.resolved == 1
        assert result.version == 1  # champion
        assert recorder.requests == []

    async def test_a_name_with_an_alias_or_version_is_never_routed(self) -> None:
        source = Source()
        route = Route("m", (Arm("candidate", 2),))
        source.routes = {"m": route}
        view, service, _ = serving(source, Loader())
        await view.refresh()
        assert (await service.infer(request("m@champion"))).version == 1
        assert (await service.infer(request("m/1"))).version == 1
        assert route.picks == []


# -- the one refresh ---------------------------------------------------------------------------
class TestRefresh:
    async def test_one_read_per_refresh_and_the_models_are_applied_before_the_routing(
        self,
    ) -> None:
        source, loader = Source(), Loader()
        view, service, _ = serving(source, loader)
        await service.infer(request())  # m is known and in use: v1
        source.aliases = {"champion": 2}
        source.routes = {"m": Route("m", (Arm("candidate", 3),))}
        before = source.snapshots
        await view.refresh()
        assert source.snapshots == before + 1
        # the alias's new version was warmed (models) before the route's arm (routing)
        assert loader.loaded == [("m", 1), ("m", 2), ("m", 3)]

    async def test_a_route_that_ends_hands_the_name_to_the_aliases_read_in_the_same_refresh(
        self,
    ) -> None:
        source, loader = Source(), Loader()
        view, service, _ = serving(source, loader)
        source.routes = {"m": Route("m", (Arm("candidate", 2),))}
        await service.infer(request())
        await view.refresh()
        assert (await service.infer(request())).version == 2  # routed
        source.routes = {}
        source.aliases = {"champion": 2}  # the candidate was promoted as the route ended
        await view.refresh()
        assert (await service.infer(request())).version == 2  # never back to v1

    async def test_a_model_that_disappears_keeps_its_view(self) -> None:
        source, loader = Source(), Loader()
        view, service, _ = serving(source, loader)
        await service.infer(request())

        def gone(names: Collection[str]) -> Snapshot:
            return Snapshot({}, StaticRouting())

        source.snapshot = gone  # type: ignore[method-assign]
        await view.refresh()
        assert (await service.infer(request())).version == 1


# -- a served version predicts through its breaker and bulkhead ---------------------------------
def served_model(runtime: Runtime, **breaker: Any) -> ServedModel:
    loaded = LoadedVersion("m", runtime.version, "fake", runtime, None)  # type: ignore[arg-type]
    return ServedModel(
        loaded=loaded,
        options=ModelOptions(max_batch_size=1),
        breaker=CircuitBreaker(**breaker),
        bulkhead=Bulkhead(max_concurrency=1, max_queue=0),
        nbytes=0,
        load_seconds=0.0,
    )


class TestServedModelPredict:
    async def test_a_prediction_goes_through_the_bulkhead_and_counts_in_flight(self) -> None:
        served = served_model(Runtime(1))
        out = await served.predict(np.zeros((2, 2)), ("predict",))
        assert out["predict"].tolist() == [1, 1]
        assert served.in_flight == 0
        assert served.bulkhead.in_flight == 0

    async def test_a_full_bulkhead_sheds_the_request_before_the_model(self) -> None:
        runtime = Runtime(1)
        served = served_model(runtime)
        async with served.bulkhead.slot():  # the one slot is taken, the queue holds none
            with pytest.raises(Overloaded):
                await served.predict(np.zeros((1, 2)), ("predict",))
        assert runtime.calls == 0

    async def test_failures_open_its_breaker_and_an_open_breaker_refuses_before_the_model(
        self,
    ) -> None:
        runtime = Runtime(1, fail=True)
        served = served_model(runtime, min_requests=2, error_rate=0.5)
        for _ in range(2):
            with pytest.raises(PredictionFailed):
                await served.predict(np.zeros((1, 2)), ("predict",))
        assert served.breaker.state == "open"
        calls = runtime.calls
        with pytest.raises(CircuitOpen):
            await served.predict(np.zeros((1, 2)), ("predict",))
        assert runtime.calls == calls
        assert served.in_flight == 0
