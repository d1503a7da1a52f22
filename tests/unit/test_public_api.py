"""The public surface of ``modelplane``: pinned, lazily imported, and complete."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import modelplane
from modelplane import errors
from modelplane.bootstrap import CAPABILITIES, COMMAND_HANDLERS, compose_handlers
from modelplane.core.messages import Command


def test_all_is_pinned() -> None:
    assert modelplane.__all__ == [
        "Client",
        "Lineage",
        "LoadedModel",
        "ModelplaneError",
        "Settings",
        "Signature",
        "TensorSpec",
        "__version__",
        "infer_signature",
        "load_model",
        "log_model",
    ]


def test_every_public_name_resolves() -> None:
    for name in modelplane.__all__:
        assert getattr(modelplane, name) is not None


def test_import_pulls_in_no_engine_database_or_web_framework() -> None:
    code = (
        "import sys, modelplane; "
        "heavy = {'torch', 'sklearn', 'xgboost', 'lightgbm', 'onnxruntime', 'pandas', "
        "'sqlalchemy', 'fastapi', 'typer', 'redis', 'psycopg'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _commands(module_name: str) -> list[type[Command]]:
    """Every command class a capability's ``commands`` module defines."""
    module = importlib.import_module(module_name)
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Command)
        and obj is not Command
        and obj.__module__ == module_name
    ]


CAPABILITY_COMMANDS = {
    f"modelplane.{path.parent.name}.commands"
    for path in Path(modelplane.__file__).parent.glob("*/commands.py")
}


def test_every_command_of_every_capability_has_exactly_one_handler() -> None:
    """Through the composed table: each declared capability's commands are handled by that
    capability's own handler, and no ``<capability>/commands.py`` belongs to none."""
    declared = {f"modelplane.{c.name}.commands" for c in CAPABILITIES}
    assert declared >= CAPABILITY_COMMANDS  # every capability with commands is declared
    assert len(CAPABILITY_COMMANDS) >= 3
    seen: list[type[Command]] = []
    for capability in CAPABILITIES:
        module_name = f"modelplane.{capability.name}.commands"
        commands = _commands(module_name) if module_name in CAPABILITY_COMMANDS else []
        assert set(capability.command_handlers) == set(commands), capability.name
        for command in commands:
            assert command in COMMAND_HANDLERS, f"{command.__name__} has no handler"
            assert COMMAND_HANDLERS[command] is capability.command_handlers[command]
        seen += commands
    assert len(seen) == len(set(seen))
    assert set(COMMAND_HANDLERS) == set(seen)  # and nothing handled is not a command


def test_a_second_handler_for_a_command_fails_at_composition() -> None:
    def other(cmd: Any, uow: Any) -> None:
        return None

    command = next(iter(COMMAND_HANDLERS))
    with pytest.raises(RuntimeError, match=f"{command.__name__} has two handlers"):
        compose_handlers(COMMAND_HANDLERS, {command: other})
    assert compose_handlers(COMMAND_HANDLERS) == COMMAND_HANDLERS


def test_every_error_knows_its_status_exit_code_and_code() -> None:
    seen_codes = set()
    for obj in vars(errors).values():
        if isinstance(obj, type) and issubclass(obj, errors.ModelplaneError):
            assert 400 <= obj.status < 600
            assert obj.exit_code in (1, 2)
            assert obj.code not in seen_codes, f"duplicate code {obj.code}"
            seen_codes.add(obj.code)
            if obj.status < 500:
                assert obj.exit_code == 2, f"{obj.__name__}: user errors exit 2"


def test_error_serialises_to_the_documented_shape() -> None:
    err = errors.ModelNotFound("model 'x' does not exist", field="name")
    assert err.to_dict() == {
        "code": "model_not_found",
        "message": "model 'x' does not exist",
        "field": "name",
    }
