"""Registering: a model, a version from an in-memory model (``log_model``) or a saved file.

Every write is a command on the bus (``handle``): the Python API, the CLI and the REST upload
route call these same functions, so one set of rules decides what is stored. A model, alias or
tag that cannot be registered is refused before its artifact is written, and content outside the
allowlist (a pickle, a ``pyfunc``, a scikit-learn pipeline with a function of its own) before it
is stored unless it is trusted; trust is recorded on the version, with who granted it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from modelplane.core.messages import Command
from modelplane.errors import InvalidInput, UntrustedArtifact
from modelplane.registry import commands as rc
from modelplane.registry.model import (
    Lineage,
    ModelVersion,
    RegisteredModel,
    check_user_tags,
    validate_alias,
    validate_name,
    validate_tags,
)

if TYPE_CHECKING:
    from modelplane.artifacts import ArtifactStore, StoredArtifact
    from modelplane.core.signature import Signature

__all__ = ["Handle", "log_model", "register_file", "register_model"]

#: The message bus's ``handle``: run one command, return what its handler returns.
Handle = Callable[[Command], Any]


def register_model(
    handle: Handle, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
) -> RegisteredModel:
    """Register a model with no version yet (Conflict when the name is taken)."""
    command = rc.RegisterModel(name=name, description=description, tags=dict(tags or {}))
    return cast(RegisteredModel, handle(command))


@dataclass(frozen=True)
class _Details:
    """What a new version records besides its artifact, as the caller gave it."""

    signature: dict[str, Any] | None
    metrics: Mapping[str, float] | None
    params: Mapping[str, Any] | None
    tags: Mapping[str, str] | None
    lineage: Lineage
    aliases: tuple[str, ...]
    description: str
    trusted_by: str | None


def log_model(
    handle: Handle,
    artifacts: ArtifactStore,
    model: Any,
    *,
    name: str,
    signature: Signature | Mapping[str, Any] | None = None,
    input_example: Any = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    lineage: Lineage | Mapping[str, Any] | None = None,
    alias: str | list[str] | None = None,
    description: str = "",
    flavor: str | None = None,
    trust: bool = False,
    trusted_by: str | None = None,
) -> ModelVersion:
    """Save ``model`` in its flavor's safe format, store it in ``artifacts``, register it as
    the next version of ``name`` (created if missing).

    ``trust``: let the version hold code outside the allowlist, recorded with ``trusted_by``
    (default ``local:<user>``: the Python API runs with the database's own credentials).
    """
    from modelplane.runtimes import detect_flavor, load_runtime, save_model

    aliases = _precheck(name, alias, tags)
    lineage_value = _lineage(lineage)
    flavor = flavor or detect_flavor(model)
    if flavor == "pyfunc" and not trust:
        raise _pyfunc_untrusted(name)
    if signature is None and input_example is not None:
        from modelplane.core.signature import infer_signature

        signature = infer_signature(input_example)
    with artifacts.scratch() as tmp:  # under the store's tmp/: gc finds it
        saved = save_model(model, tmp, flavor=flavor, input_example=input_example)
        if not trust and saved.flavor == "sklearn":  # refused now, not at every later load
            load_runtime(saved.flavor, saved.path, trust=False)
        if signature is None and saved.flavor == "onnx":
            signature = _declared_signature(saved.path)
        stored = artifacts.put(saved.path)
    details = _Details(
        signature=_signature_dict(signature),
        metrics=metrics,
        params=params,
        tags=tags,
        lineage=lineage_value,
        aliases=aliases,
        description=description,
        trusted_by=_trusted_by(trust, trusted_by),
    )
    return _register(handle, name, saved.flavor, stored, details, create_model=True)


def register_file(
    handle: Handle,
    artifacts: ArtifactStore,
    name: str,
    path: str | Path,
    *,
    flavor: str | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    lineage: Lineage | Mapping[str, Any] | None = None,
    alias: str | list[str] | None = None,
    description: str = "",
    trust: bool = False,
    create_model: bool = True,
    trusted_by: str | None = None,
) -> ModelVersion:
    """Register a model file saved earlier (``.skops``, ``.onnx``, ``.ubj``…).

    The file is loaded once first, so a file that is not a model of its flavor, or one holding
    code outside the allowlist without ``trust``, is refused before anything is stored.
    """
    aliases = _precheck(name, alias, tags)
    lineage_value = _lineage(lineage)
    signature_value = _signature_dict(signature)
    source = Path(path)
    if not source.exists():
        raise InvalidInput(f"{source} does not exist", field="path")
    flavor = _loadable_flavor(source, flavor, trust=trust)
    if signature_value is None and flavor == "onnx":
        signature_value = _declared_signature(source)
    stored = artifacts.put(source)
    details = _Details(
        signature=signature_value,
        metrics=metrics,
        params=params,
        tags=tags,
        lineage=lineage_value,
        aliases=aliases,
        description=description,
        trusted_by=_trusted_by(trust, trusted_by),
    )
    return _register(handle, name, flavor, stored, details, create_model=create_model)


def _loadable_flavor(source: Path, flavor: str | None, *, trust: bool) -> str:
    """The file's flavor, once the file has loaded as a model of it (InvalidInput otherwise,
    UntrustedArtifact for content outside the allowlist without ``trust``)."""
    from modelplane.runtimes import guess_flavor, load_runtime

    flavor = flavor or guess_flavor(source)
    if flavor == "pyfunc" and not trust:
        raise _pyfunc_untrusted(source.name)
    try:
        load_runtime(flavor, source, trust=trust)
    except (UntrustedArtifact, InvalidInput):
        raise
    except Exception as exc:  # the engine's own error: say it plainly, as bad input
        raise InvalidInput(
            f"{source.name} could not be loaded as a {flavor} model: {exc}", field="path"
        ) from exc
    return flavor


def _register(
    handle: Handle,
    name: str,
    flavor: str,
    stored: StoredArtifact,
    details: _Details,
    *,
    create_model: bool,
) -> ModelVersion:
    command = rc.RegisterVersion(
        model=name,
        flavor=flavor,
        digest=stored.digest,
        size=stored.size,
        artifact_name=stored.name,
        signature=details.signature,
        params={k: str(v) for k, v in (details.params or {}).items()},
        metrics=dict(details.metrics or {}),
        tags=dict(details.tags or {}),
        lineage=details.lineage,
        description=details.description,
        aliases=details.aliases,
        create_model=create_model,
        trusted_by=details.trusted_by,
    )
    return cast(ModelVersion, handle(command))


def _signature_dict(signature: Any) -> dict[str, Any] | None:
    if signature is None:
        return None
    from modelplane.core.signature import Signature

    if isinstance(signature, Signature):
        return signature.to_dict()
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature).to_dict()
    raise InvalidInput("signature must be a Signature or its dict form", field="signature")


def _precheck(
    name: str, alias: str | list[str] | None, tags: Mapping[str, str] | None
) -> tuple[str, ...]:
    """Refuse a bad name, alias or tag before an artifact is written anywhere; the aliases."""
    validate_name(name)
    check_user_tags(dict(tags or {}))
    aliases = (alias,) if isinstance(alias, str) else tuple(alias or ())
    for a in aliases:
        validate_alias(a)
    validate_tags(dict(tags or {}))
    return aliases


def _declared_signature(path: Path) -> dict[str, Any] | None:
    """An ONNX graph declares its inputs and outputs: use them when no signature was given."""
    from modelplane.runtimes.onnx import signature_of

    try:
        return _signature_dict(signature_of(path))
    except InvalidInput:  # e.g. a declared dtype modelplane signatures do not have
        return None


def _lineage(lineage: Lineage | Mapping[str, Any] | None) -> Lineage:
    if lineage is None:
        return Lineage()
    if isinstance(lineage, Lineage):
        return lineage
    return Lineage.from_dict(dict(lineage))


def _trusted_by(trust: bool, who: str | None) -> str | None:
    """Who trusts the content: given by the REST edge (``token:<name>``), else the local user
    (the Python API and the CLI run with the database's own credentials: an admin's)."""
    if not trust:
        return None
    if who:
        return who
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        import os

        return f"local:uid {os.getuid()}"


def _pyfunc_untrusted(what: str) -> UntrustedArtifact:
    return UntrustedArtifact(
        f"{what}: a pyfunc model is Python code run with request data; it needs trust=True / "
        "--trust (granted by an admin and recorded on the version)",
        field="trust",
    )
