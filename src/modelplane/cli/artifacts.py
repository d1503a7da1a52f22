"""``modelplane artifacts …``: the artifact store (garbage collection)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import print_json, print_table, say

if TYPE_CHECKING:
    from modelplane.artifacts import Temporary

__all__ = ["UNCLAIMED_MIN_AGE_S", "app", "human_bytes"]

app = typer.Typer(no_args_is_help=True, help="The artifact store.")

#: Temporaries that carry no owner's lock (under the system temp folder, or left by an older
#: modelplane) are only judged by age: never younger than this, whatever ``--older-than`` says,
#: so a registration still copying a large model is never taken.
UNCLAIMED_MIN_AGE_S = 3600.0


def human_bytes(n: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


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
    """Delete stored artifacts no version points at, and temporaries of interrupted writes.

    Objects: unreferenced and older than --older-than. Temporaries: in the store's tmp/
    folder, those whose writing process is gone (a lock it held proves it) go at once; those
    without an owner's lock (and modelplane-* folders of this user in the system temp folder)
    once unchanged for --older-than, and never before an hour. Says how much was freed.

    Example: modelplane artifacts gc --older-than 60 --dry-run
    """
    from modelplane.artifacts import remove_temporary, stale_system_temporaries

    st = state(ctx)
    client = st.client()
    store = client.platform.artifacts
    older_than_s = older_than * 60
    # Objects: the client selects (unreferenced and old enough); sizes are read before.
    planned = client.collect_garbage(older_than_s=older_than_s, dry_run=True)
    sizes = {digest: store.size(digest) or 0 for digest in planned}
    removed = (
        planned if dry_run else client.collect_garbage(older_than_s=older_than_s, dry_run=False)
    )
    objects: list[dict[str, Any]] = [{"digest": d, "bytes": sizes.get(d, 0)} for d in removed]
    unclaimed_s = max(older_than_s, UNCLAIMED_MIN_AGE_S)
    # The store's own tmp/: a dead owner's work at once, unclaimed leftovers by age.
    temporaries: list[Temporary] = store.temporaries(unclaimed_s)
    temporaries += stale_system_temporaries(unclaimed_s)
    temps: list[dict[str, Any]] = []
    for t in temporaries:
        freed = t.size if dry_run else remove_temporary(t)
        temps.append({"path": str(t.path), "bytes": freed, "reason": t.reason})
    total = sum(int(o["bytes"]) for o in objects) + sum(int(t["bytes"]) for t in temps)
    if st.wants_json(json_out):
        print_json(
            {
                "dry_run": dry_run,
                "digests": removed,
                "objects": objects,
                "temporaries": temps,
                "freed_bytes": total,
            }
        )
        return
    verb = "would free" if dry_run else "freed"
    rows = [
        ["object", str(o["digest"]), human_bytes(int(o["bytes"])), "unreferenced"] for o in objects
    ] + [["temporary", t["path"], human_bytes(int(t["bytes"])), t["reason"]] for t in temps]
    print_table(["kind", "what", "size", "why"], rows, wrap=["what"], empty="nothing to remove")
    say(
        f"{verb} {human_bytes(total)} ({total} bytes): {len(objects)} unreferenced "
        f"artifact(s), {len(temps)} temporary file(s)"
    )
