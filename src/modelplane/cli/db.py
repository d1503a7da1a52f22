"""``modelplane db …``: the metadata database's schema (Alembic migrations)."""

from __future__ import annotations

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import print_json, say

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="The metadata database's schema.")


@app.command("upgrade")
def upgrade(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Migrate the configured database to the newest schema.

    Example: modelplane db upgrade
    """
    from modelplane.bootstrap import HEAD, bootstrap
    from modelplane.bootstrap import upgrade as run_upgrade

    st = state(ctx)
    platform = bootstrap(st.settings(), migrate=False)
    try:
        revision = run_upgrade(platform.engine)
    finally:
        platform.close()
    if st.wants_json(json_out):
        print_json({"revision": revision, "head": HEAD})
        return
    say(f"database at revision {revision}")


@app.command("current")
def current(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print the database's schema revision (none if never migrated).

    Example: modelplane db current
    """
    from modelplane.bootstrap import HEAD, bootstrap
    from modelplane.db.migrate import current_revision

    st = state(ctx)
    platform = bootstrap(st.settings(), migrate=False)
    try:
        revision = current_revision(platform.engine)
    finally:
        platform.close()
    if st.wants_json(json_out):
        print_json({"revision": revision, "head": HEAD})
        return
    if revision is None:
        say("none (empty database: run 'modelplane db upgrade')")
    elif revision == HEAD:
        say(f"{revision} (head)")
    else:
        say(f"{revision} (head is {HEAD}: run 'modelplane db upgrade')")
