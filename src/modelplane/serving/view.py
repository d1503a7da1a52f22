"""The serving view: what this replica knows of the registry and traffic, and what answers.

One object holds it: each known model's aliases, latest ready version and ``serving.*`` options
(:class:`ModelView`), and the routing table (routes, shadows, versions to keep). **One** loop
refreshes it every poll interval from one read of the :class:`~modelplane.serving.ports.ViewSource`
(polling now; events will drive it), in this order:

1. the models: a version an alias now points at (or a new latest) is loaded and warmed *before*
   the view switches to it, so a switch fails no request (the old version finishes what it has
   in flight and stays until evicted);
2. the routing table: every version a route sends to, a shadow mirrors to or a deploy keeps is
   loaded and warmed before the table is swapped in; a route whose version cannot be loaded
   keeps its previous form (or none). Because the models were read first, a route that ends
   hands the bare name back to aliases that are already current (a promoted candidate never
   flips back to the old champion for a poll interval).

Requests never touch the database on the hot path: :meth:`ServingView.resolve` turns a request's
reference and unit into the served version that answers it, **once per request**, for REST OIP,
``/predict`` and gRPC alike (a bare name under an experiment or rollout: ``route.pick(unit)``,
and the request carries the route and arm it got).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from modelplane.core.names import Reference, parse_reference
from modelplane.core.periodic import Periodic
from modelplane.errors import AliasNotFound, InvalidInput, ModelNotFound, VersionNotFound
from modelplane.serving.options import ModelOptions, ServeOptions
from modelplane.serving.pool import ModelPool
from modelplane.serving.ports import (
    EMPTY_ROUTING,
    ModelFacts,
    Route,
    Routing,
    Shadow,
    StaticRouting,
    ViewSource,
)
from modelplane.serving.served import ServedModel
from modelplane.serving.types import InferRequest

__all__ = ["ModelView", "ServingView"]

log = logging.getLogger(__name__)


@dataclass
class ModelView:
    """What serving knows of a model without asking the database."""

    name: str
    aliases: dict[str, int]
    latest_ready: int | None
    options: ModelOptions

    def number_for(self, ref: Reference) -> int:
        if ref.version is not None:
            return ref.version
        if ref.alias is not None and ref.alias != "latest":
            if ref.alias not in self.aliases:
                raise AliasNotFound(
                    f"model {self.name!r} has no alias {ref.alias!r}", field="alias"
                )
            return self.aliases[ref.alias]
        if ref.alias is None and "champion" in self.aliases:
            return self.aliases["champion"]
        if self.latest_ready is None:
            raise VersionNotFound(f"model {self.name!r} has no ready version", field="version")
        return self.latest_ready


class ServingView:
    """Aliases and routing of this replica, refreshed by one loop; resolves each request once."""

    def __init__(self, source: ViewSource, pool: ModelPool, options: ServeOptions) -> None:
        self.pool = pool
        self._source = source
        self._options = options
        self.models: dict[str, ModelView] = {}
        self.routing: Routing = EMPTY_ROUTING
        #: the table's parts the request path reads (one attribute lookup less each)
        self.routes: Mapping[str, Route] = {}
        self.shadows: Mapping[str, Shadow] = {}
        self._references: dict[tuple[str, str | None], Reference] = {}
        self._missing: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._loop = Periodic(
            self.refresh, options.poll_interval_s, name="modelplane-view-poll", log=log,
            failure="serving view refresh failed; keeping the current one",
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load and warm (and pin) every ``--model``, read everything once, then poll."""
        for ref in self._options.models:
            served = await self.get(ref)
            self.pool.pin((served.name, served.version))
        try:
            await self.refresh()
        except Exception:
            log.exception("could not read the serving view; serving without routes for now")
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    # -- the hot path ------------------------------------------------------------------------
    async def resolve(self, request: InferRequest) -> ServedModel:
        """The version that answers ``request``; a routed bare name sets ``request.route`` and
        ``request.arm`` (the arm is picked here, once). A loaded version costs no await."""
        key: tuple[str, int] | None
        if request.version is None and (route := self.routes.get(request.model)) is not None:
            # only a bare name is a key: "m@a" and "m/3" miss
            arm = route.pick(request.unit_id)
            request.route, request.arm = route, arm
            key = (route.model, arm.version)
        else:
            key = self._key(request.model, request.version)
        if key is not None:
            served = self.pool.lookup(key)
            if served is not None:
                return served
            if request.route is not None:
                return await self.version(*key)
        return await self.get(request.model, request.version)

    def _key(self, ref: str, version: str | None) -> tuple[str, int] | None:
        """``(name, number)`` a reference names now; None when the model is not known yet."""
        reference = self._references.get((ref, version))
        if reference is None:  # parsing validates names with regexes: do it once per string
            reference = _reference(ref, version)
            if len(self._references) < 10_000:
                self._references[(ref, version)] = reference
        view = self.models.get(reference.name)
        if view is None:
            return None
        return (reference.name, view.number_for(reference))

    async def get(self, ref: str, version: str | None = None) -> ServedModel:
        """The ready version a reference (and an optional URL version or alias) names, routes
        aside (metadata, readiness, fallbacks, admin)."""
        key = self._key(ref, version)
        if key is None:
            await self._fetch_unknown(_reference(ref, version).name)  # the first request only
            key = self._key(ref, version)
            assert key is not None
        return await self.version(*key)

    async def version(self, name: str, number: int) -> ServedModel:
        """``name/number``, loaded and warmed first if need be."""
        key = (name, number)
        served = self.pool.lookup(key)
        if served is not None:
            return served
        view = self.models.get(name)
        if view is None:
            view = await self._fetch_unknown(name)
        return await self.pool.get(key, view.options)

    async def _fetch_unknown(self, name: str) -> ModelView:
        """First request for a model: read its view once. A model that does not exist is
        remembered for one poll interval, so a stream of requests for a wrong name costs no
        database query each (the registry is asked again after that)."""
        missing_until = self._missing.get(name)
        if missing_until is not None and time.monotonic() < missing_until:
            raise ModelNotFound(f"model {name!r} does not exist", field="name")
        try:
            facts = await asyncio.to_thread(self._source.model, name)
        except ModelNotFound:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[name] = time.monotonic() + self._options.poll_interval_s
            raise
        self._missing.pop(name, None)
        view = self.models[name] = self._model_view(facts)
        return view

    def _model_view(self, facts: ModelFacts) -> ModelView:
        return ModelView(
            name=facts.name,
            aliases=dict(facts.aliases),
            latest_ready=facts.latest_ready,
            options=self._options.defaults.with_tags(dict(facts.tags)),
        )

    # -- admin -------------------------------------------------------------------------------
    async def load(self, ref: str) -> ServedModel:
        """Load (and pin) a reference now."""
        served = await self.get(ref)
        self.pool.pin((served.name, served.version))
        return served

    def unload(self, name: str, version: int | None = None) -> list[int]:
        """Unload a model's versions (all, or one); they reload on their next request."""
        versions = self.pool.unload(name, version)
        if version is None:
            self.models.pop(name, None)
        return versions

    # -- the refresh -------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the models and the routing table once; apply the models, then the routing."""
        async with self._lock:
            snapshot = await asyncio.to_thread(self._source.snapshot, list(self.models))
            await self._apply_models(snapshot.models)
            await self._apply_routing(snapshot.routing)

    async def _apply_models(self, facts: Mapping[str, ModelFacts]) -> None:
        """Warm what an alias (or a new latest) now points at, then switch each model to it."""
        for name, old in list(self.models.items()):
            read = facts.get(name)
            if read is None:  # a model deleted: keep serving the old view
                log.warning("could not refresh model %s; keeping its view", name)
                continue
            new = self._model_view(read)
            if await self._warm_targets(old, new):
                self.models[name] = new

    async def _warm_targets(self, old: ModelView, new: ModelView) -> bool:
        """Load the versions ``new`` moves an alias (or latest) to, when the model is in use;
        False when one cannot be loaded (the old view is kept)."""
        name = old.name
        in_use = self.pool.versions_of(name)
        if not in_use:
            return True
        targets = set(new.aliases.values()) | ({new.latest_ready} - {None})
        for number in targets:
            assert number is not None
            before = [a for a, v in old.aliases.items() if v != number]
            moved_here = [a for a, v in new.aliases.items() if v == number and a in before]
            newly_latest = number == new.latest_ready and old.latest_ready != number
            if (moved_here or newly_latest) and number not in in_use:
                try:
                    await self.pool.get((name, number), new.options)
                except Exception:
                    log.exception("could not warm %s/%s; keeping the old view", name, number)
                    return False
        return True

    async def _apply_routing(self, table: Routing) -> None:
        """Load and warm what the table needs, protect it from eviction, then swap it in."""
        old = self.routes
        routes = dict(table.routes)
        for model, route in table.routes.items():
            if not await self._ready(model, [arm.version for arm in route.arms]):
                previous = old.get(model)
                if previous is not None:
                    routes[model] = previous
                else:
                    del routes[model]
        shadows = {
            model: shadow
            for model, shadow in table.shadows.items()
            if await self._ready(model, [shadow.candidate])
        }
        now = time.time()
        protect: dict[tuple[str, int], float] = {}
        for keep in table.keep:
            if keep.until > now:
                await self._ready(keep.model, [keep.version])  # kept for a quick rollback
                protect[(keep.model, keep.version)] = keep.until
        for route in routes.values():
            for arm in route.arms:
                protect[(route.model, arm.version)] = math.inf
        for shadow in shadows.values():
            protect[(shadow.model, shadow.candidate)] = math.inf
        self.pool.protect(protect)
        self.routing = StaticRouting(routes=routes, shadows=shadows, keep=tuple(table.keep))
        self.routes, self.shadows = routes, shadows

    async def _ready(self, model: str, versions: list[int]) -> bool:
        for number in versions:
            if self.pool.has(model, number):
                continue
            try:
                await self.version(model, number)
            except Exception:
                log.exception(
                    "could not load %s/%s for its route; not routing to it", model, number
                )
                return False
        return True


def _reference(ref: str, version: str | None) -> Reference:
    reference = parse_reference(ref)
    if version is None or version == "":
        return reference
    if reference.alias is not None or reference.version is not None:
        raise InvalidInput(
            f"{ref!r} already names a version; do not also give one in the path",
            field="version",
        )
    if version.isdigit():
        return Reference(name=reference.name, version=int(version))
    return parse_reference(f"{reference.name}@{version}")
