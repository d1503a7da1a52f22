"""Registry routes: models, versions (with artifact upload and download), aliases, tags.

Writes go through the message bus (:class:`~modelplane.client.Client`), reads through
``platform.registry``; no SQL here. The database calls are synchronous, so every route is a
plain ``def``: FastAPI runs it in its thread pool and the event loop never blocks.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import ValidationError

from modelplane.api.errors import error_docs, invalid_input_from
from modelplane.api.schemas import (
    ALIAS_OR_LATEST_PATTERN,
    ALIAS_PATTERN,
    CURSOR_PATTERN,
    MAX_VERSION,
    NAME_PATTERN,
    NO_NUL_PATTERN,
    READ,
    TAG_KEY_PATTERN,
    WRITE,
    AliasBody,
    AliasList,
    AliasOut,
    ModelCreate,
    ModelOut,
    ModelPage,
    TagBody,
    TagOut,
    VersionMetadata,
    VersionOut,
    VersionPage,
)
from modelplane.api.security import PlatformDep, require_read, require_write
from modelplane.artifacts import safe_name
from modelplane.artifacts.base import CHUNK
from modelplane.auth.model import Token
from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.core.pagination import MAX_PAGE_SIZE
from modelplane.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MalformedRequest,
    UntrustedArtifact,
)
from modelplane.registry.model import (
    ModelVersion,
    Reference,
    validate_alias,
    validate_name,
    validate_tags,
)
from modelplane.registry.views import MetricFilter

__all__ = ["router"]

router = APIRouter()

ReadAccess = Annotated[Token | None, Depends(require_read)]
WriteAccess = Annotated[Token, Depends(require_write)]


# Names are checked by the domain (422 ``invalid_name`` naming the field); the patterns here
# document those rules (schemas.py derives them from the domain's regexes), not a second check.
def _text(description: str, pattern: str, example: str, max_length: int = 128) -> Any:
    """A text path parameter whose schema documents the domain's rule (a pattern)."""
    return PathParam(
        description=description,
        max_length=max_length,
        json_schema_extra={"pattern": pattern, "minLength": 1},
        examples=[example],
    )


Name = Annotated[str, _text("Model name.", NAME_PATTERN, "fraud")]
Number = Annotated[
    int, PathParam(ge=1, le=MAX_VERSION, description="Version number.", examples=[2])
]
AliasName = Annotated[
    str,
    _text("Alias, e.g. champion: a name, not `latest` nor a number.", ALIAS_PATTERN, "champion"),
]
AliasOrLatest = Annotated[
    str,
    _text(
        "Alias, e.g. champion, or `latest` (the newest ready version).",
        ALIAS_OR_LATEST_PATTERN,
        "champion",
    ),
]
TagKey = Annotated[
    str,
    _text(
        "Tag key (may contain '/'). Keys under `modelplane.` are written by modelplane only; "
        "`serving.*` keys are the ones a server reads, with their values checked.",
        TAG_KEY_PATTERN,
        "team",
        max_length=250,
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="next_cursor of the previous page (400 for any other text).",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]
TagFilters = Annotated[
    list[str] | None,
    Query(description="key:value; repeat to require several tags.", max_length=50),
]
MetricFilters = Annotated[
    list[str] | None,
    Query(description="NAME OP NUMBER, e.g. auc>=0.9; repeatable.", max_length=50),
]

# What each route can answer besides its success: 400 only where a body or a cursor is parsed,
# 404 only where a model (version, alias, tag) is named, 409 only where a rule of state can
# refuse, 413 wherever a body is read (``limits.BodyLimit``). 401/403 on a read route happen
# only when the server sets ``require_auth``.
_LIST_ERRORS = error_docs(400, 401, 403, 422)
_PAGE_ERRORS = error_docs(400, 401, 403, 404, 422)
_READ_ERRORS = error_docs(401, 403, 404, 422)
_BODY_WRITE_ERRORS = error_docs(400, 401, 403, 404, 413, 422)
_WRITE_ERRORS = error_docs(401, 403, 404, 422)


def _cursor(cursor: str | None) -> str | None:
    """A cursor as this server issues them (URL-safe base64), else 400 before decoding (the
    decoder would skip stray characters)."""
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise MalformedRequest("cursor is not one this server issued", field="cursor")
    return cursor


# -- helpers -------------------------------------------------------------------------------
def _tag_filters(raw: list[str] | None) -> dict[str, str]:
    """``["team:fraud", "stage:prod"]`` → ``{"team": "fraud", "stage": "prod"}``."""
    tags: dict[str, str] = {}
    for item in raw or ():
        key, sep, value = item.partition(":")
        if not sep or "\x00" in item:
            raise InvalidInput(f"tag filter {item!r}: expected key:value", field="query.tag")
        if tags.get(key, value) != value:
            raise InvalidInput(f"tag {key!r} is filtered on twice", field="query.tag")
        tags[key] = value
    return validate_tags(tags, field="query.tag")


def _metric_filters(raw: list[str] | None) -> list[MetricFilter]:
    filters = []
    for item in raw or ():
        try:
            parsed = MetricFilter.parse(item)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="query.metric") from None
        if not math.isfinite(parsed.value):
            raise InvalidInput(f"metric filter {item!r}: not a finite number", field="query.metric")
        filters.append(parsed)
    return filters


def _model_dict(platform: Platform, name: str) -> dict[str, Any]:
    return platform.registry.get_model(name).to_dict()


def _version_dict(platform: Platform, name: str, number: int) -> dict[str, Any]:
    return platform.registry.get_version(name, number).to_dict()


def _parse_metadata(raw: str) -> VersionMetadata:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"metadata is not valid JSON: {exc}", field="metadata") from None
    try:
        return VersionMetadata.model_validate(data)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix="metadata") from None


# -- models --------------------------------------------------------------------------------
@router.get(
    "/models", response_model=ModelPage, responses=_LIST_ERRORS, tags=["models"], openapi_extra=READ
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
        name_prefix=name_prefix, tags=_tag_filters(tag), cursor=_cursor(cursor), limit=limit
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
    model = Client(platform=platform).register_model(
        body.name, description=body.description, tags=body.tags
    )
    response.headers["Location"] = f"{request.url.path}/{model.name}"
    return model.to_dict()


@router.get(
    "/models/{name}",
    response_model=ModelOut,
    responses=_READ_ERRORS,
    tags=["models"],
    openapi_extra=READ,
)
def get_model(name: Name, platform: PlatformDep, _: ReadAccess) -> dict[str, Any]:
    return _model_dict(platform, name)


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
    Client(platform=platform).set_tag(name, key, body.value)
    return {"name": name, "version": None, "key": key, "value": body.value}


@router.delete(
    "/models/{name}/tags/{key:path}",
    status_code=204,
    responses=_WRITE_ERRORS,
    tags=["tags"],
    openapi_extra=WRITE,
)
def delete_model_tag(name: Name, key: TagKey, platform: PlatformDep, _: WriteAccess) -> Response:
    Client(platform=platform).delete_tag(name, key)
    return Response(status_code=204)


# -- versions ------------------------------------------------------------------------------
@router.get(
    "/models/{name}/versions",
    response_model=VersionPage,
    responses=_PAGE_ERRORS,
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
        tags=_tag_filters(tag),
        metrics=_metric_filters(metric),
        cursor=_cursor(cursor),
        limit=limit,
        order=order,
    )
    return {"versions": [v.to_dict() for v in page.items], "next_cursor": page.next_cursor}


@router.post(
    "/models/{name}/versions",
    status_code=201,
    response_model=VersionOut,
    responses=error_docs(400, 401, 403, 404, 413, 422, 501),
    tags=["versions"],
    openapi_extra=WRITE,
)
def register_version(
    name: Name,
    request: Request,
    response: Response,
    platform: PlatformDep,
    token: WriteAccess,
    file: Annotated[UploadFile, File(description="The saved model file (.skops, .onnx, .ubj…).")],
    metadata: Annotated[
        str, Form(description="A JSON object: flavor, metrics, params, tags, lineage, alias…")
    ] = "{}",
) -> dict[str, Any]:
    """Upload a model file and register it as the model's next version.

    The file is loaded once before anything is stored: a file that is not a model of its
    flavor is refused, and so is content outside the allowlist — a pickle, a ``pyfunc`` file,
    a scikit-learn pipeline with a function of its own — unless ``metadata.trust`` is true,
    which needs an ``admin`` token (a ``write`` token never grants trust) and is recorded on
    the version as ``token:<token name>``. 404 when the model does not exist and
    ``metadata.create_model`` is false; 501 when the flavor's library is not installed on the
    server; 413 above the upload limit.
    """
    validate_name(name)
    meta = _parse_metadata(metadata)
    if meta.trust and token.scope != "admin":
        raise Forbidden(
            "only an admin token can trust an artifact's code (metadata.trust)",
            field="metadata.trust",
        )
    aliases = [meta.alias] if isinstance(meta.alias, str) else list(meta.alias or ())
    for alias in aliases:  # checked before the artifact is stored, not only by the command
        validate_alias(alias)
    filename = safe_name(file.filename or "", field="file")
    with platform.artifacts.scratch() as tmp:  # under the store's tmp/: gc finds it
        path = tmp / filename
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, CHUNK)
        flavor = meta.flavor or _guess_flavor(path)
        try:
            version = Client(platform=platform).register_file(
                name,
                path,
                flavor=flavor,
                signature=meta.signature.model_dump() if meta.signature else None,
                metrics=meta.metrics,
                params=meta.params,
                tags=meta.tags,
                lineage=meta.lineage.model_dump() if meta.lineage else None,
                alias=aliases,
                description=meta.description,
                trust=meta.trust,
                trusted_by=f"token:{token.name}" if meta.trust else None,
                create_model=meta.create_model,
            )
        except UntrustedArtifact as exc:  # what to change over REST: the upload's metadata
            raise UntrustedArtifact(exc.message, field="metadata.trust") from None
    response.headers["Location"] = f"{request.url.path}/{version.version}"
    return version.to_dict()


def _guess_flavor(path: Path) -> str:
    from modelplane.runtimes import guess_flavor

    try:
        return guess_flavor(path)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="metadata.flavor") from None


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
    return _version_dict(platform, name, version)


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
    responses=error_docs(401, 403, 404, 409, 422),
    tags=["versions"],
    openapi_extra=WRITE,
)
def archive_version(
    name: Name, version: Number, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    """Archive a version (409 while an alias points at it). Archiving twice is a no-op."""
    Client(platform=platform).archive_version(name, version)
    return _version_dict(platform, name, version)


@router.post(
    "/models/{name}/versions/{version}/restore",
    response_model=VersionOut,
    responses=error_docs(401, 403, 404, 409, 422),
    tags=["versions"],
    openapi_extra=WRITE,
)
def restore_version(
    name: Name, version: Number, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    """Make an archived version ready again (409 when it is ready already)."""
    Client(platform=platform).restore_version(name, version)
    return _version_dict(platform, name, version)


@router.put(
    "/models/{name}/versions/{version}/tags/{key:path}",
    response_model=TagOut,
    responses=_BODY_WRITE_ERRORS,
    tags=["tags"],
    openapi_extra=WRITE,
)
def set_version_tag(
    name: Name, version: Number, key: TagKey, body: TagBody, platform: PlatformDep, _: WriteAccess
) -> dict[str, Any]:
    Client(platform=platform).set_tag(name, key, body.value, version=version)
    return {"name": name, "version": version, "key": key, "value": body.value}


@router.delete(
    "/models/{name}/versions/{version}/tags/{key:path}",
    status_code=204,
    responses=_WRITE_ERRORS,
    tags=["tags"],
    openapi_extra=WRITE,
)
def delete_version_tag(
    name: Name, version: Number, key: TagKey, platform: PlatformDep, _: WriteAccess
) -> Response:
    Client(platform=platform).delete_tag(name, key, version=version)
    return Response(status_code=204)


# -- aliases -------------------------------------------------------------------------------
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
    moved = Client(platform=platform).set_alias(name, alias, body.version)
    return {"name": name, "alias": alias, "version": moved.version}


@router.delete(
    "/models/{name}/aliases/{alias}",
    status_code=204,
    responses=_WRITE_ERRORS,
    tags=["aliases"],
    openapi_extra=WRITE,
)
def remove_alias(name: Name, alias: AliasName, platform: PlatformDep, _: WriteAccess) -> Response:
    validate_alias(alias)
    Client(platform=platform).remove_alias(name, alias)
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
