"""The tokens' persistence port: what the token handlers need from storage, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from modelplane.auth.model import Token
from modelplane.core.uow import UnitOfWork

__all__ = ["TokenRepository", "TokenUnitOfWork"]


class TokenRepository(Protocol):
    def add(self, token: Token) -> None:
        """Insert a new token (its events go out with the unit of work's commit)."""
        ...

    def get(self, token_id: str) -> Token | None: ...

    def save(self, token: Token) -> None:
        """Write what changed (revocation)."""
        ...


class TokenUnitOfWork(UnitOfWork, Protocol):
    """The unit of work the token handlers need: the token repository and the clock."""

    tokens: TokenRepository
    clock: Callable[[], datetime]
