"""``modelplane artifacts …``: the artifact store (garbage collection)."""

from __future__ import annotations

from typing import Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import print_json, say

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="The artifact store.")


@app.command("gc")
def gc(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than", min=0, help="Only objects older than this many minutes (default 60)."
        ),
    ] = 60,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete stored artifacts that no version points at (left by failed registrations).

    Example: modelplane artifacts gc --older-than 60 --dry-run
    """
    st = state(ctx)
    removed = st.client().collect_garbage(older_than_s=older_than * 60, dry_run=dry_run)
    if st.wants_json(json_out):
        print_json({"dry_run": dry_run, "digests": removed})
        return
    verb = "would remove" if dry_run else "removed"
    say(f"{verb} {len(removed)} unreferenced artifact(s)")
    for digest in removed:
        say(f"  {digest}")
