"""The tokens' persistence port: what the token handlers need from storage, nothing more."""

from __future__ import annotations

from typing import Protocol

from modelplane.auth.model import Token

__all__ = ["TokenRepository"]


class TokenRepository(Protocol):
    def add(self, token: Token) -> None:
        """Insert a new token (its events go out with the unit of work's commit)."""
        ...

    def get(self, token_id: str) -> Token | None: ...

    def save(self, token: Token) -> None:
        """Write what changed (revocation)."""
        ...
