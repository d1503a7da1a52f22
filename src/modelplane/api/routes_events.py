"""The event log over REST: every state change, oldest first, in commit order."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from modelplane.api.errors import error_docs
from modelplane.api.schemas import CURSOR_PATTERN, NAME_PATTERN, NO_NUL_PATTERN, READ, EventPage
from modelplane.api.security import PlatformDep, ReadAccess
from modelplane.core.pagination import MAX_PAGE_SIZE
from modelplane.errors import MalformedRequest
from modelplane.registry.model import validate_name

__all__ = ["router"]

router = APIRouter(tags=["events"])

Text = Annotated[str | None, Query(max_length=128, pattern=NO_NUL_PATTERN)]


@router.get(
    "/events",
    response_model=EventPage,
    responses=error_docs(400, 401, 403, 422),
    openapi_extra=READ,
)
def list_events(
    platform: PlatformDep,
    _: ReadAccess,
    model: Annotated[
        str | None,
        Query(
            max_length=128,
            description="Only this model's events.",
            json_schema_extra={"pattern": NAME_PATTERN, "minLength": 1},
        ),
    ] = None,
    type: Annotated[
        str | None,
        Query(max_length=128, pattern=NO_NUL_PATTERN, description="Event type, e.g. AliasSet."),
    ] = None,
    aggregate_type: Text = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=1024,
            description="next_cursor of the previous page (400 for any other text).",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> dict[str, Any]:
    """Events oldest first. ``model`` keeps everything about one model: its own events and
    those of its rollouts, deployments and experiments."""
    if model is not None:
        validate_name(model, field="query.model")
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise MalformedRequest("cursor is not one this server issued", field="cursor")
    page = platform.events.list_events(
        aggregate_type=aggregate_type,
        model=model,
        type=type,
        cursor=cursor,
        limit=limit,
    )
    return {"events": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor}
