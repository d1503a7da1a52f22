"""Commands of the token store."""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.core.messages import Command

__all__ = ["CreateToken", "RevokeToken"]


@dataclass(frozen=True)
class CreateToken(Command):
    name: str
    scope: str = "read"


@dataclass(frozen=True)
class RevokeToken(Command):
    token_id: str
