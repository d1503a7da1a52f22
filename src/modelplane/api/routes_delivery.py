"""Safe delivery's routes as one router: experiments, canary rollouts, blue-green deploys, gates.

The admin side of delivery over REST, next to the CLI's ``experiments``, ``rollout``,
``deploy`` and ``gate`` commands. Each group lives in its own module (``routes_experiments``,
``routes_rollouts``, ``routes_deployments``, ``routes_gates``); this router includes them in the
order the API has always registered its operations, so the OpenAPI document and route matching
stay as they were. Writes are commands on the bus and need a token of scope ``admin``; reads go
through ``platform.traffic`` and follow ``require_read``. Every refusal is an error of the one
JSON shape and changes nothing: the handlers check every rule inside one transaction and commit
state and events together.
"""

from __future__ import annotations

from fastapi import APIRouter

from modelplane.api import routes_deployments, routes_experiments, routes_gates, routes_rollouts

__all__ = ["router"]

router = APIRouter()
router.include_router(routes_experiments.router)
router.include_router(routes_rollouts.router)
router.include_router(routes_deployments.router)
router.include_router(routes_gates.router)
