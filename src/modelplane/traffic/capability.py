"""Delivery (experiments, rollouts, deploys; live counters and feedback) as the composition root
plugs it in: its handlers, repositories, tables, views, REST router and CLI groups, in one
declaration.

Its handlers also need ``uow.model_port`` (the registry's aliases and versions): the composition
root provides it, being the one place that may import both capabilities.
"""

from __future__ import annotations

from modelplane.core.capability import Capability
from modelplane.traffic.adapters.sql import (
    SqlDeploymentRepository,
    SqlExperimentRepository,
    SqlRolloutRepository,
    SqlTrafficLedger,
)
from modelplane.traffic.adapters.tables import TABLES
from modelplane.traffic.handlers import COMMAND_HANDLERS
from modelplane.traffic.views import TrafficViews

__all__ = ["CAPABILITY"]

CAPABILITY = Capability(
    name="traffic",
    command_handlers=COMMAND_HANDLERS,
    repositories={
        "experiments": SqlExperimentRepository,
        "rollouts": SqlRolloutRepository,
        "deployments": SqlDeploymentRepository,
        "ledger": SqlTrafficLedger,
    },
    tables=TABLES,
    views={"traffic": TrafficViews},
    router="modelplane.api.routes_delivery:router",
    cli={
        "experiments": "modelplane.cli.experiments:app",
        "rollout": "modelplane.cli.rollout:app",
        "deploy": "modelplane.cli.deploy:app",
    },
)
