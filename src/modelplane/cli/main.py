"""The ``modelplane`` command: global options, the command tree, and error translation.

Errors are translated here, once, for every command: a :class:`ModelplaneError` becomes one line
``error: …`` on stderr and its ``exit_code`` (2 for bad input, unknown names and conflicts, 1 for
internal and artifact problems); a usage error (unknown option, missing argument, bad value)
becomes one line and exit 2. A user never sees a traceback for a mistake of theirs.

    modelplane [--home PATH] [--json] [--version] COMMAND …

The capabilities' command groups (``models``, ``rollout``, ``tokens``…) are the ones their
declarations name (``bootstrap.CAPABILITIES``); they join the tree when first needed (see
``_Commands``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from modelplane.cli import artifacts, db, gate, serve, worker
from modelplane.cli.context import JsonOpt, State, state
from modelplane.cli.output import error_line, print_json, say
from modelplane.errors import ModelplaneError

__all__ = ["app", "run"]


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(error_line(message) + "\n")
    sys.stderr.flush()
    sys.exit(code)


def _usage_message(exc: typer.TyperException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message = f"{message} (see '{ctx.command_path} --help')"
    return message


def _environment_error(exc: Exception) -> str | None:
    """The one-line message for a failure of the environment (database, disk), else None."""
    if isinstance(exc, OSError):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        return f"the metadata database failed: {exc.orig}"
    return None


class _OneLineErrors(TyperGroup):
    """The root group: runs the command tree and turns every expected error into one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        try:
            result = super().main(
                args,
                prog_name or "modelplane",
                complete_var,
                False,  # errors come back here as exceptions, not as Click's printed output
                windows_expand_args,
                **extra,
            )
        except NoArgsIsHelpError as exc:  # `modelplane models`: the help is already printed
            if exc.format_message():
                say(exc.format_message())
            sys.exit(exc.exit_code)
        except UsageError as exc:
            _fail(_usage_message(exc), exc.exit_code)
        except typer.TyperException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
        except ModelplaneError as exc:
            _fail(exc.message, exc.exit_code)
        except Exception as exc:
            message = _environment_error(exc)
            if message is None:
                raise  # a bug: the traceback is what a report needs
            _fail(message, 1)
        sys.exit(result if isinstance(result, int) else 0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)


class _Commands(MutableMapping[str, Any]):
    """The root's commands. The capabilities' groups join the platform's own on first need (a
    name that is not one of those, or a listing): reading the declarations imports the
    capabilities, which ``modelplane --version`` or ``modelplane serve`` should not pay for."""

    def __init__(self, own: Mapping[str, Any]) -> None:
        self._commands = dict(own)
        self._mounted = False

    def _mount(self) -> None:
        """Add the groups the capabilities declare: listed after the platform's single
        commands (``serve``, ``gate``, ``version``) and before its groups (``db``…)."""
        if self._mounted:
            return
        self._mounted = True
        groups = dict(_capability_groups())
        own = self._commands
        if clash := groups.keys() & own.keys():
            raise RuntimeError(f"the command {min(clash)!r} is declared twice")
        singles = {n: c for n, c in own.items() if not isinstance(c, TyperGroup)}
        self._commands = {**singles, **groups, **own}

    def __getitem__(self, name: str) -> Any:
        if name not in self._commands:
            self._mount()
        return self._commands[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        self._mount()
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        self._mount()
        return iter(self._commands)

    def __len__(self) -> int:
        self._mount()
        return len(self._commands)


def _capability_groups() -> Iterator[tuple[str, Any]]:
    """Each capability's CLI groups, as ``app.add_typer(group, name=…)`` would build them."""
    from typer.main import get_group_from_info
    from typer.models import TyperInfo

    from modelplane.bootstrap import CAPABILITIES
    from modelplane.core.capability import resolve

    for capability in CAPABILITIES:
        for name, dotted in capability.cli.items():
            group = get_group_from_info(
                TyperInfo(resolve(dotted), name=name),
                pretty_exceptions_short=app.pretty_exceptions_short,
                suggest_commands=app.suggest_commands,
                rich_markup_mode=app.rich_markup_mode,
            )
            yield name, group


app = typer.Typer(
    name="modelplane",
    cls=_OneLineErrors,
    help="modelplane: a model registry, serving and delivery platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The platform's own commands; the capabilities' groups join them (see _Commands._mount).
app.add_typer(db.app, name="db")
app.add_typer(artifacts.app, name="artifacts")
app.command("serve")(serve.serve)
app.command("gate")(gate.gate)
app.command("worker")(worker.worker)


def _version_text() -> str:
    from modelplane import __version__

    return f"modelplane {__version__}"


def _print_version(value: bool) -> None:
    if value:
        say(_version_text())
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Folder of the embedded database and artifacts (overrides MODELPLANE_HOME).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """modelplane: register, version, alias and serve machine-learning models."""
    st = State(home=home, json=json_out)
    ctx.obj = st
    ctx.call_on_close(st.close)


@app.command("version")
def version_command(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print modelplane's version.

    Example: modelplane version
    """
    if state(ctx).wants_json(json_out):
        from modelplane import __version__

        print_json({"version": __version__})
        return
    say(_version_text())


def run(argv: Sequence[str] | None = None) -> None:
    """The console script's entry point: ``modelplane …``."""
    typer.main.get_command(app).main(args=argv, prog_name="modelplane")


if __name__ == "__main__":
    run()
