"""The path and query parameters the route modules share, and the parsing of their values.

Names are checked by the domain (422 ``invalid_name`` naming the field); the patterns here
document those rules (schemas.py derives them from the domain's regexes), not a second check.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Query

from modelplane.api.schemas import (
    ALIAS_OR_LATEST_PATTERN,
    ALIAS_PATTERN,
    CURSOR_PATTERN,
    MAX_VERSION,
    NAME_PATTERN,
    NAME_SCHEMA,
    TAG_KEY_PATTERN,
)
from modelplane.core.names import validate_name
from modelplane.core.pagination import MAX_PAGE_SIZE
from modelplane.errors import InvalidInput, MalformedRequest
from modelplane.registry.model import validate_tags
from modelplane.registry.views import MetricFilter

__all__ = [
    "AliasName",
    "AliasOrLatest",
    "Cursor",
    "ExperimentName",
    "Limit",
    "MetricFilters",
    "ModelFilter",
    "Name",
    "Number",
    "RecentLimit",
    "TagFilters",
    "TagKey",
    "cursor_of",
    "metric_filters",
    "model_filter",
    "tag_filters",
]


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
ExperimentName = Annotated[
    str, PathParam(description="Experiment name.", max_length=128, json_schema_extra=NAME_SCHEMA)
]

#: A page of a cursor-paginated list (the registry's).
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
#: The newest of a list that is not paginated (delivery's).
RecentLimit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
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
ModelFilter = Annotated[
    str | None,
    Query(
        max_length=128,
        description="Only this model's (a model name).",
        json_schema_extra=NAME_SCHEMA,
    ),
]


def cursor_of(cursor: str | None) -> str | None:
    """A cursor as this server issues them (URL-safe base64), else 400 before decoding (the
    decoder would skip stray characters)."""
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise MalformedRequest("cursor is not one this server issued", field="cursor")
    return cursor


def tag_filters(raw: list[str] | None) -> dict[str, str]:
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


def metric_filters(raw: list[str] | None) -> list[MetricFilter]:
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


def model_filter(model: str | None) -> str | None:
    """The ``?model=`` filter of a delivery list: a valid name, or none."""
    return None if model is None else validate_name(model, field="query.model")
