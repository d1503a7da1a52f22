"""Names of things users create (models, aliases, tokens) and references to a model version:
one rule everywhere.

``[a-z0-9][a-z0-9._-]{0,127}``: safe in a URL path, a file name and a metric label alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelplane.errors import InvalidInput, InvalidName

__all__ = [
    "NAME_RE",
    "RESERVED_ALIASES",
    "Reference",
    "parse_reference",
    "validate_alias",
    "validate_name",
]

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
RESERVED_ALIASES = frozenset({"latest"})


def validate_name(name: str, *, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid {field} {name!r}: use 1-128 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit",
            field=field,
        )
    return name


def validate_alias(alias: str) -> str:
    validate_name(alias, field="alias")
    if alias in RESERVED_ALIASES or alias.isdigit():
        raise InvalidName(
            f"invalid alias {alias!r}: 'latest' and numbers are reserved for references",
            field="alias",
        )
    return alias


@dataclass(frozen=True)
class Reference:
    """``name`` (champion, else latest ready), ``name@alias``, ``name@latest`` or ``name/3``."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_reference(ref: str) -> Reference:
    """Parse ``name``, ``name@alias``, ``name/3`` or a ``models:/…`` URI of one of them."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("a model reference is required", field="model")
    text = ref.removeprefix("models:/").removeprefix("models:")
    if "@" in text:
        name, _, alias = text.partition("@")
        validate_name(name)
        if alias != "latest":
            validate_alias(alias)
        return Reference(name=name, alias=alias)
    if "/" in text:
        name, _, number = text.partition("/")
        validate_name(name)
        if not number.isdigit() or int(number) < 1:
            raise InvalidInput(
                f"invalid version {number!r} in reference {ref!r}: expected a positive integer",
                field="version",
            )
        return Reference(name=name, version=int(number))
    return Reference(name=validate_name(text))
