"""Uploading a model file as a model's next version (``POST /models/{name}/versions``).

The file streams to the artifact store's scratch space (bounded by ``limits.BodyLimit``), then
the registry's ``register_file`` use case loads it once, stores it and registers the version, as
``modelplane models register`` and ``Client.register_file`` do. Plain ``def``: the thread pool.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import ValidationError

from modelplane.api.errors import error_docs, invalid_input_from
from modelplane.api.params import Name
from modelplane.api.schemas import WRITE, VersionMetadata, VersionOut
from modelplane.api.security import PlatformDep, WriteAccess
from modelplane.artifacts import safe_name
from modelplane.artifacts.base import CHUNK
from modelplane.errors import Forbidden, InvalidInput, MalformedRequest, UntrustedArtifact
from modelplane.registry.model import validate_alias, validate_name
from modelplane.registry.usecases import register_file

__all__ = ["router"]

router = APIRouter()


def _parse_metadata(raw: str) -> VersionMetadata:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"metadata is not valid JSON: {exc}", field="metadata") from None
    try:
        return VersionMetadata.model_validate(data)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix="metadata") from None


def _guess_flavor(path: Path) -> str:
    from modelplane.runtimes import guess_flavor

    try:
        return guess_flavor(path)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="metadata.flavor") from None


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
            version = register_file(
                platform.bus.handle,
                platform.artifacts,
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
