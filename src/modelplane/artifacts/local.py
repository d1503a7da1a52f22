"""The local-folder artifact store (the embedded default).

Layout under the root: ``objects/<d[:2]>/<digest>`` (a file, or a folder for a directory
artifact), written to ``tmp/`` first and renamed into place so a crash never leaves half an
object. A file is handed out through a hard link named as it was registered
(``views/<digest>/<name>``), so loaders that look at a file's suffix see it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
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
from modelplane.errors import ArtifactMissing, InvalidInput, UnsafePath

__all__ = ["LocalArtifactStore"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


class LocalArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
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
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        h = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            self._place(Path(tmp_name), digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return StoredArtifact(digest=digest, size=size, kind="file", name=name)

    def _put_dir(self, source: Path) -> StoredArtifact:
        name = safe_name(source.name or "artifact")
        digest, size, _ = manifest_of(source)
        target = self._object(digest)
        if not target.exists():
            self._tmp.mkdir(parents=True, exist_ok=True)
            staging = self._tmp / uuid.uuid4().hex
            shutil.copytree(source, staging, symlinks=False)
            self._place(staging, digest)
            shutil.rmtree(staging, ignore_errors=True)
        return StoredArtifact(digest=digest, size=size, kind="dir", name=name)

    def _place(self, staged: Path, digest: str) -> None:
        target = self._object(digest)
        if target.exists():
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
