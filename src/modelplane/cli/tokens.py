"""``modelplane tokens …``: bearer tokens for the REST API's write routes.

A token's secret is printed once, by ``create``, on stdout alone (so ``$(…)`` captures it);
only its sha256 is stored, so it cannot be shown again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import fmt_time, note, print_json, print_table, say

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="API tokens (only their hashes are stored).")


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci.", show_default=False)],
    scope: Annotated[
        Scope, typer.Option(help="read < write < admin: what the token may do.")
    ] = Scope.read,
    json_out: JsonOpt = False,
) -> None:
    """Create a token and print its secret, once.

    Example: modelplane tokens create --name ci --scope write
    """
    st = state(ctx)
    created = st.client().create_token(name, scope.value)
    if st.wants_json(json_out):
        print_json(created.token.to_dict() | {"token": created.secret})
    else:
        say(created.secret)
    note(
        f"warning: token {created.token.id} ({created.token.scope}) is shown this once and not "
        "stored (only its hash is): keep it now"
    )


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List tokens (never their secrets).

    Example: modelplane tokens list
    """
    st = state(ctx)
    tokens = st.client().list_tokens(include_revoked=all_)
    if st.wants_json(json_out):
        print_json({"tokens": [t.to_dict() for t in tokens]})
        return
    print_table(
        ("id", "name", "scope", "created (UTC)", "revoked (UTC)"),
        (
            (
                t.id,
                t.name,
                t.scope,
                fmt_time(t.created_at),
                fmt_time(t.revoked_at) if t.revoked_at else "-",
            )
            for t in tokens
        ),
        wrap=("name",),
        empty="no tokens",
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (tokens list).")],
    json_out: JsonOpt = False,
) -> None:
    """Revoke a token: it stops working at once.

    Example: modelplane tokens revoke 3f2a9c1d7e4b
    """
    st = state(ctx)
    token = st.client().revoke_token(token_id)
    if st.wants_json(json_out):
        print_json(token.to_dict())
        return
    say(f"revoked token {token.id} ({token.name})")
