"""``modelplane gate REF``: run a version's release gates and record the result on it.

The checks (``modelplane.traffic.gates``): signature compatible with the champion, offline
metric on a holdout set not worse than the champion's by more than a margin, single-row latency
within a budget, smoke inputs with expected outputs or bounds. A model keeps its gate settings in
its ``gate.config`` tag (``--save``), so later runs need only the reference. The use case
itself is ``modelplane.traffic.gating.evaluate_gates`` (``POST
/api/v1/models/{name}/versions/{version}/gate`` runs it too); this is the door to it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import error_line, print_json, print_table, say

if TYPE_CHECKING:
    from modelplane.client import Client
    from modelplane.traffic.gates import GateReport

__all__ = ["gate", "run_release_gates"]


def gate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to gate: fraud/4, fraud@challenger.")],
    holdout: Annotated[
        Path | None, typer.Option(help="Holdout data set (CSV or Parquet) with the label.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="The label column of the holdout.")] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="roc_auc, average_precision, accuracy, f1, rmse or mae."),
    ] = None,
    margin: Annotated[
        float | None, typer.Option(min=0, help="How much worse than the champion is allowed.")
    ] = None,
    latency_budget_ms: Annotated[
        float | None, typer.Option(min=0, help="p95 of single-row predictions, in ms.")
    ] = None,
    smoke: Annotated[
        Path | None, typer.Option(help="JSON file of smoke inputs with expect or min/max.")
    ] = None,
    save: Annotated[bool, typer.Option("--save", help="Keep these settings on the model.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Let a failed version through (recorded as forced).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run the release gates of a version and record the result on it.

    Example: modelplane gate fraud/4 --holdout holdout.csv --label is_fraud --metric roc_auc
    --margin 0.01 --latency-budget-ms 20 --save
    """
    from modelplane.traffic.gating import report_json

    st = state(ctx)
    client = st.client()
    candidate_version = client.resolve(ref)
    name, number = candidate_version.model, candidate_version.version
    report = run_release_gates(
        client,
        name,
        number,
        holdout=holdout,
        label=label,
        metric=metric,
        margin=margin,
        latency_budget_ms=latency_budget_ms,
        smoke=smoke,
        save=save,
        force=force,
    )
    if st.wants_json(json_out):
        print_json(report_json(report, forced=force))
    else:
        print_table(
            ("check", "result", "detail"),
            ((c.name, "pass" if c.passed else "FAIL", c.detail) for c in report.checks),
            wrap=("detail",),
        )
        say(
            f"{name}/{number}: gates "
            + ("passed" if report.passed else "failed (forced through)" if force else "failed")
        )
    if not report.passed and not force:
        failed = ", ".join(c.name for c in report.checks if not c.passed)
        sys.stderr.write(error_line(f"gates failed for {name}/{number}: {failed}") + "\n")
        raise typer.Exit(1)


def run_release_gates(
    client: Client,
    name: str,
    number: int,
    *,
    holdout: Path | None = None,
    label: str | None = None,
    metric: str | None = None,
    margin: float | None = None,
    latency_budget_ms: float | None = None,
    smoke: Path | None = None,
    save: bool = False,
    force: bool = False,
) -> GateReport:
    """Run ``name/number``'s gates (the model's saved settings, the given ones over them)
    against its champion and record the result on the version (``forced`` with ``force``):
    :func:`modelplane.traffic.gating.evaluate_gates` with the CLI's paths read here."""
    from modelplane.traffic.gates import load_smoke
    from modelplane.traffic.gating import evaluate_gates

    given = {
        "holdout": str(holdout.absolute()) if holdout is not None else None,  # saved: any cwd
        "label": label,
        "metric": metric,
        "margin": margin,
        "latency_budget_ms": latency_budget_ms,
        "smoke": load_smoke(smoke) if smoke is not None else None,
    }
    return evaluate_gates(client.gate_ports(), name, number, given, save=save, force=force)
