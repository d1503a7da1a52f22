"""The artifact store port, and the hashing and path rules every back end shares.

An artifact is a file or a directory, addressed by the sha256 of its content (for a directory:
of its manifest, the sorted list of ``relative path, file sha256, size``). Storing the same
content twice stores it once. Every fetch re-hashes what it hands out: corrupted or missing
content is an error naming the model version, never a silently wrong model.

Names never escape their folder: absolute paths, ``..`` parts, back-slashes, NUL bytes, URL
fragments/queries and symlinks that resolve outside are refused (MLflow's path-traversal CVEs,
including a ``#`` fragment bypass of a first fix, are the cautionary tale).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from modelplane.errors import ArtifactCorrupted, InvalidInput, UnsafePath

if TYPE_CHECKING:
    from modelplane.artifacts.staging import Temporary

__all__ = [
    "CHUNK",
    "ArtifactStore",
    "StoredArtifact",
    "check_digest",
    "hash_file",
    "manifest_of",
    "safe_join",
    "safe_name",
]

CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_BAD_CHARS = ("\\", "\x00", "#", "?", "%")

Kind = Literal["file", "dir"]


@dataclass(frozen=True)
class StoredArtifact:
    digest: str
    size: int
    kind: Kind
    name: str


class ArtifactStore(Protocol):
    def put(self, source: Path) -> StoredArtifact:
        """Store a file or directory; return its digest. Idempotent for equal content."""
        ...

    def fetch(self, digest: str, *, name: str, owner: str) -> Path:
        """A verified local path to the artifact (named ``name`` for a file).

        ``owner`` (e.g. ``fraud/3``) names the model version in errors.
        """
        ...

    def exists(self, digest: str) -> bool: ...

    def objects(self) -> Iterator[tuple[str, float | None]]:
        """Every stored object: its digest and when it was written (None when unknown)."""
        ...

    def delete(self, digest: str) -> None:
        """Remove one object (garbage collection only: versions are immutable)."""
        ...

    def size(self, digest: str) -> int | None:
        """Bytes the object holds (None when it is not stored)."""
        ...

    def scratch(self) -> AbstractContextManager[Path]:
        """A private empty local folder for work in progress (a model saved before ``put``,
        an upload), removed on exit; ``temporaries`` reports it once its process is gone."""
        ...

    def temporaries(self, older_than_s: float) -> list[Temporary]:
        """Work in progress left by processes that are gone (at once), and unclaimed
        leftovers unchanged for ``older_than_s`` (see ``staging.py``)."""
        ...


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidInput(f"invalid artifact digest {digest!r}", field="digest")
    return digest


def safe_name(name: str, *, field: str = "name") -> str:
    """A single path component that cannot escape its folder."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or any(ch in name for ch in _BAD_CHARS)
        or len(name) > 255
    ):
        raise UnsafePath(f"unsafe artifact name {name!r}", field=field)
    return name


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``."""
    if not relative or relative.startswith("/") or any(ch in relative for ch in _BAD_CHARS):
        raise UnsafePath(f"unsafe artifact path {relative!r}", field="path")
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"unsafe artifact path {relative!r}", field="path")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise UnsafePath(f"artifact path {relative!r} escapes its folder", field="path")
    return target


def hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def manifest_of(root: Path) -> tuple[str, int, list[tuple[str, str, int]]]:
    """``(digest, total size, entries)`` of a directory; symlinks leaving it are refused."""
    base = root.resolve()
    entries: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for d in list(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                raise UnsafePath(
                    f"{full} is a symlink to a folder; artifacts hold plain files", field="path"
                )
        for fname in filenames:
            full = Path(dirpath) / fname
            if full.is_symlink() and not full.resolve().is_relative_to(base):
                raise UnsafePath(f"{full} links outside the artifact folder", field="path")
            rel = full.relative_to(base).as_posix()
            digest, size = hash_file(full)
            entries.append((rel, digest, size))
    entries.sort()
    raw = json.dumps(entries, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest(), sum(e[2] for e in entries), entries


def verify_file(path: Path, digest: str, owner: str) -> None:
    actual, _ = hash_file(path)
    if actual != digest:
        raise ArtifactCorrupted(
            f"artifact of {owner} is corrupted: expected sha256 {digest[:12]}…, "
            f"found {actual[:12]}…"
        )


def verify_dir(path: Path, digest: str, owner: str) -> None:
    actual, _, _ = manifest_of(path)
    if actual != digest:
        raise ArtifactCorrupted(
            f"artifact folder of {owner} is corrupted: expected sha256 {digest[:12]}…, "
            f"found {actual[:12]}…"
        )
