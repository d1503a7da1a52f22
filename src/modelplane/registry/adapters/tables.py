"""The registry's tables: models, their versions, tags, metrics and aliases.

Indexes follow the queries that must stay fast at tens of thousands of versions (keyset pages by
version, tag and metric filters) without an ANALYZE. They were created by the shared migrations
0001-0003 in ``modelplane/db/migrations`` (history: databases in the field are stamped with it).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from modelplane.db.tables import BigId, Timestamp, metadata

__all__ = [
    "TABLES",
    "aliases",
    "model_tags",
    "models",
    "version_metrics",
    "version_tags",
    "versions",
]

models = Table(
    "models",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("latest_version", Integer, nullable=False, default=0),
    # The sequence number of this model's last event (the outbox numbers events per aggregate).
    Column("event_seq", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", BigId, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)
Index("ix_model_tags_key_value", model_tags.c.key, model_tags.c.value)

versions = Table(
    "versions",
    metadata,
    Column("model_id", BigId, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("artifact_name", String(255), nullable=False),
    Column("signature", JSON, nullable=True),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("run_id", String(128), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # Who let this version run code outside the allowlist (docs/security.md), and when.
    Column("trusted_by", String(200), nullable=True),
    Column("trusted_at", Timestamp, nullable=True),
)
Index(
    "ix_versions_model_id_status_version",
    versions.c.model_id,
    versions.c.status,
    versions.c.version,
)
Index("ix_versions_digest", versions.c.digest)

version_tags = Table(
    "version_tags",
    metadata,
    Column("model_id", BigId, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)
Index(
    "ix_version_tags_model_id_key_value_version",
    version_tags.c.model_id,
    version_tags.c.key,
    version_tags.c.value,
    version_tags.c.version,
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("model_id", BigId, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
)
Index(
    "ix_version_metrics_model_id_key_value",
    version_metrics.c.model_id,
    version_metrics.c.key,
    version_metrics.c.value,
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", BigId, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
)

TABLES = (models, model_tags, versions, version_tags, version_metrics, aliases)
