"""The registry's read side: queries that never write.

Every list is keyset-paginated (``WHERE version < :last ORDER BY version DESC LIMIT n``) on an
index, so the first page and every later page cost the same at 10 versions or 100,000. Resolving
``name@alias`` is one indexed join; it never loads a model's other versions.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from modelplane.core.clock import aware
from modelplane.core.pagination import (
    Page,
    check_limit,
    cursor_int,
    decode_cursor,
    encode_cursor,
)
from modelplane.errors import (
    AliasNotFound,
    InvalidInput,
    MalformedRequest,
    ModelNotFound,
    VersionNotFound,
)
from modelplane.registry.adapters import tables as t
from modelplane.registry.adapters.sql import row_to_version
from modelplane.registry.model import (
    ModelVersion,
    Reference,
    RegisteredModel,
    parse_reference,
    validate_name,
)

__all__ = ["MetricFilter", "RegistryViews"]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_METRIC_RE = re.compile(r"\s*([A-Za-z0-9_.:/-]+)\s*(>=|<=|>|<|=)\s*(\S+)\s*")


@dataclass(frozen=True)
class MetricFilter:
    """``auc>=0.9``: keep versions whose metric ``key`` compares true to ``value``."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricFilter:
        match = _METRIC_RE.fullmatch(text)
        if not match:
            raise InvalidInput(
                f"invalid metric filter {text!r}: expected NAME OP NUMBER, e.g. auc>=0.9",
                field="metric",
            )
        key, op, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(
                f"metric filter {text!r}: {raw!r} is not a number", field="metric"
            ) from None
        return cls(key=key, op=op, value=value)


_MODEL_WITH_ALIASES = (
    select(t.models, t.aliases.c.alias, t.aliases.c.version.label("alias_version"))
    .select_from(t.models.outerjoin(t.aliases, t.aliases.c.model_id == t.models.c.id))
    .where(t.models.c.name == bindparam("name"))
)


class RegistryViews:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- models ----------------------------------------------------------------------------
    def get_model(self, name: str) -> RegisteredModel:
        validate_name(name)
        with self._engine.connect() as conn:
            row, aliases = self._model_with_aliases(conn, name)
        return self._to_model(row, aliases)

    def list_models(
        self,
        *,
        name_prefix: str | None = None,
        tags: dict[str, str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[RegisteredModel]:
        check_limit(limit)
        m = t.models
        stmt = select(m)
        if name_prefix:
            stmt = stmt.where(m.c.name >= name_prefix, m.c.name < name_prefix + "\U0010ffff")
        for key, value in (tags or {}).items():
            mt = t.model_tags.alias()
            stmt = stmt.where(
                select(mt.c.model_id)
                .where(mt.c.model_id == m.c.id, mt.c.key == key, mt.c.value == value)
                .exists()
            )
        after = decode_cursor(cursor, "name")
        if after is not None:
            if not isinstance(after["name"], str):
                raise MalformedRequest("cursor is not one this server issued", field="cursor")
            stmt = stmt.where(m.c.name > after["name"])
        stmt = stmt.order_by(m.c.name).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(stmt)]
            ids = [r["id"] for r in rows[:limit]]
            alias_rows = (
                conn.execute(
                    select(t.aliases.c.model_id, t.aliases.c.alias, t.aliases.c.version).where(
                        t.aliases.c.model_id.in_(ids)
                    )
                ).all()
                if ids
                else []
            )
        by_model: dict[int, dict[str, int]] = {}
        for model_id, alias, version in alias_rows:
            by_model.setdefault(model_id, {})[alias] = version
        items = [self._to_model(r, by_model.get(r["id"], {})) for r in rows[:limit]]
        next_cursor = encode_cursor({"name": items[-1].name}) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    # -- versions --------------------------------------------------------------------------
    def get_version(self, name: str, number: int) -> ModelVersion:
        return self.resolve(Reference(name=validate_name(name), version=number))

    def resolve(self, ref: str | Reference) -> ModelVersion:
        """The version a reference names: ``name/3``, ``name@alias``, ``name@latest``, ``name``.

        A bare name means its ``champion`` alias where set, else its latest ready version.
        """
        reference = parse_reference(ref) if isinstance(ref, str) else ref
        v = t.versions
        with self._engine.connect() as conn:
            row, aliases = self._model_with_aliases(conn, reference.name)
            model_id = row["id"]
            if reference.version is not None:
                number: int | None = reference.version
            elif reference.alias is not None and reference.alias != "latest":
                number = aliases.get(reference.alias)
                if number is None:
                    raise AliasNotFound(
                        f"model {reference.name!r} has no alias {reference.alias!r}",
                        field="alias",
                    )
            elif reference.alias is None and "champion" in aliases:
                number = aliases["champion"]
            else:
                number = conn.execute(
                    select(v.c.version)
                    .where(v.c.model_id == model_id, v.c.status == "ready")
                    .order_by(v.c.version.desc())
                    .limit(1)
                ).scalar()
                if number is None:
                    raise VersionNotFound(
                        f"model {reference.name!r} has no ready version", field="version"
                    )
            found = conn.execute(
                select(v).where(and_(v.c.model_id == model_id, v.c.version == number))
            ).first()
        if found is None:
            raise VersionNotFound(
                f"model {reference.name!r} has no version {number}", field="version"
            )
        held = tuple(sorted(a for a, n in aliases.items() if n == number))
        return row_to_version(reference.name, found, held)

    def list_versions(
        self,
        name: str,
        *,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        metrics: list[MetricFilter] | None = None,
        cursor: str | None = None,
        limit: int = 100,
        order: str = "desc",
    ) -> Page[ModelVersion]:
        """One page of a model's versions, newest first (``order="asc"`` for oldest first)."""
        check_limit(limit)
        if status is not None and status not in ("ready", "archived"):
            raise InvalidInput("status must be 'ready' or 'archived'", field="status")
        if order not in ("asc", "desc"):
            raise InvalidInput("order must be 'asc' or 'desc'", field="order")
        after = decode_cursor(cursor, "v")
        v = t.versions
        with self._engine.connect() as conn:
            row, aliases = self._model_with_aliases(conn, validate_name(name))
            model_id = row["id"]
            tag_items = list((tags or {}).items())
            # Drive the scan from the first tag's index when filtering by tag: it is ordered
            # by version, so the page is an index range scan however rare the tag.
            if tag_items:
                first = t.version_tags.alias("vt0")
                key_col: ColumnElement[Any] = first.c.version
                stmt = select(v).select_from(
                    first.join(
                        v, and_(v.c.model_id == first.c.model_id, v.c.version == first.c.version)
                    )
                )
                conds: list[ColumnElement[bool]] = [
                    first.c.model_id == model_id,
                    first.c.key == tag_items[0][0],
                    first.c.value == tag_items[0][1],
                ]
            else:
                key_col = v.c.version
                stmt = select(v)
                conds = [v.c.model_id == model_id]
            if status is not None:
                conds.append(v.c.status == status)
            for key, value in tag_items[1:]:
                vt = t.version_tags.alias()
                conds.append(
                    select(vt.c.version)
                    .where(
                        vt.c.model_id == v.c.model_id,
                        vt.c.version == v.c.version,
                        vt.c.key == key,
                        vt.c.value == value,
                    )
                    .exists()
                )
            for mf in metrics or []:
                vm = t.version_metrics.alias()
                conds.append(
                    select(vm.c.version)
                    .where(
                        vm.c.model_id == v.c.model_id,
                        vm.c.version == v.c.version,
                        vm.c.key == mf.key,
                        _OPS[mf.op](vm.c.value, mf.value),
                    )
                    .exists()
                )
            if after is not None:
                last = cursor_int(after, "v")
                conds.append(key_col < last if order == "desc" else key_col > last)
            ordering = key_col.desc() if order == "desc" else key_col.asc()
            stmt = stmt.where(*conds).order_by(ordering).limit(limit + 1)
            rows = conn.execute(stmt).all()
        held: dict[int, list[str]] = {}
        for alias, number in sorted(aliases.items()):
            held.setdefault(number, []).append(alias)
        items = [
            row_to_version(name, r, tuple(held.get(r._mapping["version"], ())))
            for r in rows[:limit]
        ]
        next_cursor = encode_cursor({"v": items[-1].version}) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    def referenced_digests(self) -> set[str]:
        """Every artifact digest a version points at (archived versions included)."""
        with self._engine.connect() as conn:
            return {d for (d,) in conn.execute(select(t.versions.c.digest).distinct())}

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _model_with_aliases(conn: Connection, name: str) -> tuple[Any, dict[str, int]]:
        """The model's row and its aliases in one round trip (a LEFT JOIN on ``aliases``)."""
        rows = conn.execute(_MODEL_WITH_ALIASES, {"name": name}).all()
        if not rows:
            raise ModelNotFound(f"model {name!r} does not exist", field="name")
        aliases = {r.alias: r.alias_version for r in rows if r.alias is not None}
        return rows[0]._mapping, aliases

    @staticmethod
    def _to_model(row: Any, aliases: dict[str, int]) -> RegisteredModel:
        return RegisteredModel(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            tags=dict(row["tags"]),
            latest_version=row["latest_version"],
            aliases=dict(sorted(aliases.items())),
            created_at=aware(row["created_at"]),
            updated_at=aware(row["updated_at"]),
        )
