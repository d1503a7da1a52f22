"""Token use cases. ``CreateToken`` returns the secret: the only time it is ever seen."""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.auth.commands import CreateToken, RevokeToken
from modelplane.auth.model import Token, new_secret
from modelplane.auth.repository import TokenUnitOfWork
from modelplane.core.bus import CommandHandler
from modelplane.core.messages import Command
from modelplane.errors import TokenNotFound

__all__ = ["COMMAND_HANDLERS", "CreatedToken"]


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


COMMAND_HANDLERS: Mapping[type[Command], CommandHandler] = {
    CreateToken: create_token,
    RevokeToken: revoke_token,
}
