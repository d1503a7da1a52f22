"""One contract for every artifact store: local folder, fsspec ``file://`` and ``memory://``."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from modelplane.artifacts import ArtifactStore, open_store, safe_join, safe_name
from modelplane.artifacts.local import LocalArtifactStore
from modelplane.artifacts.remote import FsspecArtifactStore
from modelplane.errors import ArtifactCorrupted, ArtifactMissing, InvalidInput, UnsafePath


@pytest.fixture(params=["local", "fsspec-file", "fsspec-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    if request.param == "fsspec-file":
        return FsspecArtifactStore(f"file://{tmp_path / 'remote'}", cache_dir=tmp_path / "cache")
    return FsspecArtifactStore(f"memory://mp-{uuid.uuid4().hex}", cache_dir=tmp_path / "cache")


def object_path(store: ArtifactStore, digest: str) -> tuple[object, str]:
    """The backing filesystem and path of an object, to damage it in tests."""
    if isinstance(store, LocalArtifactStore):
        return None, str(store.root / "objects" / digest[:2] / digest)
    assert isinstance(store, FsspecArtifactStore)
    return store._fs, store._object(digest)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"\x08\x07fake-onnx-bytes" * 100)
    return path


class TestPutAndFetch:
    def test_digest_is_the_sha256_of_the_content(
        self, store: ArtifactStore, model_file: Path
    ) -> None:
        stored = store.put(model_file)
        assert stored.digest == hashlib.sha256(model_file.read_bytes()).hexdigest()
        assert (stored.size, stored.kind, stored.name) == (
            model_file.stat().st_size,
            "file",
            "model.onnx",
        )

    def test_fetch_returns_the_same_bytes_under_the_registered_name(
        self, store: ArtifactStore, model_file: Path
    ) -> None:
        stored = store.put(model_file)
        path = store.fetch(stored.digest, name="model.onnx", owner="fraud/1")
        assert path.name == "model.onnx"
        assert path.read_bytes() == model_file.read_bytes()

    def test_identical_content_is_stored_once(
        self, store: ArtifactStore, model_file: Path, tmp_path: Path
    ) -> None:
        copy = tmp_path / "copy.onnx"
        copy.write_bytes(model_file.read_bytes())
        a, b = store.put(model_file), store.put(copy)
        assert a.digest == b.digest
        if isinstance(store, LocalArtifactStore):
            objects = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
            assert len(objects) == 1

    def test_directories_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        folder = tmp_path / "bundle"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "sub" / "b.bin").write_bytes(b"\x00\x01")
        stored = store.put(folder)
        assert stored.kind == "dir"
        assert stored.size == 3
        path = store.fetch(stored.digest, name="bundle", owner="fraud/2")
        assert (path / "a.txt").read_text() == "a"
        assert (path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
        assert store.put(folder).digest == stored.digest

    def test_exists(self, store: ArtifactStore, model_file: Path) -> None:
        stored = store.put(model_file)
        assert store.exists(stored.digest)
        assert not store.exists("0" * 64)


class TestIntegrity:
    def test_corrupted_artifact_is_an_error_naming_the_version(
        self, store: ArtifactStore, model_file: Path
    ) -> None:
        stored = store.put(model_file)
        fs, path = object_path(store, stored.digest)
        if fs is None:
            Path(path).write_bytes(b"tampered")
        else:
            with fs.open(path, "wb") as fh:  # type: ignore[attr-defined]
                fh.write(b"tampered")
        with pytest.raises(ArtifactCorrupted, match="fraud/3"):
            store.fetch(stored.digest, name="model.onnx", owner="fraud/3")

    def test_missing_artifact_is_an_error_naming_the_version(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactMissing, match="fraud/4"):
            store.fetch("f" * 64, name="model.onnx", owner="fraud/4")

    def test_corruption_after_a_first_fetch_is_still_caught(
        self, store: ArtifactStore, model_file: Path
    ) -> None:
        stored = store.put(model_file)
        path = store.fetch(stored.digest, name="model.onnx", owner="fraud/5")
        os.chmod(path, 0o644)
        path.write_bytes(b"tampered later")
        with pytest.raises(ArtifactCorrupted):
            store.fetch(stored.digest, name="model.onnx", owner="fraud/5")

    @pytest.mark.parametrize("digest", ["abc", "../" * 10, "G" * 64, ""])
    def test_malformed_digest_is_refused(self, store: ArtifactStore, digest: str) -> None:
        with pytest.raises(InvalidInput):
            store.fetch(digest, name="m", owner="fraud/1")


class TestPathSafety:
    @pytest.mark.parametrize(
        "name", ["..", ".", "", "a/b", "..\\x", "x\x00y", "model.skops#../../x", "a?b", "%2e%2e"]
    )
    def test_unsafe_names_are_refused(self, name: str) -> None:
        with pytest.raises(UnsafePath):
            safe_name(name)

    @pytest.mark.parametrize(
        "relative",
        ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/#/../../b", "a\\..\\b", ""],
    )
    def test_joins_that_escape_are_refused(self, tmp_path: Path, relative: str) -> None:
        with pytest.raises(UnsafePath):
            safe_join(tmp_path, relative)

    def test_symlink_inside_pointing_out_is_refused_by_join(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "escape").symlink_to(tmp_path)
        with pytest.raises(UnsafePath):
            safe_join(root, "escape/secret")

    def test_plain_relative_join_is_allowed(self, tmp_path: Path) -> None:
        assert safe_join(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()

    def test_folder_with_symlink_leaving_it_is_refused(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("password")
        folder = tmp_path / "bundle"
        folder.mkdir()
        (folder / "model.txt").write_text("ok")
        (folder / "leak.txt").symlink_to(secret)
        with pytest.raises(UnsafePath):
            store.put(folder)

    def test_symlinked_file_is_refused(
        self, store: ArtifactStore, model_file: Path, tmp_path: Path
    ) -> None:
        link = tmp_path / "link.onnx"
        link.symlink_to(model_file)
        with pytest.raises(UnsafePath):
            store.put(link)

    def test_fetch_name_cannot_escape_the_store(
        self, store: ArtifactStore, model_file: Path
    ) -> None:
        stored = store.put(model_file)
        with pytest.raises(UnsafePath):
            store.fetch(stored.digest, name="../../../evil", owner="fraud/1")


class TestLocalStoreHardening:
    def test_object_replaced_by_a_symlink_is_refused(
        self, tmp_path: Path, model_file: Path
    ) -> None:
        store = LocalArtifactStore(tmp_path / "store")
        stored = store.put(model_file)
        obj = store.root / "objects" / stored.digest[:2] / stored.digest
        outside = tmp_path / "outside.onnx"
        outside.write_bytes(model_file.read_bytes())
        obj.unlink()
        obj.symlink_to(outside)
        with pytest.raises(UnsafePath):
            store.fetch(stored.digest, name="model.onnx", owner="fraud/1")

    def test_a_damaged_view_over_an_intact_object_is_rebuilt(
        self, tmp_path: Path, model_file: Path
    ) -> None:
        store = LocalArtifactStore(tmp_path / "store")
        stored = store.put(model_file)
        view = store.fetch(stored.digest, name="model.onnx", owner="fraud/1")
        view.unlink()
        view.write_bytes(b"stale copy")
        again = store.fetch(stored.digest, name="model.onnx", owner="fraud/1")
        assert again.read_bytes() == model_file.read_bytes()


class TestListingAndDeleting:
    def test_objects_lists_what_was_stored_and_delete_removes_it(
        self, store: ArtifactStore, model_file: Path, tmp_path: Path
    ) -> None:
        folder = tmp_path / "bundle"
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        one, two = store.put(model_file), store.put(folder)
        listed = dict(store.objects())
        assert set(listed) == {one.digest, two.digest}
        store.delete(one.digest)
        store.delete(two.digest)
        assert dict(store.objects()) == {}
        assert not store.exists(one.digest)


class TestWorkInProgress:
    def test_scratch_is_a_private_empty_folder_removed_on_exit(self, store: ArtifactStore) -> None:
        with store.scratch() as folder:
            assert folder.is_dir()
            assert list(folder.iterdir()) == []
            (folder / "model.skops").write_bytes(b"x" * 10)
            assert store.temporaries(older_than_s=0) == []  # its owner is alive: never stale
        assert not folder.exists()
        assert store.temporaries(older_than_s=0) == []

    def test_size_is_what_the_object_holds(
        self, store: ArtifactStore, model_file: Path, tmp_path: Path
    ) -> None:
        stored = store.put(model_file)
        assert store.size(stored.digest) == stored.size == model_file.stat().st_size
        folder = tmp_path / "tree"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.bin").write_bytes(b"a" * 7)
        (folder / "sub" / "b.bin").write_bytes(b"b" * 5)
        tree = store.put(folder)
        assert store.size(tree.digest) == 12
        assert store.size("0" * 64) is None
