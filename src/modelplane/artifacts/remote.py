"""The fsspec artifact store: any URL fsspec understands (``s3://``, ``gs://``, ``memory://``…).

Objects live under ``<url>/objects/<d[:2]>/<digest>``; a directory artifact is a folder there
plus ``<digest>.manifest.json``. Fetches download into a local cache and are verified there on
every load. Work in progress on this machine (:meth:`FsspecArtifactStore.scratch`) lives under
``<cache>/tmp``, where ``artifacts gc`` finds what a killed process left.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelplane.artifacts.base import (
    StoredArtifact,
    check_digest,
    hash_file,
    manifest_of,
    safe_join,
    safe_name,
    verify_dir,
    verify_file,
)
from modelplane.artifacts.staging import Staging, Temporary
from modelplane.errors import ArtifactMissing, InvalidInput, UnsafePath

__all__ = ["FsspecArtifactStore"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


class FsspecArtifactStore:
    def __init__(self, url: str, *, cache_dir: str | Path | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        fs, path = fsspec.core.url_to_fs(self.url)
        self._fs: Any = fs
        self._base: str = path.rstrip("/")
        self._cache = Path(cache_dir or Path.home() / ".cache" / "modelplane").absolute()
        self._staging = Staging(self._cache / "tmp")

    def _object(self, digest: str) -> str:
        return f"{self._base}/objects/{digest[:2]}/{digest}"

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._object(check_digest(digest))))

    def put(self, source: Path) -> StoredArtifact:
        source = Path(source)
        if source.is_symlink():
            raise UnsafePath(f"{source} is a symlink; register the file it points to", field="path")
        if source.is_dir():
            digest, size, entries = manifest_of(source)
            target = self._object(digest)
            if not self._fs.exists(target + ".manifest.json"):
                for rel, _, _ in entries:
                    dest = f"{target}/{rel}"
                    self._fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
                    self._fs.put_file(str(safe_join(source, rel)), dest)
                with self._fs.open(target + ".manifest.json", "w") as fh:
                    json.dump(entries, fh)
            return StoredArtifact(
                digest=digest, size=size, kind="dir", name=safe_name(source.name or "artifact")
            )
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file or folder", field="path")
        name = safe_name(source.name)
        digest, size = hash_file(source)
        target = self._object(digest)
        if not self._fs.exists(target):
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self._fs.put_file(str(source), target)
        return StoredArtifact(digest=digest, size=size, kind="file", name=name)

    def fetch(self, digest: str, *, name: str, owner: str) -> Path:
        target = self._object(check_digest(digest))
        local_root = self._cache / digest
        manifest_path = target + ".manifest.json"
        if self._fs.exists(manifest_path):
            local = local_root / "tree"
            if not local.exists():
                with self._fs.open(manifest_path, "r") as fh:
                    entries = json.load(fh)
                staging = local_root / f".{uuid.uuid4().hex}"
                staging.mkdir(parents=True)
                for rel, _, _ in entries:
                    dest = safe_join(staging, rel)  # a tampered manifest cannot escape
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self._fs.get_file(f"{target}/{rel}", str(dest))
                staging.rename(local)
            verify_dir(local, digest, owner)
            return local
        local = local_root / safe_name(name)
        if not local.exists():
            if not self._fs.exists(target):
                raise ArtifactMissing(
                    f"artifact of {owner} (sha256 {digest[:12]}…) is missing from {self.url}"
                )
            local_root.mkdir(parents=True, exist_ok=True)
            tmp = local_root / f".{uuid.uuid4().hex}"
            self._fs.get_file(target, str(tmp))
            tmp.rename(local)
        try:
            verify_file(local, digest, owner)
        except Exception:
            shutil.rmtree(local_root, ignore_errors=True)
            raise
        return local

    def scratch(self) -> contextlib.AbstractContextManager[Path]:
        """A private empty local folder for work in progress (under the cache), removed on exit;
        gc removes it once its owner is gone."""
        return _scratch(self._staging)

    def temporaries(self, older_than_s: float) -> list[Temporary]:
        return self._staging.stale(older_than_s)

    def size(self, digest: str) -> int | None:
        target = self._object(check_digest(digest))
        if not self._fs.exists(target):
            return None
        return int(self._fs.du(target, total=True))

    def objects(self) -> Iterator[tuple[str, float | None]]:
        base = f"{self._base}/objects"
        if not self._fs.exists(base):
            return
        for shard in sorted(self._fs.ls(base, detail=False)):
            for entry in sorted(self._fs.ls(shard, detail=True), key=lambda e: str(e["name"])):
                name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
                if _DIGEST.fullmatch(name):
                    yield name, _mtime(entry)

    def delete(self, digest: str) -> None:
        target = self._object(check_digest(digest))
        for path in (target + ".manifest.json", target):
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
        shutil.rmtree(self._cache / digest, ignore_errors=True)


def _mtime(entry: dict[str, Any]) -> float | None:
    for key in ("mtime", "created", "LastModified", "updated"):
        value = entry.get(key)
        if isinstance(value, int | float):
            return float(value)
        stamp = getattr(value, "timestamp", None)
        if callable(stamp):
            return float(stamp())
    return None


@contextlib.contextmanager
def _scratch(staging: Staging) -> Iterator[Path]:
    with staging.claim() as folder:
        folder.mkdir()
        yield folder
