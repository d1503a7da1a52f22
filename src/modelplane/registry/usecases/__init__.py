"""The registry's use cases: register, log, load, collect garbage; and its access for others.

Plain functions over what they need, passed explicitly: the bus's ``handle`` for writes (every
write is a command), the registry's views for reads, the artifact store. The Python API
(:class:`modelplane.client.Client`), the CLI and the REST routes all call these, so no door has
rules of its own. They take no settings and no platform: the registry sits below the
composition root that builds those.
"""

from modelplane.registry.usecases.access import RegistryAccess, RegistryReader
from modelplane.registry.usecases.gc import DigestSource, collect_garbage
from modelplane.registry.usecases.loading import LoadedModel, VersionResolver, load_model
from modelplane.registry.usecases.logging import (
    Handle,
    log_model,
    register_file,
    register_model,
)

__all__ = [
    "DigestSource",
    "Handle",
    "LoadedModel",
    "RegistryAccess",
    "RegistryReader",
    "VersionResolver",
    "collect_garbage",
    "load_model",
    "log_model",
    "register_file",
    "register_model",
]
