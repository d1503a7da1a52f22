"""Token use cases. ``CreateToken`` returns the secret: the only time it is ever seen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from modelplane.auth.commands import CreateToken, RevokeToken
from modelplane.auth.model import Token, new_secret
from modelplane.auth.repository import TokenRepository
from modelplane.core.uow import UnitOfWork
from modelplane.errors import TokenNotFound

__all__ = ["COMMAND_HANDLERS", "CreatedToken"]


class TokenUnitOfWork(UnitOfWork, Protocol):
    tokens: TokenRepository
    clock: Callable[[], datetime]


class CreatedToken:
    """A new token and its secret (shown once, never stored)."""

    def __init__(self, token: Token, secret: str) -> None:
        self.token = token
        self.secret = secret


def create_token(cmd: CreateToken, uow: TokenUnitOfWork) -> CreatedToken:
    token_id, secret = new_secret()
    with uow:
        token = Token.create(
            token_id=token_id, name=cmd.name, scope=cmd.scope, secret=secret, now=uow.clock()
        )
        uow.tokens.add(token)
        uow.commit()
    return CreatedToken(token, secret)


def revoke_token(cmd: RevokeToken, uow: TokenUnitOfWork) -> Token:
    with uow:
        token = uow.tokens.get(cmd.token_id)
        if token is None:
            raise TokenNotFound(f"no token with id {cmd.token_id!r}", field="token_id")
        token.revoke(now=uow.clock())
        uow.tokens.save(token)
        uow.commit()
    return token


COMMAND_HANDLERS: Mapping[type[Any], Callable[[Any, Any], Any]] = {
    CreateToken: create_token,
    RevokeToken: revoke_token,
}
