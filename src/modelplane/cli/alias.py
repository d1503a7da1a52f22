"""``modelplane alias …``: point a name such as ``champion`` at a version, move it, remove it.

Setting an alias that already exists moves it in one transaction: readers see the old version
or the new one, never neither.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import print_json, print_table, say

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Aliases (champion, challenger…) of a model.")

NameArg = Annotated[str, typer.Argument(help="Model name.", show_default=False)]
AliasArg = Annotated[str, typer.Argument(help="Alias, e.g. champion.", show_default=False)]


@app.command("set")
def set_alias(
    ctx: typer.Context,
    name: NameArg,
    alias: AliasArg,
    version: Annotated[int, typer.Argument(help="Version number.", min=1, show_default=False)],
    json_out: JsonOpt = False,
) -> None:
    """Point ALIAS at VERSION (creating or moving it).

    Example: modelplane alias set fraud champion 3
    """
    st = state(ctx)
    result = st.client().set_alias(name, alias, version)
    if st.wants_json(json_out):
        print_json({"name": name, "alias": alias, "version": result.version})
        return
    say(f"{name}@{alias} → {result.version}")


@app.command("rm")
def remove_alias(
    ctx: typer.Context, name: NameArg, alias: AliasArg, json_out: JsonOpt = False
) -> None:
    """Remove ALIAS (the version it pointed at is untouched).

    Example: modelplane alias rm fraud challenger
    """
    st = state(ctx)
    previous = st.client().remove_alias(name, alias)
    if st.wants_json(json_out):
        print_json({"name": name, "alias": alias, "version": previous})
        return
    say(f"removed {name}@{alias} (it pointed at {previous})")


@app.command("list")
def list_aliases(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """List a model's aliases and the versions they point at.

    Example: modelplane alias list fraud
    """
    st = state(ctx)
    model = st.client().get_model(name)
    if st.wants_json(json_out):
        print_json({"name": model.name, "aliases": model.aliases})
        return
    print_table(
        ("alias", "version"),
        ((alias, str(number)) for alias, number in sorted(model.aliases.items())),
        empty=f"{name} has no aliases",
    )
