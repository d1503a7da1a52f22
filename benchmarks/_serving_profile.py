"""``benchmarks/serving.py --profile DIR``: py-spy each modelplane server under load at c=64.

Records with ``py-spy record --gil`` (if installed: ``pip install py-spy``) while the load
generator drives the server at concurrency 64, 1 and 32 rows, and prints where its Python time
goes (raw stacks stay in DIR).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from _serving_servers import Server, pinned

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Profile", "print_profiles", "profile", "top_frames"]

Profile = dict[str, list[tuple[str, float, float]]]  # "self"/"total" → (function, self %, total %)


def profile(
    servers: list[Server],
    out_dir: Path,
    duration_s: int,
    drive: Callable[[Server, int, int], object],
    client_cpu: int | None,
    console: Console,
) -> dict[str, Profile]:
    """py-spy each server under ``drive(server, rows, duration)`` at c=64; top functions by
    self/total share."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        console.print("[yellow]--profile: py-spy is not installed (pip install py-spy)[/]")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    tops: dict[str, Profile] = {}
    for server in servers:
        for rows in (1, 32):
            name = f"{server.key}-{rows}row-c64"
            raw = out_dir / f"{name}.txt"
            duration = max(duration_s, 3)
            with console.status(f"profiling {name}…"):
                spy = subprocess.Popen(
                    pinned([pyspy, "record", "--pid", str(server.proc.pid), "--duration",
                            str(duration), "--rate", "250", "--gil", "--format", "raw", "--output",
                            str(raw), "--nonblocking"], client_cpu),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                drive(server, rows, duration)
                _, err = spy.communicate(timeout=duration + 60)
            if not raw.exists():
                console.print(f"[yellow]py-spy failed on {name}: {err.decode()[-500:]}[/]")
                continue
            tops[name] = top_frames(raw)
    return tops


def top_frames(raw: Path, n: int = 12) -> Profile:
    """(function, self %, total %) of the ``n`` functions with the most samples of their own
    ("self"), and of the ``n`` others with the most in total below the entry frames ("total")."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {}
    by_self = [f for f, _ in own.most_common(n)]
    by_total = [
        f
        for f, c in inclusive.most_common()
        if c < 0.9 * total and f not in by_self and not any(e in f for e in ENTRY_FRAMES)
    ]
    return {
        kind: [(f, own[f] / total * 100, inclusive[f] / total * 100) for f in frames]
        for kind, frames in (("self", by_self), ("total", by_total[:n]))
    }


# Frames every sample of a thread passes through (process start-up, CLI, thread bootstrap).
ENTRY_FRAMES = (
    "(<frozen runpy>)", "(typer/", "(click/", "(typer/_click/", "(threading.py)",
    "(concurrent/futures/thread.py)", "(asyncio/runners.py)", "(uvicorn/main.py)",
    "(uvicorn/server.py)", "(uvicorn/_compat.py)", "(modelplane/cli/",
)  # fmt: skip


def _short(frame: str) -> str:
    """``func (/…/site-packages/pkg/mod/file.py:12)`` → ``func (pkg/mod/file.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    for anchor in ("site-packages", "src", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - 1 - parts[::-1].index(anchor) + 1 :]
            break
    return f"{name} ({'/'.join(parts[-3:])})"


def print_profiles(tops: dict[str, Profile], console: Console) -> None:
    from rich.table import Table

    for name, kinds in tops.items():
        table = Table(
            title=f"py-spy --gil: {name} (share of the samples of whichever thread holds the "
            "GIL; model code running without the GIL is not sampled)"
        )
        table.add_column("function (where)")
        table.add_column("self %", justify="right")
        table.add_column("total %", justify="right")
        for kind, rows in kinds.items():
            for index, (frame, own, incl) in enumerate(rows):
                last = kind == "self" and index == len(rows) - 1
                table.add_row(frame, f"{own:.1f}", f"{incl:.1f}", end_section=last)
        console.print(table)
