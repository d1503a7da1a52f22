"""Request and response bodies of the REST API (pydantic), so ``/openapi.json`` is useful.

Responses mirror the domain objects' ``to_dict()`` forms. Request bodies forbid unknown fields,
refuse NUL characters anywhere (PostgreSQL cannot store them, and no name needs one) and take
only finite numbers, so bad input is a 422 at the edge, never a 500 deeper in.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from modelplane.core.names import NAME_RE
from modelplane.registry.model import MAX_TAG_VALUE, TAG_KEY_RE

__all__ = [
    "ADMIN",
    "ALIAS_OR_LATEST_PATTERN",
    "ALIAS_PATTERN",
    "CURSOR_PATTERN",
    "MAX_VERSION",
    "NAME_PATTERN",
    "NO_NUL_PATTERN",
    "READ",
    "TAGS_SCHEMA",
    "TAG_KEY_PATTERN",
    "WRITE",
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
    "anchored",
    "name_field",
]

#: Versions are 32-bit integers in the database; larger numbers cannot exist.
MAX_VERSION = 2**31 - 1

VersionNumber = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]


# -- what the OpenAPI document says of names and access -------------------------------------
def anchored(regex: re.Pattern[str]) -> str:
    """``regex`` as a JSON Schema pattern that accepts exactly what ``regex.fullmatch`` does.

    JSON Schema patterns (ECMA-262) are searched, not matched, so both ends are anchored; an
    ECMA ``$`` without the multiline flag matches only at the very end (Python's ``$`` would
    also match before a final newline, which is why the server uses ``fullmatch``). The
    domain's regexes use only classes and counted repeats, which read the same in both.
    """
    return f"^(?:{regex.pattern})$"


#: Model, experiment and variant names (``core.names.NAME_RE``; 1-128 characters).
NAME_PATTERN = anchored(NAME_RE)
#: A name's JSON schema: it documents the domain's rule (the domain checks it: 422 invalid_name).
NAME_SCHEMA: dict[str, Any] = {"pattern": NAME_PATTERN, "minLength": 1}
#: An alias that can be set: a name, but not ``latest`` nor a number (``validate_alias``).
ALIAS_PATTERN = f"^(?!latest$)(?![0-9]+$)(?:{NAME_RE.pattern})$"
#: An alias that can be read: ``latest`` (the newest ready version) too.
ALIAS_OR_LATEST_PATTERN = f"^(?![0-9]+$)(?:{NAME_RE.pattern})$"
#: Tag keys (``registry.model.TAG_KEY_RE``; up to 250 characters).
TAG_KEY_PATTERN = anchored(TAG_KEY_RE)
#: Cursors are URL-safe base64 without padding (``core.pagination.encode_cursor``).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
#: Free text in a query: anything but NUL (PostgreSQL cannot store it).
NO_NUL_PATTERN = r"^[^\x00]*$"
#: A ``tags`` object: keys and values as ``validate_tags`` takes them.
TAGS_SCHEMA: dict[str, Any] = {
    "propertyNames": {"pattern": TAG_KEY_PATTERN, "maxLength": 250},
    "additionalProperties": {"type": "string", "maxLength": MAX_TAG_VALUE},
}


def name_field(description: str = "1-128 characters of a-z, 0-9, '.', '_', '-'.") -> Any:
    """A body field holding a name: its pattern documented; the domain enforces it (422
    ``invalid_name`` naming the field)."""
    return Field(
        max_length=128,
        description=description,
        json_schema_extra={"pattern": NAME_PATTERN, "minLength": 1},
    )


def _access(scope: str, doc: str, *, optional: bool = False) -> dict[str, Any]:
    """``openapi_extra`` of a route: the scope it needs, as ``x-required-scope``.

    FastAPI lists the bearer scheme as required on every route that reads the token; a read
    route adds the empty requirement (``[{"HTTPBearer": []}, {}]``: a token or none), since it
    is open unless ``require_auth`` is set. FastAPI appends lists given here to its own.
    """
    extra: dict[str, Any] = {"x-required-scope": scope, "x-required-scope-description": doc}
    if optional:
        extra["security"] = [{}]
    return extra


#: Read routes: open unless ``require_auth`` is set, then any valid token.
READ = _access(
    "read", "Open unless the server sets require_auth; then any valid token.", optional=True
)
#: Registry writes: a token of scope ``write`` or ``admin``.
WRITE = _access("write", "A token of scope write or admin.")
#: Delivery writes and the token listing: a token of scope ``admin``.
ADMIN = _access("admin", "A token of scope admin.")


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
    name: str = name_field()
    description: str = Field(default="", json_schema_extra={"maxLength": 10_000})
    tags: dict[str, str] = Field(default_factory=dict, json_schema_extra=TAGS_SCHEMA)


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
    categories: list[StrictStr | StrictInt | StrictFloat | StrictBool] | None = Field(
        default=None, description="A categorical column's categories, in order."
    )
    ordered: bool = Field(default=False, description="Whether the categories are ordered.")


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
    value: str = Field(json_schema_extra={"maxLength": MAX_TAG_VALUE})


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
