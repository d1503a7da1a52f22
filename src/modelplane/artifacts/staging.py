"""Work in progress on disk, and finding what a dead process left of it.

A store writes into its ``tmp/`` folder first and renames into place (``local.py``). A writer
that is killed (``kill -9`` of ``models register``) leaves that half-written entry behind; this
module makes such leftovers recognisable, so ``modelplane artifacts gc`` removes them and never
the work of a process still running:

* :meth:`Staging.claim` names a fresh entry ``tmp/<id>`` and first creates ``tmp/<id>.lock``,
  locked (``flock``) by the writer for as long as it works: the kernel releases the lock when
  the process ends, however it ends. The lock file is made under a temporary name, locked, then
  renamed into place, so no one ever sees it unlocked while its owner lives.
* :meth:`Staging.stale` lists entries whose lock can be taken (the owner is gone) — at once,
  whatever their age — and entries without a lock file (left by older versions, or by a
  platform without ``flock``) once nothing in them changed for ``older_than_s``.
* :func:`stale_system_temporaries` lists the folders modelplane made under the system temp
  folder, of this user: ``modelplane-<random suffix>`` and ``modelplane-upload-<random
  suffix>`` by age only; ``modelplane-metrics-<pid>-<random suffix>`` (the metrics of
  ``serve --workers N``) once
  process ``<pid>`` is gone — a server killed with ``kill -9`` cannot remove its own.

Files are created with the process umask applied (``0o666 & ~umask``; folders ``0o777``), so a
store shared by a group stays readable by it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

if sys.platform != "win32":  # Windows has no flock: its entries are judged by age alone
    import fcntl

__all__ = [
    "Staging",
    "Temporary",
    "remove_temporary",
    "size_of",
    "stale_system_temporaries",
]

_LOCK = ".lock"
#: tempfile.mkdtemp names: prefix + 8 characters of [a-z0-9_].
_SYSTEM_TEMP = re.compile(r"modelplane-(upload-)?[a-z0-9_]{8}")
_METRICS_TEMP = re.compile(r"modelplane-metrics-(?P<pid>[0-9]+)-[a-z0-9_]{8}")


@dataclass(frozen=True)
class Temporary:
    """A leftover: where it is, how many bytes it holds, and why it is judged stale."""

    path: Path
    size: int
    reason: str  # "owner gone" or "older than N minutes"


class Staging:
    """The ``tmp/`` folder of a store: entries owned by a live process, or stale."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextlib.contextmanager
    def claim(self, suffix: str = "") -> Iterator[Path]:
        """A fresh path ``tmp/<id><suffix>`` (not created), locked as ours until exit.

        Whatever is left at that path on exit is removed, then the lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        ident = uuid.uuid4().hex
        lock_path = self.root / f"{ident}{_LOCK}"
        lock = _locked_file(self.root, lock_path)
        entry = self.root / f"{ident}{suffix}"
        try:
            yield entry
        finally:
            _remove(entry)
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
            lock.close()

    def stale(self, older_than_s: float) -> list[Temporary]:
        """Leftovers of dead writers, and unlocked entries unchanged for ``older_than_s``."""
        if not self.root.is_dir():
            return []
        found: list[Temporary] = []
        cutoff = time.time() - older_than_s
        names = sorted(os.listdir(self.root))
        locks = {n for n in names if n.endswith(_LOCK) and not n.startswith(".")}
        by_lock: dict[str, list[Path]] = {}
        for name in names:
            path = self.root / name
            if name in locks:
                continue
            ident = name.split(".", 1)[0] if not name.startswith(".") else ""
            if ident and f"{ident}{_LOCK}" in locks:
                by_lock.setdefault(f"{ident}{_LOCK}", []).append(path)
            elif _newest_mtime(path) < cutoff:  # no lock: by age (and half-made lock files)
                found.append(_aged(path, older_than_s))
        for lock_name in sorted(locks):
            lock_path = self.root / lock_name
            if not _owner_gone(lock_path):
                continue
            for path in by_lock.get(lock_name, []):
                found.append(Temporary(path, size_of(path), "owner gone"))
            found.append(Temporary(lock_path, size_of(lock_path), "owner gone"))
        return found


def stale_system_temporaries(older_than_s: float, *, folder: Path | None = None) -> list[Temporary]:
    """Folders modelplane made under the system temp folder, of this user, unchanged for
    ``older_than_s`` (they carry no lock: age is the only safe judge)."""
    base = folder or Path(tempfile.gettempdir())
    cutoff = time.time() - older_than_s
    uid = os.getuid() if hasattr(os, "getuid") else None
    found = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            metrics = _METRICS_TEMP.fullmatch(entry.name)
            if not (metrics or _SYSTEM_TEMP.fullmatch(entry.name)):
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            path = Path(entry.path)
            if metrics:
                if not _pid_alive(int(metrics["pid"])):
                    found.append(Temporary(path, size_of(path), "owner gone"))
            elif _newest_mtime(path) < cutoff:
                found.append(_aged(path, older_than_s))
    return found


def _aged(path: Path, older_than_s: float) -> Temporary:
    return Temporary(path, size_of(path), f"unchanged for {older_than_s / 60:g} min")


def remove_temporary(temporary: Temporary) -> int:
    """Remove a leftover; the bytes it held (0 when it was gone already)."""
    if not temporary.path.exists() and not temporary.path.is_symlink():
        return 0
    _remove(temporary.path)
    return temporary.size


def size_of(path: Path) -> int:
    """Bytes held by a file, or by every file under a folder (links not followed)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except FileNotFoundError:
        return 0
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def _locked_file(folder: Path, final: Path) -> IO[bytes]:
    """``final``, created, holding our pid, and locked by us before anyone can see it."""
    pending = folder / f".{uuid.uuid4().hex}{_LOCK}"
    fh = open(pending, "wb")  # noqa: SIM115 - held open: the lock lives as long as the file
    try:
        if sys.platform != "win32":
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        os.replace(pending, final)
    except BaseException:
        fh.close()
        with contextlib.suppress(FileNotFoundError):
            pending.unlink()
        raise
    return fh


def _owner_gone(lock_path: Path) -> bool:
    """True when nobody holds ``lock_path``'s lock (its writer ended, however it ended)."""
    if sys.platform == "win32":  # pragma: no cover - no flock: never judged gone by a lock
        return False
    try:
        fh = open(lock_path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return False  # its owner just finished and removed it
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` or anything under it (a writer still busy
    somewhere inside keeps the whole folder young)."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
    return newest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
