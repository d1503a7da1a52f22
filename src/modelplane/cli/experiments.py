"""``modelplane experiments …``: A/B/n tests, bandits and shadows of a model, and their report.

A split routes the model's bare-name traffic to its variants by weight (``--variant
a=fraud/3:50 --variant b=fraud/4:50``); a shadow mirrors a share of the requests to a candidate
off the request path (``--shadow fraud/4 --percent 20``). ``report`` computes the statistics
(:mod:`modelplane.traffic.report`) from the live counters and the feedback posted so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import fmt_time, note, print_fields, print_json, print_table, say
from modelplane.errors import InvalidInput

if TYPE_CHECKING:
    from modelplane.client import Client
    from modelplane.traffic.experiment import Experiment
    from modelplane.traffic.report import ExperimentReport

__all__ = ["app", "parse_variant", "version_of"]

app = typer.Typer(no_args_is_help=True, help="Experiments: A/B/n tests, bandits and shadows.")

NameArg = Annotated[str, typer.Argument(help="Experiment name.", show_default=False)]

SHADOW_ARM = "shadow"


def version_of(client: Client, model: str, ref: str, *, what: str) -> int:
    """A version number of ``model`` from ``3``, ``fraud/3``, ``fraud@challenger``, ``models:/…``.

    The version must exist; a reference to another model is bad input.
    """
    text = ref.strip()
    if not text:
        raise InvalidInput(f"{what}: empty version reference", field=what)
    if text.isdigit():
        number = int(text)
        if number < 1:
            raise InvalidInput(f"{what}: version must be 1 or more, got {text}", field=what)
        return client.get_version(model, number).version
    found = client.resolve(text)
    if found.model != model:
        raise InvalidInput(
            f"{what}: {ref!r} is a version of {found.model!r}, not of {model!r}", field=what
        )
    return found.version


def parse_variant(text: str) -> tuple[str, str, float]:
    """``NAME=REF:WEIGHT`` → (name, ref, weight); the weight is a percentage."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip():
        raise InvalidInput(
            f"invalid --variant {text!r}: expected NAME=REF:WEIGHT, e.g. a=fraud/3:50",
            field="--variant",
        )
    ref, sep, raw_weight = rest.rpartition(":")
    if not sep or not ref.strip() or ref.endswith(":"):
        raise InvalidInput(
            f"invalid --variant {text!r}: expected NAME=REF:WEIGHT, e.g. a=fraud/3:50 "
            "(the weight, a percentage, is missing)",
            field="--variant",
        )
    try:
        weight = float(raw_weight)
    except ValueError:
        raise InvalidInput(
            f"invalid --variant {text!r}: the weight {raw_weight!r} is not a number",
            field="--variant",
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise InvalidInput(
            f"invalid --variant {text!r}: the weight must be a percentage >= 0",
            field="--variant",
        )
    return name.strip(), ref.strip(), weight


def _arms_text(experiment: Experiment) -> str:
    if experiment.kind == "shadow":
        arm = experiment.arms[0]
        return f"{arm.name}={experiment.model}/{arm.version} ({experiment.shadow_percent:g} %)"
    return ", ".join(
        f"{a.name}={experiment.model}/{a.version}:{a.weight:g}" for a in experiment.arms
    )


def _show(experiment: Experiment) -> None:
    fields = [
        ("name", experiment.name),
        ("model", experiment.model),
        ("kind", experiment.kind + (" (bandit)" if experiment.bandit else "")),
        ("status", experiment.status),
        ("variants", _arms_text(experiment)),
    ]
    if experiment.kind == "split":
        fields += [
            ("metric", experiment.metric),
            (
                "design",
                f"mde={experiment.mde:g}, alpha={experiment.alpha:g}, power={experiment.power:g}",
            ),
        ]
    fields += [("subject", experiment.subject), ("created", fmt_time(experiment.created_at))]
    if experiment.started_at:
        fields.append(("started", fmt_time(experiment.started_at)))
    if experiment.stopped_at:
        fields.append(("stopped", fmt_time(experiment.stopped_at)))
    print_fields(fields)


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    model: Annotated[str, typer.Option("--model", help="The model whose traffic is split.")],
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            metavar="NAME=REF:WEIGHT",
            help="A variant and its percentage of traffic (repeatable; the first is the "
            "control), e.g. a=fraud/3:50.",
        ),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", metavar="REF", help="Create a shadow of this version instead."),
    ] = None,
    percent: Annotated[
        float | None,
        typer.Option("--percent", help="Share of requests mirrored to the shadow (default 100)."),
    ] = None,
    metric: Annotated[
        str, typer.Option("--metric", help="accuracy (labels) or reward (rewards).")
    ] = "accuracy",
    mde: Annotated[
        float, typer.Option("--mde", help="Smallest difference worth detecting (absolute).")
    ] = 0.02,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power of the test.")] = 0.8,
    bandit: Annotated[
        bool, typer.Option("--bandit", help="Move traffic to the better arm (Thompson sampling).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create an experiment (a draft: `experiments start` sends it traffic).

    Example: modelplane experiments create ab1 --model fraud --variant a=fraud/3:50
    --variant b=fraud/4:50 --metric accuracy
    Example: modelplane experiments create sh1 --model fraud --shadow fraud/4 --percent 20
    """
    st = state(ctx)
    variants: Sequence[str] = variant or ()
    if shadow is not None and variants:
        raise InvalidInput(
            "give either --variant (a split) or --shadow, not both", field="--shadow"
        )
    if shadow is None and not variants:
        raise InvalidInput(
            "an experiment needs --variant NAME=REF:WEIGHT (twice or more) or --shadow REF",
            field="--variant",
        )
    if shadow is None and percent is not None:
        raise InvalidInput("--percent applies to a shadow (--shadow REF) only", field="--percent")
    parsed = [parse_variant(v) for v in variants]
    names = [n for n, _, _ in parsed]
    if len(set(names)) != len(names):
        raise InvalidInput("two variants have the same name", field="--variant")
    client = st.client()
    client.get_model(model)  # an unknown model is named as such
    if shadow is not None:
        version = version_of(client, model, shadow, what="--shadow")
        experiment = client.create_experiment(
            name,
            model,
            {SHADOW_ARM: (version, 100.0)},
            kind="shadow",
            shadow_percent=100.0 if percent is None else percent,
            metric=metric,
            mde=mde,
            alpha=alpha,
            power=power,
            bandit=bandit,
        )
    else:
        arms = {
            n: (version_of(client, model, ref, what=f"--variant {n}"), weight)
            for n, ref, weight in parsed
        }
        experiment = client.create_experiment(
            name, model, arms, metric=metric, mde=mde, alpha=alpha, power=power, bandit=bandit
        )
    if st.wants_json(json_out):
        print_json(experiment.to_dict())
        return
    say(f"created {experiment.kind} {experiment.name} on {model}: {_arms_text(experiment)}")
    note(f"send it traffic: modelplane experiments start {experiment.name}")


def _action(ctx: typer.Context, name: str, action: str, json_out: bool) -> None:
    st = state(ctx)
    experiment = st.client().experiment_action(name, action)
    if st.wants_json(json_out):
        print_json(experiment.to_dict())
        return
    say(f"experiment {experiment.name}: {experiment.status}")


@app.command("start")
def start(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Start (or resume) routing the model's traffic by the experiment.

    Example: modelplane experiments start ab1
    """
    _action(ctx, name, "start", json_out)


@app.command("pause")
def pause(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Pause a running experiment (traffic goes back to the champion; counts are kept).

    Example: modelplane experiments pause ab1
    """
    _action(ctx, name, "pause", json_out)


@app.command("stop")
def stop(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Stop an experiment for good (its report stays readable).

    Example: modelplane experiments stop ab1
    """
    _action(ctx, name, "stop", json_out)


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="draft, running, paused or stopped.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List experiments, newest first.

    Example: modelplane experiments list --model fraud --status running
    """
    if status is not None and status not in ("draft", "running", "paused", "stopped"):
        raise InvalidInput(
            f"invalid --status {status!r}: draft, running, paused or stopped", field="--status"
        )
    st = state(ctx)
    found = st.client().platform.traffic.list_experiments(model=model, status=status)
    if st.wants_json(json_out):
        print_json([e.to_dict() for e in found])
        return
    print_table(
        ("name", "model", "kind", "status", "variants", "metric", "created"),
        (
            (
                e.name,
                e.model,
                e.kind + (" (bandit)" if e.bandit else ""),
                e.status,
                _arms_text(e),
                e.metric if e.kind == "split" else "-",
                fmt_time(e.created_at),
            )
            for e in found
        ),
        wrap=("variants",),
        empty="no experiments",
    )


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Show one experiment's settings and status.

    Example: modelplane experiments show ab1
    """
    st = state(ctx)
    experiment = st.client().platform.traffic.get_experiment(name)
    if st.wants_json(json_out):
        print_json(experiment.to_dict())
        return
    _show(experiment)


def build_report(client: Client, name: str) -> ExperimentReport:
    """The report of experiment ``name`` (see :func:`modelplane.traffic.report.report_of`)."""
    from modelplane.traffic.report import report_of

    views = client.platform.traffic
    return report_of(
        views,
        views.get_experiment(name),
        prediction_log=client.platform.settings.resolved_prediction_log,
    )


def _num(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


@app.command("report")
def report(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """The statistics of an experiment: per variant, against the control, and a verdict.

    Example: modelplane experiments report ab1
    """
    st = state(ctx)
    rep = build_report(st.client(), name)
    if st.wants_json(json_out):
        print_json(rep.to_dict())
        return
    say(f"experiment {rep.experiment} on {rep.model} ({rep.kind}, {rep.status})")
    if rep.kind == "shadow":
        v = rep.variants[0]
        s = v.shadow
        assert s is not None
        print_table(
            (
                "shadow",
                "version",
                "mirrored",
                "compared",
                "agreement",
                "mean |diff|",
                "errors",
                "dropped",
                "p50 ms",
                "p99 ms",
            ),
            [
                (
                    v.name,
                    str(v.version),
                    str(v.requests),
                    str(s.compared),
                    _num(s.agreement_rate, ".1%"),
                    _num(s.mean_abs_diff),
                    str(s.errors),
                    str(s.dropped),
                    _num(s.latency_p50_ms, ".2f"),
                    _num(s.latency_p99_ms, ".2f"),
                )
            ],
        )
        say(rep.summary)
        return
    level = f"{1 - rep.alpha:.0%}"
    print_table(
        (
            "variant",
            "version",
            "weight",
            "requests",
            "errors",
            "error rate",
            "p50 ms",
            "p99 ms",
            "outcomes",
            rep.metric,
            f"{level} CI",
        ),
        (
            (
                v.name + (" (control)" if i == 0 else ""),
                str(v.version),
                f"{v.weight:g} %",
                str(v.requests),
                str(v.errors),
                f"{v.error_rate:.2%}",
                _num(v.latency_p50_ms, ".2f"),
                _num(v.latency_p99_ms, ".2f"),
                str(v.outcome_n),
                _num(v.value),
                "-" if v.ci is None else f"[{v.ci.low:.4g}, {v.ci.high:.4g}]",
            )
            for i, v in enumerate(rep.variants)
        ),
    )
    print_table(
        ("comparison", "test", "difference", "p-value", "n", "verdict"),
        (
            (
                f"{c.variant} vs {c.control}",
                c.test or "-",
                _num(c.difference, "+.4g"),
                _num(c.p_value, ".3g"),
                f"{min(c.n_control, c.n_variant)} of {c.min_n if c.min_n is not None else '?'}",
                c.verdict,
            )
            for c in rep.comparisons
        ),
        wrap=("verdict",),
    )
    need = "?" if rep.min_sample_size is None else str(rep.min_sample_size)
    say(
        f"minimum sample: {need} outcomes per variant (mde={rep.mde:g}, alpha={rep.alpha:g}, "
        f"power={rep.power:g})"
    )
    say(f"sample ratio: {rep.srm_note}")
    if rep.feedback_matched is not None:
        say(
            f"feedback: {rep.feedback_matched} matched, {rep.feedback_unmatched} unmatched "
            "(request ids no replica or prediction log knows; never counted for a variant)"
        )
    say(rep.summary)
