"""SQL storage of tokens (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from modelplane.auth import tables as t
from modelplane.auth.model import Token
from modelplane.core.clock import aware
from modelplane.core.uow import HasEvents

__all__ = ["SqlTokenRepository", "row_to_token"]


class _Tx(Protocol):
    conn: Connection

    def track(self, aggregate: HasEvents) -> None: ...


def row_to_token(m: Any) -> Token:
    return Token(
        id=m["id"],
        name=m["name"],
        scope=m["scope"],
        hash=m["hash"],
        created_at=aware(m["created_at"]),
        revoked_at=aware(m["revoked_at"]) if m["revoked_at"] is not None else None,
    )


class SqlTokenRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx

    def add(self, token: Token) -> None:
        self._tx.conn.execute(
            insert(t.tokens).values(
                id=token.id,
                name=token.name,
                scope=token.scope,
                hash=token.hash,
                created_at=token.created_at,
                revoked_at=None,
            )
        )
        self._tx.track(token)

    def get(self, token_id: str) -> Token | None:
        row = self._tx.conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
        if row is None:
            return None
        token = row_to_token(row._mapping)
        self._tx.track(token)
        return token

    def save(self, token: Token) -> None:
        self._tx.conn.execute(
            update(t.tokens).where(t.tokens.c.id == token.id).values(revoked_at=token.revoked_at)
        )
