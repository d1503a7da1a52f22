"""``modelplane deploy MODEL --version N``: a blue-green switch of the champion, gates first.

The version's release gates run first, exactly as ``modelplane gate`` runs them (the model's
saved gate settings) and their result is recorded; a failed gate stops the deploy (exit 1)
unless ``--force``. Then the ``champion`` alias moves to the new version (green) at once, and
serving replicas keep the previous one (blue) loaded for ``--keep-blue``, so
``modelplane deploy rollback MODEL`` is instant.

    modelplane deploy fraud --version 5 [--strategy blue-green] [--keep-blue 10m] [--force]
    modelplane deploy rollback fraud
    modelplane deploy list [--model fraud]

``deploy MODEL …`` is short for ``deploy switch MODEL …`` (say ``switch`` for a model named
``rollback`` or ``list``).
"""

from __future__ import annotations

import sys
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import error_line, fmt_time, print_json, print_table, say
from modelplane.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from typer._click.core import Context as ClickContext


__all__ = ["STRATEGIES", "app"]

STRATEGIES = ("blue-green",)
_DEFAULT = "switch"


class _DefaultToSwitch(TyperGroup):
    """``deploy fraud --version 5`` runs ``deploy switch fraud --version 5``."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultToSwitch,
    no_args_is_help=True,
    help="Blue-green deploys: `deploy MODEL --version N` (gates first), `deploy rollback "
    "MODEL`, `deploy list`.",
)

ModelArg = Annotated[str, typer.Argument(help="Model name.", show_default=False)]


@app.command(_DEFAULT)
def switch(
    ctx: typer.Context,
    model: ModelArg,
    version: Annotated[
        str, typer.Option("--version", help="The version to deploy: 5, fraud/5, fraud@challenger.")
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", help="How to switch: blue-green (the only one).")
    ] = "blue-green",
    keep_blue: Annotated[
        str,
        typer.Option("--keep-blue", help="How long replicas keep the old version loaded: 10m…"),
    ] = "10m",
    force: Annotated[
        bool,
        typer.Option("--force", help="Deploy even if the gates fail (recorded as forced)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run the version's release gates, then move the champion alias to it (blue → green).

    Example: modelplane deploy fraud --version 5 --strategy blue-green --keep-blue 10m
    """
    from modelplane.cli.experiments import version_of
    from modelplane.cli.gate import run_release_gates
    from modelplane.cli.rollout import parse_duration
    from modelplane.cli.rollout_view import fmt_duration

    if strategy not in STRATEGIES:
        raise InvalidInput(
            f"unknown --strategy {strategy!r}: the strategies are {', '.join(STRATEGIES)} "
            f"(for a canary: modelplane rollout start {model} --candidate N)",
            field="--strategy",
        )
    keep_s = parse_duration(keep_blue, "--keep-blue")
    st = state(ctx)
    client = st.client()
    number = version_of(client, model, version, what="--version")
    champion = client.get_model(model).aliases.get("champion")
    if champion == number:
        raise Conflict(f"{model}/{number} is already the champion", field="version")
    running = client.platform.traffic.list_rollouts(model=model, status="running", limit=1)
    if running:
        raise Conflict(
            f"a rollout of {model}/{running[0].candidate} is running on {model!r}; finish or "
            "abort it first",
            field="model",
        )
    for experiment in client.platform.traffic.list_experiments(model=model):
        if experiment.kind == "split" and experiment.active:
            raise Conflict(
                f"experiment {experiment.name!r} routes {model!r}; stop it first", field="model"
            )
    json_mode = st.wants_json(json_out)
    report = run_release_gates(client, model, number, force=force)
    if not report.passed and not force:
        failed = ", ".join(c.name for c in report.failed)
        if json_mode:
            print_json({"deployed": False, "gates": report.to_dict() | {"passed": False}})
        else:
            print_table(
                ("check", "result", "detail"),
                ((c.name, "pass" if c.passed else "FAIL", c.detail) for c in report.checks),
                wrap=("detail",),
            )
        sys.stdout.flush()
        sys.stderr.write(
            error_line(
                f"gates failed for {model}/{number}: {failed}; nothing was deployed "
                "(--force to deploy anyway, recorded)"
            )
            + "\n"
        )
        raise typer.Exit(1)
    deployment = client.deploy(model, number, keep_blue_s=keep_s, force=force)
    if json_mode:
        print_json(
            deployment.to_dict()
            | {
                "deployed": True,
                "forced": deployment.forced,
                "gates": report.to_dict() | {"passed": report.passed, "forced": not report.passed},
            }
        )
        return
    gates = (
        "passed"
        if report.passed
        else f"FAILED ({', '.join(c.name for c in report.failed)}), forced"
    )
    say(f"gates of {model}/{number}: {gates}")
    blue = "nothing" if deployment.blue is None else str(deployment.blue)
    say(f"{deployment.key}: {model}@champion {blue} (blue) → {deployment.green} (green)")
    if deployment.blue is not None:
        say(
            f"blue ({model}/{deployment.blue}) stays loaded for {fmt_duration(keep_s)} "
            f"(until {fmt_time(deployment.keep_until.astimezone(UTC))} UTC); "
            f"roll back: modelplane deploy rollback {model}"
        )


@app.command("rollback")
def rollback(ctx: typer.Context, model: ModelArg, json_out: JsonOpt = False) -> None:
    """Move the champion back to the version the last deploy replaced (blue).

    Example: modelplane deploy rollback fraud
    """
    st = state(ctx)
    deployment = st.client().rollback_deploy(model)
    if st.wants_json(json_out):
        print_json(deployment.to_dict())
        return
    say(
        f"{deployment.key}: rolled back — {model}@champion {deployment.green} (green) → "
        f"{deployment.blue} (blue)"
    )


@app.command("list")
def list_deployments(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List blue-green deployments, newest first.

    Example: modelplane deploy list --model fraud
    """
    st = state(ctx)
    found = st.client().platform.traffic.list_deployments(model=model)
    if st.wants_json(json_out):
        print_json([d.to_dict() for d in found])
        return
    print_table(
        ("deployment", "blue", "green", "status", "keep blue until", "created"),
        (
            (
                d.key,
                "-" if d.blue is None else str(d.blue),
                str(d.green),
                d.status + (" (forced)" if d.forced else ""),
                fmt_time(d.keep_until),
                fmt_time(d.created_at),
            )
            for d in found
        ),
        empty="no deployments",
    )
