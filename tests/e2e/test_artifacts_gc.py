"""``artifacts gc`` frees what interrupted registrations left, and never work in progress.

The registrations here are real ``modelplane models register`` processes. To be killed in the
middle of the copy (not before, not after) each one runs with a hash that stops for good after
the first chunk it copied, so the test synchronises on the half-written file appearing in the
store's ``tmp/`` folder — never on a sleep. The copy itself is the store's own code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelplane.artifacts import stale_system_temporaries
from modelplane.artifacts.local import LocalArtifactStore
from modelplane.artifacts.staging import Staging
from modelplane.runtimes import save_model
from tests.e2e.harness import DEADLINE_S, wait_for

#: ``models register`` whose copy into the store stops for good after its first chunk: the
#: store copies 16 KiB chunks (above the file buffer: each is written through at once), and
#: the second ``update`` of the hash blocks forever.
STALLED_REGISTER = """
import hashlib, runpy, sys, threading
import modelplane.artifacts.local as local

class _Stalling:
    def __init__(self):
        self._h = hashlib.sha256()
        self._n = 0
    def update(self, data):
        self._n += 1
        if self._n > 1:
            threading.Event().wait()
        self._h.update(data)
    def hexdigest(self):
        return self._h.hexdigest()

class _Hashlib:
    sha256 = _Stalling

local.CHUNK = 16384
local.hashlib = _Hashlib
sys.argv = ["modelplane", *sys.argv[1:]]
runpy.run_module("modelplane.cli.main", run_name="__main__")
"""


def modelplane(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    system_tmp = home.parent / "system-tmp"  # gc also looks there: not this machine's /tmp
    system_tmp.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "modelplane.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
        env={**os.environ, "TMPDIR": str(system_tmp)},
    )


def gc_json(home: Path, *args: str) -> dict[str, Any]:
    proc = modelplane(home, "artifacts", "gc", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    x = np.random.default_rng(0).normal(size=(40, 6000))
    path = save_model(LogisticRegression(max_iter=50).fit(x, x[:, 0] > 0), tmp_path / "m").path
    assert path.stat().st_size > 3 * 16384  # several chunks
    return path


class StalledRegistration:
    def __init__(
        self, home: Path, model_file: Path, tmp: Path, started: list[StalledRegistration]
    ) -> None:
        self.tmp = tmp
        before = set(tmp.glob("*.part")) if tmp.is_dir() else set()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                STALLED_REGISTER,
                "--home",
                str(home),
                "models",
                "register",
                "fraud",
                str(model_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(self)  # killed at teardown whatever happens
        self.part: Path | None = None

        def half_written() -> bool:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else b""
                pytest.fail(f"registration ended early: {err!r}")
            new = set(tmp.glob("*.part")) - before if tmp.is_dir() else set()
            for part in new:
                if part.stat().st_size >= 16384:
                    self.part = part
                    return True
            return False

        wait_for(half_written, "the registration's first chunk in tmp/")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE_S)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def stalled(home: Path, model_file: Path) -> Iterator[list[StalledRegistration]]:
    started: list[StalledRegistration] = []
    yield started
    for reg in started:
        if reg.proc.poll() is None:
            reg.kill()


class TestInterruptedRegistration:
    def test_gc_frees_what_a_killed_registration_left_and_spares_one_in_progress(
        self, home: Path, model_file: Path, stalled: list[StalledRegistration]
    ) -> None:
        tmp = home / "artifacts" / "tmp"
        killed = StalledRegistration(home, model_file, tmp, stalled)
        running = StalledRegistration(home, model_file, tmp, stalled)
        killed.kill()
        assert killed.part is not None
        assert killed.part.exists()

        plan = gc_json(home, "--dry-run")
        assert killed.part.exists()  # a dry run removes nothing
        done = gc_json(home)
        assert done["temporaries"] == plan["temporaries"]
        paths = {t["path"] for t in done["temporaries"]}
        assert str(killed.part) in paths
        assert not killed.part.exists()
        assert not killed.part.with_suffix(".lock").exists()
        assert done["freed_bytes"] >= 16384
        assert all(t["reason"] == "owner gone" for t in done["temporaries"])
        # The registration still at work keeps its file and its lock.
        assert running.part is not None
        assert running.part.exists()
        assert str(running.part) not in paths
        assert running.part.with_suffix(".lock").exists()

        running.kill()
        after = gc_json(home)
        assert str(running.part) in {t["path"] for t in after["temporaries"]}
        assert not running.part.exists()
        assert gc_json(home)["freed_bytes"] == 0

    def test_gc_says_how_much_it_freed_in_a_table(
        self, home: Path, model_file: Path, stalled: list[StalledRegistration]
    ) -> None:
        reg = StalledRegistration(home, model_file, home / "artifacts" / "tmp", stalled)
        reg.kill()
        proc = modelplane(home, "artifacts", "gc")
        assert proc.returncode == 0, proc.stderr
        assert "owner gone" in proc.stdout
        assert "freed" in proc.stdout
        assert "KiB" in proc.stdout


class TestStaging:
    def test_an_entry_whose_owner_lives_is_never_stale(self, tmp_path: Path) -> None:
        staging = Staging(tmp_path / "tmp")
        with staging.claim(".part") as entry:
            entry.write_bytes(b"x" * 10)
            assert staging.stale(older_than_s=0) == []
        assert list((tmp_path / "tmp").iterdir()) == []  # both removed on exit

    def test_an_unclaimed_leftover_goes_by_age_only(self, tmp_path: Path) -> None:
        tmp = tmp_path / "tmp"
        tmp.mkdir()
        old = tmp / "tmpabc123"  # what an older modelplane left (mkstemp, no lock)
        old.write_bytes(b"y" * 100)
        assert Staging(tmp).stale(older_than_s=3600) == []
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        [found] = Staging(tmp).stale(older_than_s=3600)
        assert (found.path, found.size) == (old, 100)

    def test_the_metrics_folder_of_a_dead_server_goes_and_of_a_live_one_stays(
        self, tmp_path: Path
    ) -> None:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        gone = tmp_path / f"modelplane-metrics-{int(dead.stdout)}-abcd1234"
        live = tmp_path / f"modelplane-metrics-{os.getpid()}-abcd1234"
        for folder in (gone, live):
            folder.mkdir()
            (folder / "counter_1.db").write_bytes(b"m" * 50)
        found = stale_system_temporaries(3600, folder=tmp_path)
        assert [(t.path, t.size, t.reason) for t in found] == [(gone, 50, "owner gone")]

    def test_system_temp_folders_of_modelplane_go_by_age_and_other_folders_never(
        self, tmp_path: Path
    ) -> None:
        hour_ago = time.time() - 7200
        for name in (
            "modelplane-abcd1234",
            "modelplane-upload-abcd_234",
            "modelplane-metrics-abcd1234",
            "other-abcd1234",
        ):
            (tmp_path / name).mkdir()
            (tmp_path / name / "model.skops").write_bytes(b"z" * 10)
            os.utime(tmp_path / name / "model.skops", (hour_ago, hour_ago))
            os.utime(tmp_path / name, (hour_ago, hour_ago))
        young = tmp_path / "modelplane-young123"
        young.mkdir()
        found = stale_system_temporaries(3600, folder=tmp_path)
        assert sorted(t.path.name for t in found) == [
            "modelplane-abcd1234",
            "modelplane-upload-abcd_234",
        ]
        assert all(t.size == 10 for t in found)


class TestUmask:
    @pytest.mark.parametrize(
        ("umask", "file_mode", "dir_mode"),
        [
            (0o002, 0o664, 0o775),
            (0o077, 0o600, 0o700),
        ],
    )
    def test_objects_are_created_with_the_process_umask(
        self, tmp_path: Path, model_file: Path, umask: int, file_mode: int, dir_mode: int
    ) -> None:
        folder = tmp_path / "folder-artifact"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "weights.bin").write_bytes(b"w" * 100)
        folder.chmod(0o700)  # as tempfile.TemporaryDirectory makes it: not copied over
        old = os.umask(umask)
        try:
            store = LocalArtifactStore(tmp_path / "store")
            stored = store.put(model_file)
            tree = store.put(folder)
            view = store.fetch(stored.digest, name=stored.name, owner="fraud/1")
        finally:
            os.umask(old)
        obj = store.root / "objects" / stored.digest[:2] / stored.digest
        assert obj.stat().st_mode & 0o777 == file_mode
        assert view.stat().st_mode & 0o777 == file_mode
        assert obj.parent.stat().st_mode & 0o777 == dir_mode
        tree_obj = store.root / "objects" / tree.digest[:2] / tree.digest
        assert tree_obj.stat().st_mode & 0o777 == dir_mode
        assert (tree_obj / "sub").stat().st_mode & 0o777 == dir_mode
        assert (tree_obj / "sub" / "weights.bin").stat().st_mode & 0o777 == file_mode
