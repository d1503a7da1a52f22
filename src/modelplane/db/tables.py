"""The metadata schema: one SQLAlchemy ``MetaData`` for every capability's tables.

Alembic migrations in ``migrations/versions`` create and change these tables; this module is
the query-side description of them. Indexes follow the queries that must stay fast at tens of
thousands of versions (keyset pages by version, tag and metric filters) without an ANALYZE.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "aliases",
    "deployments",
    "events",
    "experiments",
    "feedback",
    "metadata",
    "model_tags",
    "models",
    "rollouts",
    "tokens",
    "traffic_latency",
    "traffic_stats",
    "version_metrics",
    "version_tags",
    "versions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)

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

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False, default=1),
    Column("aggregate_type", String(32), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    UniqueConstraint("aggregate_type", "aggregate_id", "sequence"),
)
Index("ix_events_type_id", events.c.type, events.c.id)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)


# -- delivery: experiments, canary rollouts, blue-green deployments, live counters ------------

experiments = Table(
    "experiments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("model", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("arms", JSON, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("mde", Float, nullable=False),
    Column("alpha", Float, nullable=False),
    Column("power", Float, nullable=False),
    Column("bandit", Boolean, nullable=False),
    Column("shadow_percent", Float, nullable=False),
    Column("event_seq", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("stopped_at", Timestamp, nullable=True),
)
Index("ix_experiments_status_model", experiments.c.status, experiments.c.model)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("baseline", Integer, nullable=False),
    Column("candidate", Integer, nullable=False),
    Column("steps", JSON, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_started_at", Timestamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("step_duration_s", Float, nullable=False),
    Column("min_requests", Integer, nullable=False),
    Column("max_error_rate", Float, nullable=False),
    Column("max_latency_ratio", Float, nullable=False),
    Column("alpha", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("event_seq", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)
Index("ix_rollouts_status_model", rollouts.c.status, rollouts.c.model)
Index("ix_rollouts_model_id", rollouts.c.model, rollouts.c.id)

deployments = Table(
    "deployments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("blue", Integer, nullable=True),
    Column("green", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("keep_until", Timestamp, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("event_seq", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)
Index("ix_deployments_model_id", deployments.c.model, deployments.c.id)

# Live counters of every serving replica, summed in the database (each replica adds its
# deltas every second), so a controller decides on all replicas' traffic. ``subject`` is
# ``experiment:<name>`` or ``rollout:<id>:<step>``; ``variant`` an arm's name.
traffic_stats = Table(
    "traffic_stats",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("variant", String(128), primary_key=True),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("latency_sum", Float, nullable=False, default=0.0),
    Column("latency_sumsq", Float, nullable=False, default=0.0),
    Column("outcome_n", BigInteger, nullable=False, default=0),
    Column("outcome_sum", Float, nullable=False, default=0.0),
    Column("outcome_sumsq", Float, nullable=False, default=0.0),
    Column("shadow_compared", BigInteger, nullable=False, default=0),
    Column("shadow_agree", BigInteger, nullable=False, default=0),
    Column("shadow_absdiff", Float, nullable=False, default=0.0),
    Column("shadow_diffs", BigInteger, nullable=False, default=0),
    Column("shadow_errors", BigInteger, nullable=False, default=0),
    Column("shadow_dropped", BigInteger, nullable=False, default=0),
    Column("updated_at", Timestamp, nullable=False),
)

# Latency histogram per (subject, variant): log-spaced buckets (see traffic.live), for p99.
traffic_latency = Table(
    "traffic_latency",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("variant", String(128), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Outcomes posted after the fact (POST /feedback), joined to predictions by request id.
# One outcome per request: a second one is refused unless it asks to overwrite, and then the
# row keeps the value it replaced, when, and how many outcomes the request has had (revision).
feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("label", Float, nullable=True),
    Column("reward", Float, nullable=True),
    Column("subject", String(200), nullable=True),
    Column("variant", String(128), nullable=True),
    Column("received_at", Timestamp, nullable=False),
    Column("revision", Integer, nullable=False, default=1, server_default=text("1")),
    Column("previous_label", Float, nullable=True),
    Column("previous_reward", Float, nullable=True),
    Column("overwritten_at", Timestamp, nullable=True),
)
