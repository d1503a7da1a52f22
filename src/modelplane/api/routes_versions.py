"""Versions: list, read, download the artifact, archive and restore, and their tags.

Uploading a version is ``routes_upload.py``. Writes are commands on the bus, reads go through
``platform.registry``; no SQL here. Routes are plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from modelplane.api.errors import error_docs
from modelplane.api.params import (
    Cursor,
    Limit,
    MetricFilters,
    Name,
    Number,
    TagFilters,
    TagKey,
    cursor_of,
    metric_filters,
    tag_filters,
)
from modelplane.api.schemas import READ, WRITE, TagBody, TagOut, VersionOut, VersionPage
from modelplane.api.security import PlatformDep, ReadAccess, WriteAccess
from modelplane.errors import Conflict
from modelplane.registry import commands as rc
from modelplane.registry.model import ModelVersion

__all__ = ["router"]

router = APIRouter()

# Besides success: 400 only where a body or a cursor is parsed, 404 where a version is named,
# 409 where a rule of state can refuse, 413 wherever a body is read; 401/403 on a read route
# only when the server sets ``require_auth``.
_READ_ERRORS = error_docs(401, 403, 404, 422)
_STATE_ERRORS = error_docs(401, 403, 404, 409, 422)


@router.get(
    "/models/{name}/versions",
    response_model=VersionPage,
    responses=error_docs(400, 401, 403, 404, 422),
    tags=["versions"],
    openapi_extra=READ,
)
def list_versions(
    name: Name,
    platform: PlatformDep,
    _: ReadAccess,
    status: Annotated[Literal["ready", "archived"] | None, Query()] = None,
    tag: TagFilters = None,
    metric: MetricFilters = None,
    cursor: Cursor = None,
    limit: Limit = 100,
    order: Annotated[Literal["asc", "desc"], Query(description="By version number.")] = "desc",
) -> dict[str, Any]:
    """A model's versions, newest first, filtered by status, tags and metric thresholds."""
    page = platform.registry.list_versions(
        name,
        status=status,
        tags=tag_filters(tag),
        metrics=metric_filters(metric),
        cursor=cursor_of(cursor),
        limit=limit,
        order=order,
    )
    return {"versions": [v.to_dict() for v in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/models/{name}/versions/{version}",
    response_model=VersionOut,
    responses=_READ_ERRORS,
    tags=["versions"],
    openapi_extra=READ,
)
def get_version(
    name: Name, version: Number, platform: PlatformDep, _: ReadAccess
) -> dict[str, Any]:
    return platform.registry.get_version(name, version).to_dict()


@router.get(
    "/models/{name}/versions/{version}/artifact",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The model file."},
        **error_docs(401, 403, 404, 409, 422, 500),
    },
    tags=["versions"],
    openapi_extra=READ,
)
def download_artifact(
    name: Name, version: Number, platform: PlatformDep, _: ReadAccess
) -> FileResponse:
    """The version's artifact file, re-hashed before it is sent (500 if corrupted or missing,
    409 when the artifact is a folder)."""
    found: ModelVersion = platform.registry.get_version(name, version)
    path = platform.artifacts.fetch(
        found.digest, name=found.artifact_name, owner=f"{name}/{version}"
    )
    if path.is_dir():
        raise Conflict(
            f"the artifact of {name}/{version} is a folder; only files can be downloaded",
            field="version",
        )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=found.artifact_name,
        headers={"ETag": f'"{found.digest}"', "X-Modelplane-Digest": f"sha256:{found.digest}"},
    )


@router.post(
    "/models/{name}/versions/{version}/archive",
    response_model=VersionOut,
    responses=_STATE_ERRORS,
    tags=["versions"],
    openapi_extra=WRITE,
)
def archive_version(
    name: Name, version: Number, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    """Archive a version (409 while an alias points at it). Archiving twice is a no-op."""
    platform.bus.handle(rc.ArchiveVersion(model=name, version=version))
    return platform.registry.get_version(name, version).to_dict()


@router.post(
    "/models/{name}/versions/{version}/restore",
    response_model=VersionOut,
    responses=_STATE_ERRORS,
    tags=["versions"],
    openapi_extra=WRITE,
)
def restore_version(
    name: Name, version: Number, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    """Make an archived version ready again (409 when it is ready already)."""
    platform.bus.handle(rc.RestoreVersion(model=name, version=version))
    return platform.registry.get_version(name, version).to_dict()


@router.put(
    "/models/{name}/versions/{version}/tags/{key:path}",
    response_model=TagOut,
    responses=error_docs(400, 401, 403, 404, 413, 422),
    tags=["tags"],
    openapi_extra=WRITE,
)
def set_version_tag(
    name: Name, version: Number, key: TagKey, body: TagBody, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    platform.bus.handle(rc.SetTag(model=name, key=key, value=body.value, version=version))
    return {"name": name, "version": version, "key": key, "value": body.value}


@router.delete(
    "/models/{name}/versions/{version}/tags/{key:path}",
    status_code=204,
    responses=error_docs(401, 403, 404, 422),
    tags=["tags"],
    openapi_extra=WRITE,
)
def delete_version_tag(
    name: Name, version: Number, key: TagKey, platform: PlatformDep, _: WriteAccess
) -> Response:
    platform.bus.handle(rc.DeleteTag(model=name, key=key, version=version))
    return Response(status_code=204)
