"""Names of things users create (models, aliases, tokens): one rule everywhere.

``[a-z0-9][a-z0-9._-]{0,127}``: safe in a URL path, a file name and a metric label alike.
"""

from __future__ import annotations

import re

from modelplane.errors import InvalidName

__all__ = ["NAME_RE", "validate_name"]

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def validate_name(name: str, *, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid {field} {name!r}: use 1-128 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit",
            field=field,
        )
    return name
