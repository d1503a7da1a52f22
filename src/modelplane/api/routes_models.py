"""Models: list, register, read, and their tags.

Writes are commands on the bus (``register_model``, the registry's use case, for a new model),
reads go through ``platform.registry``; no SQL here. The database calls are synchronous, so
every route is a plain ``def``: FastAPI runs it in its thread pool and the event loop never
blocks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from modelplane.api.errors import error_docs
from modelplane.api.params import (
    Cursor,
    Limit,
    Name,
    TagFilters,
    TagKey,
    cursor_of,
    tag_filters,
)
from modelplane.api.schemas import (
    NO_NUL_PATTERN,
    READ,
    WRITE,
    ModelCreate,
    ModelOut,
    ModelPage,
    TagBody,
    TagOut,
)
from modelplane.api.security import PlatformDep, ReadAccess, WriteAccess
from modelplane.registry import commands as rc
from modelplane.registry.usecases import register_model as register_model_usecase

__all__ = ["router"]

router = APIRouter()

# What each route can answer besides its success: 400 only where a body or a cursor is parsed,
# 404 only where a model is named, 409 only where a rule of state can refuse, 413 wherever a
# body is read (``limits.BodyLimit``). 401/403 on a read route happen only when the server sets
# ``require_auth``.
_BODY_WRITE_ERRORS = error_docs(400, 401, 403, 404, 413, 422)
_WRITE_ERRORS = error_docs(401, 403, 404, 422)


@router.get(
    "/models",
    response_model=ModelPage,
    responses=error_docs(400, 401, 403, 422),
    tags=["models"],
    openapi_extra=READ,
)
def list_models(
    platform: PlatformDep,
    _: ReadAccess,
    name_prefix: Annotated[
        str | None,
        Query(max_length=128, pattern=NO_NUL_PATTERN, description="Names starting with this."),
    ] = None,
    tag: TagFilters = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Registered models in name order, filtered by name prefix and tags."""
    page = platform.registry.list_models(
        name_prefix=name_prefix, tags=tag_filters(tag), cursor=cursor_of(cursor), limit=limit
    )
    return {"models": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor}


@router.post(
    "/models",
    status_code=201,
    response_model=ModelOut,
    responses=error_docs(400, 401, 403, 409, 413, 422),
    tags=["models"],
    openapi_extra=WRITE,
)
def register_model(
    body: ModelCreate, request: Request, response: Response, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    """Register a model (409 when the name is taken)."""
    model = register_model_usecase(
        platform.bus.handle, body.name, description=body.description, tags=body.tags
    )
    response.headers["Location"] = f"{request.url.path}/{model.name}"
    return model.to_dict()


@router.get(
    "/models/{name}",
    response_model=ModelOut,
    responses=error_docs(401, 403, 404, 422),
    tags=["models"],
    openapi_extra=READ,
)
def get_model(name: Name, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    return platform.registry.get_model(name).to_dict()


@router.put(
    "/models/{name}/tags/{key:path}",
    response_model=TagOut,
    responses=_BODY_WRITE_ERRORS,
    tags=["tags"],
    openapi_extra=WRITE,
)
def set_model_tag(
    name: Name, key: TagKey, body: TagBody, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    platform.bus.handle(rc.SetTag(model=name, key=key, value=body.value))
    return {"name": name, "version": None, "key": key, "value": body.value}


@router.delete(
    "/models/{name}/tags/{key:path}",
    status_code=204,
    responses=_WRITE_ERRORS,
    tags=["tags"],
    openapi_extra=WRITE,
)
def delete_model_tag(name: Name, key: TagKey, platform: PlatformDep, _: WriteAccess) -> Response:
    platform.bus.handle(rc.DeleteTag(model=name, key=key))
    return Response(status_code=204)
