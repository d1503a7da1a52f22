"""Garbage collection of the artifact store: objects no version points at.

A registration stores its artifact before the command that records it commits, so a failed one
leaves an object behind; only objects older than a grace period go, so one stored by a
registration still in flight is never taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelplane.artifacts import ArtifactStore

__all__ = ["DigestSource", "collect_garbage"]


class DigestSource(Protocol):
    """What collection needs of the registry's views (``RegistryViews`` fits)."""

    def referenced_digests(self) -> set[str]: ...


def collect_garbage(
    registry: DigestSource,
    artifacts: ArtifactStore,
    *,
    older_than_s: float = 3600,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
) -> list[str]:
    """Delete stored artifacts no version points at, written more than ``older_than_s``
    seconds before ``now()``. Returns the digests removed (or that would be, with dry_run)."""
    referenced = registry.referenced_digests()
    cutoff = now() - older_than_s
    orphans = [
        digest
        for digest, written in artifacts.objects()
        if digest not in referenced and (written is None or written < cutoff)
    ]
    if not dry_run:
        for digest in orphans:
            artifacts.delete(digest)
    return orphans
