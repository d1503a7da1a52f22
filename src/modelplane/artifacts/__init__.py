"""Content-addressed artifact storage: local folder (default) or any fsspec URL."""

from modelplane.artifacts.base import ArtifactStore, StoredArtifact, safe_join, safe_name
from modelplane.artifacts.staging import Temporary, remove_temporary, stale_system_temporaries

__all__ = [
    "ArtifactStore",
    "StoredArtifact",
    "Temporary",
    "open_store",
    "remove_temporary",
    "safe_join",
    "safe_name",
    "stale_system_temporaries",
]


def open_store(location: str, *, cache_dir: str | None = None) -> ArtifactStore:
    """The store for ``location``: a plain path or ``file://`` → local; other schemes → fsspec."""
    if "://" not in location or location.startswith("file://"):
        from modelplane.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(location.removeprefix("file://"))
    from modelplane.artifacts.remote import FsspecArtifactStore

    return FsspecArtifactStore(location, cache_dir=cache_dir)
