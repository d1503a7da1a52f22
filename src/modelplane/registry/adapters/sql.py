"""SQL implementation of the registry repository (SQLite and PostgreSQL alike).

Loads one model with its aliases and tags (never its versions), locks it for the transaction
(``FOR UPDATE`` on PostgreSQL; SQLite writers already hold the database lock from
``BEGIN IMMEDIATE``), and writes back only what changed.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from modelplane.core.clock import aware
from modelplane.core.uow import HasEvents
from modelplane.registry.adapters import tables as t
from modelplane.registry.model import Lineage, ModelVersion, RegisteredModel

__all__ = ["SqlModelRepository", "row_to_version"]


class _Tx(Protocol):
    conn: Connection
    dialect: str
    analyze_after_commit: bool

    def track(self, aggregate: HasEvents) -> None: ...


def row_to_version(name: str, row: Row[Any], aliases: tuple[str, ...] = ()) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        model=name,
        version=m["version"],
        flavor=m["flavor"],
        digest=m["digest"],
        size=m["size"],
        artifact_name=m["artifact_name"],
        created_at=aware(m["created_at"]),
        signature=m["signature"],
        params=m["params"],
        metrics=m["metrics"],
        tags=m["tags"],
        lineage=Lineage.from_dict(m["lineage"]),
        description=m["description"],
        status=m["status"],
        aliases=aliases,
        trusted_by=m["trusted_by"],
        trusted_at=aware(m["trusted_at"]) if m["trusted_at"] is not None else None,
    )


_MODEL_WITH_ALIASES = (
    select(t.models, t.aliases.c.alias, t.aliases.c.version.label("alias_version"))
    .select_from(t.models.outerjoin(t.aliases, t.aliases.c.model_id == t.models.c.id))
    .where(t.models.c.name == bindparam("name"))
)
_LOCK_MODEL = select(t.models.c.id).where(t.models.c.name == bindparam("name")).with_for_update()
_UPDATE_MODEL = (
    update(t.models)
    .where(t.models.c.id == bindparam("b_id"))
    .values(
        description=bindparam("description"),
        tags=bindparam("tags"),
        latest_version=bindparam("latest_version"),
        event_seq=bindparam("event_seq"),
        updated_at=bindparam("updated_at"),
    )
)
_INSERT_VERSION = insert(t.versions)


def _needs_statistics(version: int) -> bool:
    """Whether a model just grew enough for PostgreSQL's statistics to be refreshed.

    Autovacuum (which runs ANALYZE) may be off, and a planner without statistics turns a
    100-row keyset page of a 10,000-version model into a scan and sort of all of them (2-3 ms
    instead of 1). So modelplane refreshes them itself at 100 versions and every 1,000 after.
    """
    return version == 100 or version % 1000 == 0


class SqlModelRepository:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._loaded: dict[str, tuple[dict[str, int], dict[str, str]]] = {}
        self._version_tags: dict[tuple[str, int], dict[str, str]] = {}

    @property
    def _conn(self) -> Connection:
        return self._tx.conn

    def add(self, model: RegisteredModel) -> bool:
        values = {
            "name": model.name,
            "description": model.description,
            "tags": model.tags,
            "latest_version": model.latest_version,
            "event_seq": model.event_seq,
            "created_at": model.created_at,
            "updated_at": model.updated_at,
        }
        ins = pg_insert if self._tx.dialect == "postgresql" else sqlite_insert
        stmt = ins(t.models).values(**values).on_conflict_do_nothing(index_elements=["name"])
        result = self._conn.execute(stmt.returning(t.models.c.id))
        row = result.first()
        if row is None:
            return False
        model.id = row[0]
        if model.tags:
            self._conn.execute(
                insert(t.model_tags),
                [{"model_id": model.id, "key": k, "value": v} for k, v in model.tags.items()],
            )
        self._loaded[model.name] = ({}, dict(model.tags))
        self._tx.track(model)
        return True

    def get(self, name: str) -> RegisteredModel | None:
        if self._tx.dialect == "postgresql":
            # Lock the model row first, then read its aliases: under READ COMMITTED a joined
            # read would re-check only the locked row after waiting and keep stale aliases
            # (a concurrent SetAlias could then be missed by ArchiveVersion).
            locked = self._conn.execute(_LOCK_MODEL, {"name": name}).first()
            if locked is None:
                return None
        rows = self._conn.execute(_MODEL_WITH_ALIASES, {"name": name}).all()
        if not rows:
            return None
        m = rows[0]._mapping
        model = RegisteredModel(
            id=m["id"],
            name=m["name"],
            description=m["description"],
            tags=dict(m["tags"]),
            latest_version=m["latest_version"],
            event_seq=m["event_seq"],
            aliases={r.alias: r.alias_version for r in rows if r.alias is not None},
            created_at=aware(m["created_at"]),
            updated_at=aware(m["updated_at"]),
        )
        self._loaded[name] = (dict(model.aliases), dict(model.tags))
        self._tx.track(model)
        return model

    def save(self, model: RegisteredModel) -> None:
        old_aliases, old_tags = self._loaded.get(model.name, ({}, {}))
        self._conn.execute(
            _UPDATE_MODEL,
            {
                "b_id": model.id,
                "description": model.description,
                "tags": model.tags,
                "latest_version": model.latest_version,
                "event_seq": model.event_seq,
                "updated_at": model.updated_at,
            },
        )
        self._sync(
            t.aliases,
            {"model_id": model.id},
            "alias",
            "version",
            old_aliases,
            model.aliases,
        )
        self._sync(t.model_tags, {"model_id": model.id}, "key", "value", old_tags, model.tags)
        self._loaded[model.name] = (dict(model.aliases), dict(model.tags))

    def add_version(self, model: RegisteredModel, version: ModelVersion) -> None:
        self._conn.execute(
            _INSERT_VERSION,
            {
                "model_id": model.id,
                "version": version.version,
                "status": version.status,
                "flavor": version.flavor,
                "digest": version.digest,
                "size": version.size,
                "artifact_name": version.artifact_name,
                "signature": version.signature,
                "params": version.params,
                "metrics": version.metrics,
                "tags": version.tags,
                "lineage": version.lineage.to_dict(),
                "description": version.description,
                "run_id": version.lineage.run_id,
                "created_at": version.created_at,
                "trusted_by": version.trusted_by,
                "trusted_at": version.trusted_at,
            },
        )
        key = {"model_id": model.id, "version": version.version}
        if version.tags:
            self._conn.execute(
                insert(t.version_tags),
                [key | {"key": k, "value": v} for k, v in version.tags.items()],
            )
        if version.metrics:
            self._conn.execute(
                insert(t.version_metrics),
                [key | {"key": k, "value": v} for k, v in version.metrics.items()],
            )
        self._version_tags[(model.name, version.version)] = dict(version.tags)
        if self._tx.dialect == "postgresql" and _needs_statistics(version.version):
            self._tx.analyze_after_commit = True

    def get_version(self, model: RegisteredModel, number: int) -> ModelVersion | None:
        row = self._conn.execute(
            select(t.versions).where(
                and_(t.versions.c.model_id == model.id, t.versions.c.version == number)
            )
        ).first()
        if row is None:
            return None
        version = row_to_version(model.name, row)
        self._version_tags[(model.name, number)] = dict(version.tags)
        return version

    def save_version(self, model: RegisteredModel, version: ModelVersion) -> None:
        key = {"model_id": model.id, "version": version.version}
        self._conn.execute(
            update(t.versions)
            .where(and_(t.versions.c.model_id == model.id, t.versions.c.version == version.version))
            .values(status=version.status, tags=version.tags)
        )
        old = self._version_tags.get((model.name, version.version), {})
        self._sync(t.version_tags, key, "key", "value", old, version.tags)
        self._version_tags[(model.name, version.version)] = dict(version.tags)

    def _sync(
        self,
        table: Any,
        key: dict[str, Any],
        key_col: str,
        value_col: str,
        old: dict[str, Any],
        new: dict[str, Any],
    ) -> None:
        """Bring the rows of ``table`` under ``key`` from ``old`` to ``new``."""
        where = [table.c[k] == v for k, v in key.items()]
        gone = [k for k in old if k not in new or old[k] != new[k]]
        if gone:
            self._conn.execute(delete(table).where(*where, table.c[key_col].in_(gone)))
        added = [k for k in new if k not in old or old[k] != new[k]]
        if added:
            self._conn.execute(
                insert(table), [key | {key_col: k, value_col: new[k]} for k in added]
            )
