"""Delivery's tables: experiments, canary rollouts, blue-green deployments, live counters and
the outcomes posted after the fact. Created by the shared migrations 0002 and 0004 in
``modelplane/db/migrations`` (history: databases in the field are stamped with it).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from modelplane.db.tables import BigId, Timestamp, metadata

__all__ = [
    "TABLES",
    "deployments",
    "experiments",
    "feedback",
    "rollouts",
    "traffic_latency",
    "traffic_stats",
]

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

TABLES = (experiments, rollouts, deployments, traffic_stats, traffic_latency, feedback)
