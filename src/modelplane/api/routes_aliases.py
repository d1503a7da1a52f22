"""Aliases (read, point, remove) and resolving a reference to the version it names.

Writes are commands on the bus, reads go through ``platform.registry``; no SQL here. Routes are
plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from modelplane.api.errors import error_docs
from modelplane.api.params import AliasName, AliasOrLatest, Name
from modelplane.api.schemas import (
    NO_NUL_PATTERN,
    READ,
    WRITE,
    AliasBody,
    AliasList,
    AliasOut,
    VersionOut,
)
from modelplane.api.security import PlatformDep, ReadAccess, WriteAccess
from modelplane.registry import commands as rc
from modelplane.registry.model import ModelVersion, Reference, validate_alias, validate_name

__all__ = ["router"]

router = APIRouter()

_READ_ERRORS = error_docs(401, 403, 404, 422)


@router.get(
    "/models/{name}/aliases",
    response_model=AliasList,
    responses=_READ_ERRORS,
    tags=["aliases"],
    openapi_extra=READ,
)
def list_aliases(name: Name, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    return {"name": name, "aliases": platform.registry.get_model(name).aliases}


@router.get(
    "/models/{name}/aliases/{alias}",
    response_model=VersionOut,
    responses=_READ_ERRORS,
    tags=["aliases"],
    openapi_extra=READ,
)
def get_alias(
    name: Name, alias: AliasOrLatest, platform: PlatformDep, _: ReadAccess
) -> dict[str, Any]:
    """The version ``alias`` points at (``latest``: the newest ready version)."""
    validate_name(name)
    if alias != "latest":
        validate_alias(alias)
    return platform.registry.resolve(Reference(name=name, alias=alias)).to_dict()


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=AliasOut,
    responses=error_docs(400, 401, 403, 404, 409, 413, 422),
    tags=["aliases"],
    openapi_extra=WRITE,
)
def set_alias(
    name: Name,
    alias: AliasName,
    platform: PlatformDep,
    _: WriteAccess,
    body: Annotated[AliasBody, Body(examples=[{"version": 3}])],
) -> dict[str, Any]:
    """Point ``alias`` at a ready version, atomically (create or move); 409 when the version
    is archived."""
    validate_alias(alias)
    moved: ModelVersion = platform.bus.handle(
        rc.SetAlias(model=name, alias=alias, version=body.version)
    )
    return {"name": name, "alias": alias, "version": moved.version}


@router.delete(
    "/models/{name}/aliases/{alias}",
    status_code=204,
    responses=error_docs(401, 403, 404, 422),
    tags=["aliases"],
    openapi_extra=WRITE,
)
def remove_alias(name: Name, alias: AliasName, platform: PlatformDep, _: WriteAccess) -> Response:
    validate_alias(alias)
    platform.bus.handle(rc.RemoveAlias(model=name, alias=alias))
    return Response(status_code=204)


@router.get(
    "/resolve",
    response_model=VersionOut,
    responses=_READ_ERRORS,
    tags=["aliases"],
    openapi_extra=READ,
)
def resolve(
    platform: PlatformDep,
    _: ReadAccess,
    ref: Annotated[
        str,
        Query(
            max_length=300,
            pattern=NO_NUL_PATTERN,
            description="name, name@alias, name@latest, name/3 or models:/…",
            examples=["fraud@champion"],
        ),
    ],
) -> dict[str, Any]:
    """The version a reference names; a bare name means its champion, else its latest."""
    return platform.registry.resolve(ref).to_dict()
