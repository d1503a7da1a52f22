"""Who may call what: the access rule of every serving operation, and the one bearer check.

Every door of the serving process (REST routes, gRPC RPCs, ``/metrics``) names the operation it
is the door of; :data:`OPERATIONS` gives that operation's rule, so a REST route and its gRPC
twin cannot disagree. The rules:

``open``      anyone (health, server metadata).
``guarded``   a ``read`` token when ``require_auth`` is set, open otherwise (predictions and
              their feedback, model metadata and readiness — the prediction routes' rule).
``read`` / ``write`` / ``admin``   always a token of that scope (scopes nest: admin ⊇ write ⊇
              read; loading and unloading models is ``admin``).
``metrics``   ``read`` when ``metrics_auth`` is set, open otherwise (``/metrics`` names models
              and versions, but Prometheus scrapers usually carry no token).

An operation not in the table needs ``admin`` (closed by default).

:class:`Authenticator` checks an ``Authorization: Bearer <token>`` value (a REST header or gRPC
metadata) against the token store: a missing, invalid or revoked token is
:class:`~modelplane.errors.Unauthorized`, too small a scope
:class:`~modelplane.errors.Forbidden`. A verified (token, scope) is remembered for
:data:`MEMO_S` seconds, so a prediction costs no database query; the cost is that a token
revoked meanwhile keeps working on this process for at most that long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

from modelplane.auth.model import Scope, Token, hash_token

__all__ = ["MEMO_S", "OPERATIONS", "Access", "Authenticator", "TokenCheck", "bearer_token"]

Access = Literal["open", "guarded", "read", "write", "admin", "metrics"]

#: The access rule of every serving operation (REST route or gRPC RPC), by operation name.
OPERATIONS: Mapping[str, Access] = {
    "live": "open",
    "ready": "open",
    "server_metadata": "open",
    "model_metadata": "guarded",
    "model_ready": "guarded",
    "infer": "guarded",
    "predict": "guarded",
    "feedback": "guarded",
    "metrics": "metrics",
    "repository_index": "admin",
    "repository_load": "admin",
    "repository_unload": "admin",
    "admin_models": "admin",
    "admin_load": "admin",
    "admin_unload": "admin",
}

#: How long a verified token is trusted without asking the store again, in seconds.
MEMO_S = 5.0
_MEMO_MAX = 4096  # distinct (token, scope) pairs remembered at once


class TokenCheck(Protocol):
    """The token store's check (``TokenViews.authenticate``)."""

    def authenticate(self, presented: str | None, scope: Scope) -> Token: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` value ``Bearer <token>`` (None when there is none)."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip() or None


class Authenticator:
    """The bearer check of every door of one server, with its short memo of verified tokens."""

    def __init__(
        self,
        tokens: TokenCheck,
        *,
        require_auth: bool,
        metrics_auth: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self._memo: dict[str, float] = {}
        self.require_auth = require_auth
        self.metrics_auth = metrics_auth
        #: operation → the scope it needs here (None: open), resolved once
        self.needs: dict[str, Scope | None] = {
            op: self._scope(access) for op, access in OPERATIONS.items()
        }

    def _scope(self, access: Access) -> Scope | None:
        if access == "open":
            return None
        if access == "guarded":
            return "read" if self.require_auth else None
        if access == "metrics":
            return "read" if self.metrics_auth else None
        return access

    def scope_for(self, operation: str) -> Scope | None:
        """The scope ``operation`` needs on this server; None when it is open."""
        return self.needs.get(operation, "admin")

    def check(self, operation: str, authorization: str | None) -> None:
        """Raise Unauthorized/Forbidden unless ``authorization`` may call ``operation``."""
        scope = self.needs.get(operation, "admin")
        if scope is not None:
            self.verify(bearer_token(authorization), scope)

    def verify(self, presented: str | None, scope: Scope) -> None:
        """Raise Unauthorized/Forbidden unless the token ``presented`` allows ``scope``."""
        now = self._clock()
        key = None
        if presented:
            key = hash_token(presented) + scope
            until = self._memo.get(key)
            if until is not None and until > now:
                return
        self._tokens.authenticate(presented, scope)  # raises when it is not allowed
        if key is not None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo = {k: u for k, u in self._memo.items() if u > now}
                if len(self._memo) >= _MEMO_MAX:
                    self._memo.clear()
            self._memo[key] = now + MEMO_S
