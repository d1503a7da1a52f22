"""The composition of the capabilities' declarations (``bootstrap.compose``): every command has
exactly one handler, and a command, repository or view declared twice fails at start-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from modelplane.bootstrap import CAPABILITIES, COMMAND_HANDLERS, bootstrap, compose
from modelplane.config import Settings
from modelplane.core.capability import Capability, Migrations, resolve
from modelplane.db.migrate import HEAD
from modelplane.registry import commands as rc
from modelplane.registry.handlers import register_model


def _other(cmd: Any, uow: Any) -> None:
    return None


def test_the_capabilities_compose_into_bootstraps_tables() -> None:
    composed = compose(CAPABILITIES)
    assert composed.command_handlers == COMMAND_HANDLERS
    assert list(composed.repositories) == [
        "models",
        "experiments",
        "rollouts",
        "deployments",
        "ledger",
        "tokens",
        "model_port",  # the ports between capabilities come last: model_port uses models
    ]
    assert list(composed.views) == ["registry", "traffic", "events", "tokens"]
    assert HEAD in composed.schema.heads  # the shared chain, and any capability's branches


def test_a_second_handler_for_a_command_fails_at_bootstrap(tmp_path: Path) -> None:
    rogue = Capability(name="rogue", command_handlers={rc.RegisterModel: _other})
    with pytest.raises(
        RuntimeError, match=f"RegisterModel has two handlers: {register_model.__qualname__} and "
    ):
        bootstrap(Settings(home=tmp_path), capabilities=(*CAPABILITIES, rogue))
    assert not (tmp_path / "modelplane.db").exists()  # refused before anything was built


def test_two_capabilities_declaring_one_repository_fail_at_composition() -> None:
    rogue = Capability(name="rogue", repositories={"models": lambda uow: object()})
    with pytest.raises(RuntimeError, match="repository 'models' is declared by registry and by "
                       "rogue"):  # fmt: skip
        compose((*CAPABILITIES, rogue))


def test_two_capabilities_declaring_one_view_fail_at_composition() -> None:
    rogue = Capability(name="rogue", views={"events": lambda engine: object()})
    with pytest.raises(RuntimeError, match="view 'events' is declared by events and by rogue"):
        compose((*CAPABILITIES, rogue))


def test_two_branches_with_one_head_fail_at_composition(tmp_path: Path) -> None:
    first = Capability(name="first", migrations=Migrations(tmp_path / "a", "x_0001"))
    second = dataclasses.replace(first, name="second")
    with pytest.raises(RuntimeError, match="migration head 'x_0001' is declared twice"):
        compose((*CAPABILITIES, first, second))


def test_a_table_off_the_shared_metadata_fails_at_composition() -> None:
    from sqlalchemy import Column, MetaData, String, Table

    stray = Table("stray", MetaData(), Column("name", String(8), primary_key=True))
    with pytest.raises(RuntimeError, match="table 'stray' of rogue is not on the shared"):
        compose((*CAPABILITIES, Capability(name="rogue", tables=(stray,))))


def test_every_declared_router_and_cli_group_resolves() -> None:
    from fastapi import APIRouter
    from typer import Typer

    for capability in CAPABILITIES:
        if capability.router is not None:
            assert isinstance(resolve(capability.router), APIRouter), capability.name
        for group in capability.cli.values():
            assert isinstance(resolve(group), Typer), group


def test_a_dotted_name_without_an_attribute_is_refused() -> None:
    with pytest.raises(ValueError, match="is not 'module:attribute'"):
        resolve("modelplane.api.routes_events")
