"""The local-folder artifact store (the embedded default).

Layout under the root: ``objects/<d[:2]>/<digest>`` (a file, or a folder for a directory
artifact), written to ``tmp/`` first and renamed into place so a crash never leaves half an
object. A file is handed out through a hard link named as it was registered
(``views/<digest>/<name>``), so loaders that look at a file's suffix see it.

Work in ``tmp/`` is claimed through :class:`~modelplane.artifacts.staging.Staging` (a lock its
writer holds while it lives), so ``artifacts gc`` removes what a killed writer left and nothing
of a writer still at work. Everything is created honouring the process umask (files
``0o666 & ~umask``, folders ``0o777 & ~umask``): with umask 002 a group shares the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from modelplane.artifacts.base import (
    CHUNK,
    StoredArtifact,
    check_digest,
    manifest_of,
    safe_name,
    verify_dir,
    verify_file,
)
from modelplane.artifacts.staging import Staging, Temporary, size_of
from modelplane.errors import ArtifactMissing, InvalidInput, UnsafePath

__all__ = ["LocalArtifactStore"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


class LocalArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._staging = Staging(self._tmp)
        self._views = self.root / "views"

    def _object(self, digest: str) -> Path:
        return self._objects / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self._object(check_digest(digest)).exists()

    def put(self, source: Path) -> StoredArtifact:
        source = Path(source)
        if source.is_symlink():
            raise UnsafePath(f"{source} is a symlink; register the file it points to", field="path")
        if source.is_dir():
            return self._put_dir(source)
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file or folder", field="path")
        name = safe_name(source.name)
        h = hashlib.sha256()
        size = 0
        with self._staging.claim(".part") as staged:
            # O_EXCL with mode 0o666: the kernel applies the umask (mkstemp would make 0600).
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            self._place(staged, digest)
        return StoredArtifact(digest=digest, size=size, kind="file", name=name)

    def _put_dir(self, source: Path) -> StoredArtifact:
        name = safe_name(source.name or "artifact")
        digest, size, _ = manifest_of(source)
        if not self._object(digest).exists():
            with self._staging.claim() as staging:
                _copy_tree(source, staging)
                self._place(staging, digest)
        else:
            self._touch(digest)
        return StoredArtifact(digest=digest, size=size, kind="dir", name=name)

    def scratch(self) -> contextlib.AbstractContextManager[Path]:
        """A private empty folder under ``tmp/`` for work in progress, removed on exit; gc
        removes it once its owner is gone (see ``staging.py``)."""
        return _scratch(self._staging)

    def temporaries(self, older_than_s: float) -> list[Temporary]:
        return self._staging.stale(older_than_s)

    def size(self, digest: str) -> int | None:
        obj = self._object(check_digest(digest))
        return size_of(obj) if obj.exists() else None

    def _touch(self, digest: str) -> None:
        # Stored again: young again, so gc's age threshold protects the registration about to
        # point at it (gc lists orphans, then deletes them).
        with contextlib.suppress(OSError):
            os.utime(self._object(digest), (time.time(), time.time()))

    def _place(self, staged: Path, digest: str) -> None:
        target = self._object(digest)
        if target.exists():
            self._touch(digest)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged, target) if staged.is_file() else staged.rename(target)
        except OSError:
            if not target.exists():  # lost a race with an equal writer: fine; else re-raise
                raise

    def fetch(self, digest: str, *, name: str, owner: str) -> Path:
        obj = self._object(check_digest(digest))
        if obj.is_symlink():
            raise UnsafePath(
                f"artifact of {owner} is a symlink inside the store; objects are plain files",
                field="digest",
            )
        if not obj.exists():
            raise ArtifactMissing(
                f"artifact of {owner} (sha256 {digest[:12]}…) is missing from {self.root}"
            )
        if obj.is_dir():
            verify_dir(obj, digest, owner)
            return obj
        verify_file(obj, digest, owner)
        view = self._views / digest / safe_name(name)
        if view.exists() and not view.is_symlink() and os.path.samefile(view, obj):
            return view  # a hard link to the object just verified
        # Missing, a copy (no hard links here) or a stale/damaged link: make it afresh.
        view.parent.mkdir(parents=True, exist_ok=True)
        tmp = view.parent / f".{uuid.uuid4().hex}"
        try:
            os.link(obj, tmp)
        except OSError:
            shutil.copyfile(obj, tmp)
            verify_file(tmp, digest, owner)
        os.replace(tmp, view)
        return view

    def objects(self) -> Iterator[tuple[str, float | None]]:
        if not self._objects.is_dir():
            return
        for shard in sorted(self._objects.iterdir()):
            for obj in sorted(shard.iterdir()):
                if _DIGEST.fullmatch(obj.name):
                    yield obj.name, obj.lstat().st_mtime

    def delete(self, digest: str) -> None:
        obj = self._object(check_digest(digest))
        if obj.is_dir() and not obj.is_symlink():
            shutil.rmtree(obj)
        elif obj.exists() or obj.is_symlink():
            obj.unlink()
        shutil.rmtree(self._views / digest, ignore_errors=True)


@contextlib.contextmanager
def _scratch(staging: Staging) -> Iterator[Path]:
    with staging.claim() as folder:
        folder.mkdir()
        yield folder


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder's files (following links inside it; ``manifest_of`` refused any leaving
    it) without their modes: what is created gets ``0o666``/``0o777`` less the umask."""
    target.mkdir()
    for dirpath, dirnames, filenames in os.walk(source):
        here = target / Path(dirpath).relative_to(source)
        for d in dirnames:
            (here / d).mkdir()
        for f in filenames:
            shutil.copyfile(Path(dirpath) / f, here / f)
