"""Reading tokens: list them (never their secrets) and check a presented bearer token."""

from __future__ import annotations

from sqlalchemy import Engine, select

from modelplane.auth import tables as t
from modelplane.auth.adapters import row_to_token
from modelplane.auth.model import Scope, Token, hash_token
from modelplane.errors import Forbidden, Unauthorized

__all__ = ["TokenViews"]


class TokenViews:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_tokens(self, *, include_revoked: bool = False) -> list[Token]:
        stmt = select(t.tokens).order_by(t.tokens.c.created_at, t.tokens.c.id)
        if not include_revoked:
            stmt = stmt.where(t.tokens.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return [row_to_token(r._mapping) for r in conn.execute(stmt)]

    def authenticate(self, presented: str | None, scope: Scope) -> Token:
        """The token ``presented`` if it is valid and allows ``scope``; else 401/403."""
        if not presented:
            raise Unauthorized("a bearer token is required (modelplane tokens create)")
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.tokens).where(t.tokens.c.hash == hash_token(presented))
            ).first()
        if row is None:
            raise Unauthorized("the bearer token is not valid")
        token = row_to_token(row._mapping)
        if token.revoked_at is not None:
            raise Unauthorized("the bearer token has been revoked")
        if not token.allows(scope):
            raise Forbidden(f"this route needs a token with scope '{scope}' (yours: {token.scope})")
        return token
