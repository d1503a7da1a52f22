"""Tokens: a random secret shown once; only its sha256 is stored.

A token is ``mp_<id>_<secret>``; the id is public (listed, revoked by), the secret is 32 random
bytes. sha256 is enough for a 256-bit random secret (no dictionary to attack), and it lets a
request be checked with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelplane.core.aggregate import Aggregate
from modelplane.core.messages import Event
from modelplane.core.names import validate_name
from modelplane.errors import Conflict, InvalidInput

__all__ = ["SCOPES", "Scope", "Token", "TokenCreated", "TokenRevoked", "hash_token", "new_secret"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A fresh ``(token_id, token)`` pair."""
    token_id = secrets.token_hex(6)
    return token_id, f"mp_{token_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class TokenCreated(Event):
    aggregate_type = "token"
    token_id: str
    name: str
    scope: str

    @property
    def aggregate_id(self) -> str:
        return self.token_id


@dataclass(frozen=True)
class TokenRevoked(Event):
    aggregate_type = "token"
    token_id: str

    @property
    def aggregate_id(self) -> str:
        return self.token_id


@dataclass
class Token(Aggregate):
    id: str
    name: str
    scope: Scope
    hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @classmethod
    def create(cls, *, token_id: str, name: str, scope: str, secret: str, now: datetime) -> Token:
        validate_name(name, field="name")
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", field="scope")
        token = cls(id=token_id, name=name, scope=scope, hash=hash_token(secret), created_at=now)
        token._record(TokenCreated(token_id=token_id, name=name, scope=scope))
        return token

    def revoke(self, *, now: datetime) -> None:
        if self.revoked_at is not None:
            raise Conflict(f"token {self.id} is already revoked", field="token_id")
        self.revoked_at = now
        self._record(TokenRevoked(token_id=self.id))

    def allows(self, scope: Scope) -> bool:
        return self.revoked_at is None and SCOPES.index(self.scope) >= SCOPES.index(scope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
