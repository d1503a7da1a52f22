"""Who is calling: the platform of this app, bearer-token checks, and the admin token listing.

``Authorization: Bearer <token>`` is checked with ``platform.tokens.authenticate`` (one indexed
lookup of the token's sha256). Scopes nest: admin ⊇ write ⊇ read. Write routes always need
``write``; read routes need ``read`` only when ``settings.require_auth`` is true. A missing,
invalid or revoked token is a 401 (with ``WWW-Authenticate: Bearer``), too small a scope a 403.

A write is looked up once: ``limits.BodyLimit`` authenticates it before its body is read and
hands the token on in the request's state (:data:`TOKEN_STATE`); the dependencies here take it
when it is the one presented and allows the route's scope, and look the token up otherwise
(reads, which the middleware does not check, and refusals, which say why).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelplane.api.errors import error_docs
from modelplane.api.schemas import ADMIN, TokenList, TokenOut
from modelplane.auth.model import Scope, Token, hash_token
from modelplane.bootstrap import Platform
from modelplane.errors import Unavailable

__all__ = [
    "TOKEN_STATE",
    "AdminAccess",
    "PlatformDep",
    "ReadAccess",
    "WriteAccess",
    "get_platform",
    "require_admin",
    "require_read",
    "require_write",
    "router",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from `modelplane tokens create --scope read|write|admin`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def get_platform(request: Request) -> Platform:
    """The platform this app serves (built by ``create_app`` or its lifespan)."""
    platform: Platform | None = getattr(request.app.state, "platform", None)
    if platform is None:
        raise Unavailable("the server is starting or stopping: no platform is loaded")
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


#: The key of the request state (``scope["state"]``) under which ``limits.BodyLimit`` leaves
#: the token it verified for this request.
TOKEN_STATE = "modelplane.token"


def _check(
    request: Request,
    platform: Platform,
    credentials: HTTPAuthorizationCredentials | None,
    scope: Scope,
) -> Token:
    presented = credentials.credentials if credentials is not None else None
    verified = request.scope.get("state", {}).get(TOKEN_STATE)
    if (
        isinstance(verified, Token)
        and presented is not None
        and verified.hash == hash_token(presented)
        and verified.allows(scope)
    ):
        return verified
    return platform.tokens.authenticate(presented, scope)


def require_read(request: Request, platform: PlatformDep, credentials: Credentials) -> Token | None:
    """Read routes: open unless ``require_auth`` is set, then any valid token (the rule the
    serving doors call ``guarded``: :data:`modelplane.auth.access.OPERATIONS`)."""
    if not platform.settings.require_auth:
        return None
    return _check(request, platform, credentials, "read")


def require_write(request: Request, platform: PlatformDep, credentials: Credentials) -> Token:
    return _check(request, platform, credentials, "write")


def require_admin(request: Request, platform: PlatformDep, credentials: Credentials) -> Token:
    return _check(request, platform, credentials, "admin")


ReadAccess = Annotated[Token | None, Depends(require_read)]
WriteAccess = Annotated[Token, Depends(require_write)]
AdminAccess = Annotated[Token, Depends(require_admin)]


router = APIRouter(tags=["tokens"])


@router.get(
    "/tokens",
    response_model=TokenList,
    responses=error_docs(401, 403, 422),
    summary="List API tokens (admin)",
    description="Tokens are created with the CLI only; their secrets are never shown again.",
    openapi_extra=ADMIN,
)
def list_tokens(
    platform: PlatformDep,
    _token: AdminAccess,
    include_revoked: Annotated[bool, Query(description="Also list revoked tokens.")] = False,
) -> TokenList:
    tokens = platform.tokens.list_tokens(include_revoked=include_revoked)
    return TokenList(tokens=[TokenOut.model_validate(t.to_dict()) for t in tokens])
