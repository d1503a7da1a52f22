"""Blue-green deployments over REST: deploy a version, roll the last deploy back, list them.

Writes are commands on the bus and need an ``admin`` token; the list follows ``require_read``.
The release gates are not run here: the version's gates must have passed already, else 409
``gate_blocked`` unless ``force`` (recorded). Routes are plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from modelplane.api.errors import error_docs
from modelplane.api.params import ModelFilter, Name, RecentLimit, model_filter
from modelplane.api.refs import existing_model, version_of
from modelplane.api.schemas import ADMIN, READ
from modelplane.api.schemas_delivery import DeployBody, DeploymentList, DeploymentOut
from modelplane.api.security import AdminAccess, PlatformDep, ReadAccess
from modelplane.core.names import validate_name
from modelplane.traffic import commands as tc
from modelplane.traffic.deployment import Deployment

__all__ = ["router"]

router = APIRouter(tags=["delivery"])


@router.post(
    "/models/{name}/deployments",
    status_code=201,
    response_model=DeploymentOut,
    responses=error_docs(400, 401, 403, 404, 409, 413, 422),
    summary="Blue-green deploy a version (admin)",
    openapi_extra=ADMIN,
)
def deploy(
    name: Name,
    platform: PlatformDep,
    _: AdminAccess,
    body: Annotated[DeployBody, Body(examples=[{"version": 5, "keep_blue_s": 600}])],
) -> dict[str, Any]:
    """Move the ``champion`` alias to ``version`` at once; serving replicas keep the previous
    champion (blue) loaded ``keep_blue_s`` seconds so a rollback is instant.

    The release gates are **not** run here: the version's gates must have passed already
    (``modelplane gate MODEL/N``; ``modelplane deploy`` runs them first), else 409
    ``gate_blocked`` unless ``force`` (recorded). 409 also when it is already the champion or a
    rollout or split routes the model; 404 for an unknown model or version.
    """
    model = existing_model(platform, name)
    version = version_of(platform, model, body.version, field="body.version")
    deployment: Deployment = platform.bus.handle(
        tc.Deploy(model=model, version=version, keep_blue_s=body.keep_blue_s, force=body.force)
    )
    return deployment.to_dict()


@router.post(
    "/models/{name}/deployments/rollback",
    response_model=DeploymentOut,
    responses=error_docs(401, 403, 404, 409, 422),
    summary="Roll the last deployment back (admin)",
    openapi_extra=ADMIN,
)
def rollback_deploy(name: Name, platform: PlatformDep, _: AdminAccess) -> dict[str, Any]:
    """The ``champion`` goes back to the version the last deploy replaced (blue). 409 when
    there is nothing to roll back or the champion moved since."""
    deployment: Deployment = platform.bus.handle(tc.RollbackDeploy(model=validate_name(name)))
    return deployment.to_dict()


@router.get(
    "/deployments",
    response_model=DeploymentList,
    responses=error_docs(401, 403, 422),
    summary="List deployments",
    openapi_extra=READ,
)
def list_deployments(
    platform: PlatformDep, _: ReadAccess, model: ModelFilter = None, limit: RecentLimit = 50
) -> dict[str, Any]:
    """Blue-green deployments, newest first."""
    found = platform.traffic.list_deployments(model=model_filter(model), limit=limit)
    return {"deployments": [d.to_dict() for d in found]}
