"""Request and response bodies of the REST API (pydantic), so ``/openapi.json`` is useful.

Responses mirror the domain objects' ``to_dict()`` forms. Request bodies forbid unknown fields,
refuse NUL characters anywhere (PostgreSQL cannot store them, and no name needs one) and take
only finite numbers, so bad input is a 422 at the edge, never a 500 deeper in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StrictInt, model_validator

__all__ = [
    "MAX_VERSION",
    "AliasBody",
    "AliasList",
    "AliasOut",
    "DataSourceIn",
    "DataSourceOut",
    "ErrorDetail",
    "ErrorResponse",
    "EventOut",
    "EventPage",
    "LineageIn",
    "LineageOut",
    "ModelCreate",
    "ModelOut",
    "ModelPage",
    "RequestBody",
    "SignatureIn",
    "TagBody",
    "TagOut",
    "TensorSpecIn",
    "TokenList",
    "TokenOut",
    "VersionMetadata",
    "VersionOut",
    "VersionPage",
]

#: Versions are 32-bit integers in the database; larger numbers cannot exist.
MAX_VERSION = 2**31 - 1

VersionNumber = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL character inside ``value``, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = _nul_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


class RequestBody(BaseModel):
    """Base of every request body: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = _nul_path(data)
        if where is not None:
            raise ValueError(f"NUL characters are not allowed (in {where or 'the body'})")
        return data


# -- errors --------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. model_not_found.")
    message: str = Field(description="What went wrong, for people.")
    field: str | None = Field(
        default=None, description="The offending field, e.g. name, body.version, query.limit."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- models --------------------------------------------------------------------------------
class ModelCreate(RequestBody):
    name: str = Field(description="1-128 characters of a-z, 0-9, '.', '_', '-'.", max_length=128)
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ModelOut(BaseModel):
    name: str
    description: str
    tags: dict[str, str]
    latest_version: int
    aliases: dict[str, int] = Field(description="Alias → version number.")
    created_at: datetime
    updated_at: datetime


class ModelPage(BaseModel):
    models: list[ModelOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done.")


# -- versions ------------------------------------------------------------------------------
class TensorSpecIn(RequestBody):
    name: str
    dtype: str
    shape: list[StrictInt]


class SignatureIn(RequestBody):
    inputs: list[TensorSpecIn]
    outputs: list[TensorSpecIn] = Field(default_factory=list)


class DataSourceIn(RequestBody):
    uri: str
    hash: str | None = None


class LineageIn(RequestBody):
    data_sources: list[DataSourceIn] = Field(default_factory=list)
    parent_version: VersionNumber | None = None
    run_id: str | None = None
    code_commit: str | None = None


class VersionMetadata(RequestBody):
    """The ``metadata`` part of a version upload (a JSON object sent as a string)."""

    flavor: str | None = Field(default=None, description="Guessed from the file when omitted.")
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: LineageIn | None = None
    alias: str | list[str] | None = Field(
        default=None, description="Alias(es) pointed at the new version in the same transaction."
    )
    signature: SignatureIn | None = None
    description: str = ""
    create_model: bool = Field(
        default=True, description="Register the model first when it does not exist yet."
    )
    trust: bool = Field(
        default=False,
        description="Trust content outside the allowlist (a pickle, a pyfunc file, a "
        "scikit-learn pipeline with a function of your own): needs an `admin` token; recorded "
        "on the version (trusted_by, trusted_at).",
    )


class DataSourceOut(BaseModel):
    uri: str
    hash: str | None = None


class LineageOut(BaseModel):
    data_sources: list[DataSourceOut]
    parent_version: int | None = None
    run_id: str | None = None
    code_commit: str | None = None


class VersionOut(BaseModel):
    name: str
    version: int
    uri: str = Field(description="models:/name/version")
    status: Literal["ready", "archived"]
    flavor: str
    digest: str = Field(description="sha256 of the artifact (of its manifest for a folder).")
    size: int
    artifact_name: str
    signature: dict[str, Any] | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    lineage: LineageOut
    description: str
    aliases: list[str]
    created_at: datetime
    trusted_by: str | None = Field(
        default=None, description="Who trusted content outside the allowlist; null: nobody."
    )
    trusted_at: datetime | None = None


class VersionPage(BaseModel):
    versions: list[VersionOut]
    next_cursor: str | None


# -- aliases and tags ----------------------------------------------------------------------
class AliasBody(RequestBody):
    version: VersionNumber


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int


class AliasList(BaseModel):
    name: str
    aliases: dict[str, int] = Field(description="Alias → version number.")


class TagBody(RequestBody):
    value: str


class TagOut(BaseModel):
    name: str
    version: int | None = Field(description="null for a tag on the model itself.")
    key: str
    value: str


# -- events and tokens ---------------------------------------------------------------------
class EventOut(BaseModel):
    id: int = Field(description="Global commit order.")
    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int = Field(description="Order within the aggregate, from 1.")
    payload: dict[str, Any]
    occurred_at: datetime


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


class TokenOut(BaseModel):
    id: str
    name: str
    scope: Literal["read", "write", "admin"]
    created_at: datetime
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenOut]
