"""The registry's domain: registered models, immutable versions, aliases, references.

Plain dataclasses and rules, no I/O. :class:`RegisteredModel` is the aggregate: every change to
a model, its aliases or its versions' status goes through one of its methods, which checks the
rules and appends the event describing the change to ``events``. Versions are loaded one at a
time (never all of them: a model may have tens of thousands).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelplane.core.aggregate import SequencedAggregate
from modelplane.core.names import (
    Reference,
    parse_reference,
    validate_alias,
    validate_name,
)
from modelplane.errors import Conflict, InvalidInput, VersionInUse
from modelplane.registry.events import (
    AliasRemoved,
    AliasSet,
    GateEvaluated,
    ModelRegistered,
    ModelVersionRegistered,
    TagDeleted,
    TagSet,
    VersionArchived,
    VersionRestored,
)

__all__ = [
    "GATE_TAG",
    "DataSource",
    "Lineage",
    "ModelVersion",
    "Reference",
    "RegisteredModel",
    "Status",
    "check_user_tags",
    "parse_reference",
    "validate_alias",
    "validate_name",
    "validate_tags",
    "validate_text",
]

TAG_KEY_RE = re.compile(r"[A-Za-z0-9_.:/-][A-Za-z0-9_.:/ -]{0,249}")
MAX_TAG_VALUE = 5000

Status = Literal["ready", "archived"]


def validate_text(value: str | None, *, field: str, limit: int = 10_000) -> None:
    """Free text (descriptions, lineage strings): a string, bounded, with no NUL character."""
    if value is None:
        return
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(
            f"{field} must be a string of at most {limit} characters without NUL", field=field
        )


RESERVED_TAG_PREFIX = "modelplane."
#: Written on a version by its release gates: "passed", "failed" or "forced".
GATE_TAG = "modelplane.gate"


def check_user_tags(tags: dict[str, str], *, field: str = "tags") -> None:
    """Tags under ``modelplane.`` are written by modelplane itself (``modelplane.gate``)."""
    for key in tags:
        if isinstance(key, str) and key.startswith(RESERVED_TAG_PREFIX):
            raise InvalidInput(
                f"tag {key!r}: keys starting with {RESERVED_TAG_PREFIX!r} are reserved",
                field=f"{field}.{key}",
            )


def validate_tags(tags: dict[str, str], *, field: str = "tags") -> dict[str, str]:
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid tag key {key!r}", field=f"{field}.{key}")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE or "\x00" in value:
            raise InvalidInput(
                f"tag {key!r} must be a string of at most {MAX_TAG_VALUE} characters, no NUL",
                field=f"{field}.{key}",
            )
        if key.startswith(SERVING_TAG_PREFIX):
            _check_serving_tag(key, value, field=f"{field}.{key}")
    return tags


SERVING_TAG_PREFIX = "serving."
_BOOLEAN = ("true", "false", "1", "0", "yes", "no", "on", "off")
#: The ``serving.*`` tags a server reads (serving/options.py ``ModelOptions``): kind and range.
SERVING_TAGS: dict[str, tuple[str, float, float]] = {
    "max_batch_size": ("int", 1, 65_536),
    "max_wait_ms": ("float", 0, 60_000),
    "cache": ("bool", 0, 0),
    "timeout_ms": ("float", 0.001, 3_600_000),
    "max_concurrency": ("int", 1, 100_000),
    "max_queue": ("int", 0, 10_000_000),
    "fallback": ("reference", 0, 0),
}


def _check_serving_tag(key: str, value: str, *, field: str) -> None:
    """A ``serving.*`` tag is refused when set with a name or value no server would take,
    instead of being ignored by every server that reads it."""
    name = key[len(SERVING_TAG_PREFIX) :]
    spec = SERVING_TAGS.get(name)
    if spec is None:
        known = ", ".join(SERVING_TAG_PREFIX + k for k in SERVING_TAGS)
        raise InvalidInput(f"unknown serving tag {key!r}; known: {known}", field=field)
    kind, low, high = spec
    text = value.strip()
    if kind == "bool":
        if text.lower() not in _BOOLEAN:
            raise InvalidInput(
                f"tag {key}={value!r}: expected one of {', '.join(_BOOLEAN)}", field=field
            )
        return
    if kind == "reference":
        try:
            parse_reference(text)
        except InvalidInput:
            raise InvalidInput(
                f"tag {key}={value!r}: expected a model reference such as fraud/3 or fraud@stable",
                field=field,
            ) from None
        return
    try:
        number = int(text) if kind == "int" else float(text)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        what = "an integer" if kind == "int" else "a number"
        raise InvalidInput(
            f"tag {key}={value!r}: expected {what} from {low:g} to {high:g}", field=field
        )


@dataclass(frozen=True)
class DataSource:
    """A data set a version was trained on: where it is and the hash of what was read."""

    uri: str
    hash: str | None = None


@dataclass(frozen=True)
class Lineage:
    """Where a version came from."""

    data_sources: tuple[DataSource, ...] = ()
    parent_version: int | None = None
    run_id: str | None = None
    code_commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"data_sources": [asdict(d) for d in self.data_sources]}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Lineage:
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise InvalidInput("lineage must be an object", field="lineage")
        sources = []
        for i, src in enumerate(data.get("data_sources") or ()):
            if isinstance(src, str):
                src = {"uri": src}
            if not isinstance(src, dict) or not isinstance(src.get("uri"), str):
                raise InvalidInput(
                    "each data source needs a 'uri'", field=f"lineage.data_sources[{i}]"
                )
            validate_text(src["uri"], field=f"lineage.data_sources[{i}].uri", limit=2048)
            validate_text(src.get("hash"), field=f"lineage.data_sources[{i}].hash", limit=256)
            sources.append(DataSource(uri=src["uri"], hash=src.get("hash")))
        parent = data.get("parent_version")
        if parent is not None and (not isinstance(parent, int) or parent < 1):
            raise InvalidInput("parent_version must be a positive integer", field="lineage")
        for key in ("run_id", "code_commit"):
            validate_text(data.get(key), field=f"lineage.{key}", limit=128)
        unknown = set(data) - {"data_sources", "parent_version", "run_id", "code_commit"}
        if unknown:
            raise InvalidInput(f"unknown lineage field(s): {sorted(unknown)}", field="lineage")
        return cls(
            data_sources=tuple(sources),
            parent_version=parent,
            run_id=data.get("run_id"),
            code_commit=data.get("code_commit"),
        )


@dataclass
class ModelVersion:
    """One immutable version. Only ``status`` and ``tags`` change after creation."""

    model: str
    version: int
    flavor: str
    digest: str
    size: int
    artifact_name: str
    created_at: datetime
    signature: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    description: str = ""
    status: Status = "ready"
    aliases: tuple[str, ...] = ()
    trusted_by: str | None = None
    trusted_at: datetime | None = None

    @property
    def trusted(self) -> bool:
        """Whether an admin let this version hold code outside the allowlist (a pickle, a
        Python function, a callable scikit-learn does not ship): loaders honour it."""
        return self.trusted_by is not None

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.model,
            "version": self.version,
            "uri": self.uri,
            "status": self.status,
            "flavor": self.flavor,
            "digest": self.digest,
            "size": self.size,
            "artifact_name": self.artifact_name,
            "signature": self.signature,
            "params": self.params,
            "metrics": self.metrics,
            "tags": self.tags,
            "lineage": self.lineage.to_dict(),
            "description": self.description,
            "aliases": list(self.aliases),
            "created_at": self.created_at.isoformat(),
            "trusted_by": self.trusted_by,
            "trusted_at": self.trusted_at.isoformat() if self.trusted_at else None,
        }


@dataclass
class RegisteredModel(SequencedAggregate):
    """The aggregate: a model, its aliases, its version counter and its tags."""

    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    latest_version: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def create(
        cls, name: str, *, description: str, tags: dict[str, str], now: datetime
    ) -> RegisteredModel:
        validate_name(name)
        validate_tags(tags)
        validate_text(description, field="description")
        model = cls(name=name, created_at=now, updated_at=now, description=description, tags=tags)
        model._record(ModelRegistered(model=name, description=description, tags=dict(tags)))
        return model

    def add_version(
        self,
        *,
        flavor: str,
        digest: str,
        size: int,
        artifact_name: str,
        signature: dict[str, Any] | None,
        params: dict[str, str],
        metrics: dict[str, float],
        tags: dict[str, str],
        lineage: Lineage,
        description: str,
        now: datetime,
        trusted_by: str | None = None,
    ) -> ModelVersion:
        validate_tags(tags)
        if trusted_by is not None:
            validate_text(trusted_by, field="trusted_by", limit=200)
        validate_text(description, field="description")
        for key, param in params.items():
            validate_text(str(param), field=f"params.{key}", limit=5000)
        for key, value in metrics.items():
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise InvalidInput(
                    f"metric {key!r} must be a finite number", field=f"metrics.{key}"
                )
        parent = lineage.parent_version
        if parent is not None and parent > self.latest_version:
            raise InvalidInput(
                f"lineage.parent_version {parent} does not exist for model {self.name!r}",
                field="lineage.parent_version",
            )
        self.latest_version += 1
        self.updated_at = now
        version = ModelVersion(
            model=self.name,
            version=self.latest_version,
            flavor=flavor,
            digest=digest,
            size=size,
            artifact_name=artifact_name,
            created_at=now,
            signature=signature,
            params={k: str(v) for k, v in params.items()},
            metrics={k: float(v) for k, v in metrics.items()},
            tags=dict(tags),
            lineage=lineage,
            description=description,
            trusted_by=trusted_by,
            trusted_at=now if trusted_by is not None else None,
        )
        self._record(
            ModelVersionRegistered(
                model=self.name,
                version=version.version,
                flavor=flavor,
                digest=digest,
                size=size,
                run_id=lineage.run_id,
                parent_version=parent,
                trusted_by=trusted_by,
            )
        )
        return version

    def set_alias(self, alias: str, version: ModelVersion, *, now: datetime) -> None:
        validate_alias(alias)
        if version.status != "ready":
            raise Conflict(
                f"{self.name}/{version.version} is {version.status}; only a ready version "
                "can carry an alias",
                field="version",
            )
        previous = self.aliases.get(alias)
        if previous == version.version:
            return
        self.aliases[alias] = version.version
        self.updated_at = now
        self._record(
            AliasSet(
                model=self.name, alias=alias, version=version.version, previous_version=previous
            )
        )

    def remove_alias(self, alias: str, *, now: datetime) -> int:
        from modelplane.errors import AliasNotFound

        if alias not in self.aliases:
            raise AliasNotFound(f"model {self.name!r} has no alias {alias!r}", field="alias")
        version = self.aliases.pop(alias)
        self.updated_at = now
        self._record(AliasRemoved(model=self.name, alias=alias, version=version))
        return version

    def archive(self, version: ModelVersion, *, now: datetime) -> None:
        holding = sorted(a for a, v in self.aliases.items() if v == version.version)
        if holding:
            raise VersionInUse(
                f"{self.name}/{version.version} cannot be archived: alias(es) "
                f"{', '.join(holding)} point at it; move or remove them first",
                field="version",
            )
        if version.status == "archived":
            return
        version.status = "archived"
        self.updated_at = now
        self._record(VersionArchived(model=self.name, version=version.version))

    def restore(self, version: ModelVersion, *, now: datetime) -> None:
        if version.status == "ready":
            raise Conflict(
                f"{self.name}/{version.version} is ready already: only an archived version can "
                "be restored",
                field="version",
            )
        version.status = "ready"
        self.updated_at = now
        self._record(VersionRestored(model=self.name, version=version.version))

    def set_tag(
        self, key: str, value: str, *, version: ModelVersion | None = None, now: datetime
    ) -> None:
        validate_tags({key: value}, field="tag")
        check_user_tags({key: value}, field="tag")
        target = version.tags if version is not None else self.tags
        if target.get(key) == value:
            return
        target[key] = value
        self.updated_at = now
        number = version.version if version is not None else None
        self._record(TagSet(model=self.name, key=key, value=value, version=number))

    def delete_tag(self, key: str, *, version: ModelVersion | None = None, now: datetime) -> None:
        check_user_tags({key: ""}, field="tag")
        target = version.tags if version is not None else self.tags
        if key not in target:
            where = f"{self.name}/{version.version}" if version is not None else self.name
            raise InvalidInput(f"{where} has no tag {key!r}", field="key")
        del target[key]
        self.updated_at = now
        number = version.version if version is not None else None
        self._record(TagDeleted(model=self.name, key=key, version=number))

    def record_gate(
        self,
        version: ModelVersion,
        *,
        passed: bool,
        checks: dict[str, bool],
        forced: bool,
        now: datetime,
    ) -> None:
        """Keep a gate run on the version: tag ``modelplane.gate`` = passed | failed | forced."""
        status = "passed" if passed else ("forced" if forced else "failed")
        version.tags[GATE_TAG] = status
        self.updated_at = now
        self._record(
            GateEvaluated(
                model=self.name,
                version=version.version,
                passed=passed,
                forced=forced and not passed,
                checks=dict(checks),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "latest_version": self.latest_version,
            "aliases": self.aliases,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
