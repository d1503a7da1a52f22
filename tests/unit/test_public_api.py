"""The public surface of ``modelplane``: pinned, lazily imported, and complete."""

from __future__ import annotations

import subprocess
import sys

import modelplane
from modelplane import errors
from modelplane.bootstrap import COMMAND_HANDLERS
from modelplane.core.messages import Command
from modelplane.registry import commands as registry_commands


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


def test_every_command_has_exactly_one_handler() -> None:
    commands = [
        obj
        for obj in vars(registry_commands).values()
        if isinstance(obj, type) and issubclass(obj, Command) and obj is not Command
    ]
    assert commands, "no commands found"
    for command in commands:
        assert command in COMMAND_HANDLERS, f"{command.__name__} has no handler"


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
