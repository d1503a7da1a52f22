"""Every table of the composed schema under one name, for tests that count rows (``t.events``,
``t.versions``): the outbox table is the database layer's, the others their capability's."""

from __future__ import annotations

from modelplane.auth.tables import tokens
from modelplane.db.tables import events, metadata
from modelplane.registry.adapters.tables import (
    aliases,
    model_tags,
    models,
    version_metrics,
    version_tags,
    versions,
)
from modelplane.traffic.adapters.tables import (
    deployments,
    experiments,
    feedback,
    rollouts,
    traffic_latency,
    traffic_stats,
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
