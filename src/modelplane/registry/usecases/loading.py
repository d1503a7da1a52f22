"""Loading a registered version: resolve the reference, fetch and verify the artifact, load it.

Whether content outside the allowlist may load is the version's to say (an admin trusted it,
recorded when it was registered), unless the caller decides here and now: the serving pool, the
release gates and the Python API all load through :func:`load_model`, so one rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelplane.registry.model import ModelVersion

if TYPE_CHECKING:
    import numpy as np

    from modelplane.artifacts import ArtifactStore
    from modelplane.core.names import Reference
    from modelplane.core.signature import Signature
    from modelplane.runtimes import Runtime

__all__ = ["LoadedModel", "VersionResolver", "load_model"]


class VersionResolver(Protocol):
    """What loading needs of the registry's views (``RegistryViews`` fits)."""

    def resolve(self, ref: str | Reference) -> ModelVersion: ...


@dataclass
class LoadedModel:
    """A model version ready to predict. Input is checked against its signature first."""

    version: ModelVersion
    runtime: Runtime
    signature: Signature | None

    @property
    def name(self) -> str:
        return self.version.model

    @property
    def flavor(self) -> str:
        return self.version.flavor

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return self.runtime.predict(self._check(batch))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        return self.runtime.predict_proba(self._check(batch))

    def _check(self, batch: Any) -> Any:
        return self.signature.validate(batch) if self.signature is not None else batch

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.model}/{self.version.version} ({self.flavor})>"


def load_model(
    registry: VersionResolver,
    artifacts: ArtifactStore,
    ref: str | Reference,
    *,
    trust: bool | None = None,
) -> LoadedModel:
    """Load ``models:/name@alias`` (or ``name``, ``name/3``…), verified and ready.

    ``trust``: None honours what the version records (content outside the allowlist loads only
    if an admin trusted the version); True trusts it here and now (your own files); False
    refuses it even when the version is trusted.
    """
    from modelplane.core.signature import Signature
    from modelplane.runtimes import load_runtime

    version = registry.resolve(ref)
    path = artifacts.fetch(
        version.digest, name=version.artifact_name, owner=f"{version.model}/{version.version}"
    )
    runtime = load_runtime(version.flavor, path, trust=version.trusted if trust is None else trust)
    signature = Signature.from_dict(version.signature) if version.signature else None
    return LoadedModel(version=version, runtime=runtime, signature=signature)
