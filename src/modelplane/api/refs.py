"""Naming a model and its versions in a delivery request (experiments, rollouts, deploys).

A model must be registered (404 before any reference is resolved); a version is a number of it
(checked by the command) or a reference that names a version of that very model.
"""

from __future__ import annotations

from modelplane.api.schemas import MAX_VERSION
from modelplane.bootstrap import Platform
from modelplane.core.names import validate_name
from modelplane.errors import InvalidInput, ModelNotFound

__all__ = ["existing_model", "version_of"]


def existing_model(platform: Platform, name: str, *, field: str = "name") -> str:
    """A valid name of a registered model (404 otherwise, before any reference is resolved)."""
    try:
        platform.registry.get_model(validate_name(name, field=field))
    except ModelNotFound as exc:
        raise ModelNotFound(exc.message, field=field) from None
    return name


def version_of(platform: Platform, model: str, ref: int | str, *, field: str) -> int:
    """A version number of ``model`` from 3, "3", "fraud/3", "fraud@challenger", "models:/…".

    A number is checked by the command (404 when the model has no such version); a reference
    must name a version of ``model`` itself.
    """
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 1 <= number <= MAX_VERSION:
            raise InvalidInput(
                f"{field}: version must be between 1 and {MAX_VERSION}, got {text}", field=field
            )
        return number
    try:
        found = platform.registry.resolve(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None
    if found.model != model:
        raise InvalidInput(
            f"{field}: {ref!r} is a version of {found.model!r}, not of {model!r}", field=field
        )
    return found.version
