"""The registry's routes as one router: models, versions, the upload, aliases.

Each group lives in its own module (``routes_models``, ``routes_versions``, ``routes_upload``,
``routes_aliases``); this router includes them in the order the API has always registered its
operations, so the OpenAPI document and route matching stay as they were. Writes are commands
on the bus or the registry's use cases (``modelplane.registry.usecases``), reads go through
``platform.registry``.
"""

from __future__ import annotations

from fastapi import APIRouter

from modelplane.api import routes_aliases, routes_models, routes_upload, routes_versions

__all__ = ["router"]

router = APIRouter()
router.include_router(routes_models.router)
router.include_router(routes_versions.router)
router.include_router(routes_upload.router)  # the POST of a path routes_versions reads
router.include_router(routes_aliases.router)
