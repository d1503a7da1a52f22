"""``modelplane rollout …``: canary rollouts of a new version against the champion.

``rollout start`` sends the candidate ``steps[0]`` % of the model's bare-name traffic; a
controller (:mod:`modelplane.traffic.controller`) judges each step on the live counters of all
replicas and advances, promotes (the ``champion`` alias moves) or rolls back. The controller
runs in every ``modelplane serve``; ``rollout run`` (or ``start --wait``) runs one in the
foreground and prints each decision — read from the rollout's events, so a step that a serving
replica's controller decided first is shown too, once, in order. What the commands print is
:mod:`modelplane.cli.rollout_view`'s.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelplane.cli.context import JsonOpt, state
from modelplane.cli.output import fmt_time, note, print_json, print_table, say
from modelplane.cli.rollout_view import (
    DecisionLog,
    counter_row,
    decision_line,
    show,
    step_text,
)
from modelplane.errors import InvalidInput

if TYPE_CHECKING:
    from modelplane.client import Client
    from modelplane.traffic.controller import StepDecision

__all__ = ["app", "parse_duration", "parse_steps"]

app = typer.Typer(no_args_is_help=True, help="Canary rollouts: a candidate takes traffic in steps.")

ModelArg = Annotated[str, typer.Argument(help="Model name.", show_default=False)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, option: str) -> float:
    """``30s``, ``5m``, ``1h``, ``2d``, ``250ms`` or plain seconds (``90``) → seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInput(
            f"invalid {option} {text!r}: expected a duration such as 30s, 5m, 1h or seconds",
            field=option,
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not math.isfinite(seconds):
        raise InvalidInput(f"invalid {option} {text!r}: too large", field=option)
    return seconds


def parse_steps(text: str) -> tuple[int, ...]:
    """``5,25,50,100`` → (5, 25, 50, 100): whole percentages (the domain checks the order)."""
    steps: list[int] = []
    for part in text.split(","):
        part = part.strip().rstrip("%").strip()
        if not part.isdigit():
            raise InvalidInput(
                f"invalid --steps {text!r}: expected whole percentages separated by commas, "
                "e.g. 5,25,50,100",
                field="--steps",
            )
        steps.append(int(part))
    return tuple(steps)


def _candidate(client: Client, model: str, text: str) -> int:
    from modelplane.cli.experiments import version_of

    return version_of(client, model, text, what="--candidate")


def _controller(client: Client) -> Any:
    from modelplane.traffic.controller import RolloutController

    return RolloutController(client.platform.bus, client.platform.traffic)


#: How ``--wait`` waits between evaluations (a test replaces it to act between two polls).
_sleep: Callable[[float], None] = time.sleep


def _drive(
    client: Client, model: str, interval_s: float, json_mode: bool, *, from_start: bool
) -> None:
    """Run a controller on ``model``'s latest rollout until it ends; exit 0 if promoted, else 1.

    Prints every decision recorded for the rollout, in commit order, once each — this
    controller's and those another controller (a serving replica's) made first — and a hold
    whenever its reason changes kind. ``from_start``: also the decisions made before this
    command began watching (``start --wait``); else only new ones (``rollout run``).
    """
    views = client.platform.traffic
    controller = _controller(client)
    rollout = views.latest_rollout(model)
    key = rollout.key
    log = DecisionLog(client, rollout, from_start=from_start)
    decisions: list[dict[str, Any]] = []
    last_hold = ""

    def report(decision: dict[str, Any]) -> None:
        if json_mode:
            decisions.append(decision)
        else:
            say(decision_line(decision))

    try:
        while True:
            rollout = views.latest_rollout(model)
            if rollout.key != key:  # ours ended and another started: ours is in the list
                rollout = next(r for r in views.list_rollouts(model=model) if r.key == key)
            for decided in log.new(rollout):  # read after the rollout: its last one included
                report(decided)
                last_hold = ""
            if rollout.status != "running":
                break
            decision = controller.evaluate(rollout)
            if not controller.apply(decision) or decision.action != "hold":
                continue  # a move (ours, or another controller's first) is in the log now
            kind = decision.reason.split(":")[0].split(";")[0]
            if kind != last_hold:
                report(decision.to_dict())
                last_hold = kind
            _sleep(interval_s)
    except KeyboardInterrupt:
        note(
            f"stopped watching; the rollout of {model} goes on (modelplane rollout status {model})"
        )
        raise typer.Exit(130) from None
    if json_mode:
        print_json({"rollout": rollout.to_dict(), "decisions": decisions})
    else:
        say(
            f"{rollout.key}: {rollout.status.replace('_', ' ')}"
            + (f" — {rollout.reason}" if rollout.reason else "")
        )
    if rollout.status != "promoted":
        raise typer.Exit(1)


@app.command("start")
def start(
    ctx: typer.Context,
    model: ModelArg,
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate", help="The version to roll out: 4, fraud/4 or fraud@challenger."
        ),
    ],
    steps: Annotated[
        str, typer.Option("--steps", help="Candidate weights in %, increasing, ending at 100.")
    ] = "5,25,50,100",
    step_duration: Annotated[
        str, typer.Option("--step-duration", help="Least time per step: 30s, 5m, 1h or seconds.")
    ] = "5m",
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Least candidate requests per step.")
    ] = 500,
    max_error_rate: Annotated[
        float, typer.Option("--max-error-rate", help="Highest acceptable candidate error rate.")
    ] = 0.01,
    max_latency_ratio: Annotated[
        float,
        typer.Option("--max-latency-ratio", help="Highest candidate p99 / baseline p99."),
    ] = 1.5,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance of the tests.")] = 0.05,
    force: Annotated[
        bool, typer.Option("--force", help="Roll out a version whose gates did not pass.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Drive it here until promoted (exit 0) or rolled back (1)."),
    ] = False,
    interval: Annotated[
        str, typer.Option("--interval", help="With --wait: time between evaluations.")
    ] = "1s",
    json_out: JsonOpt = False,
) -> None:
    """Start a canary of a version against the model's champion.

    Example: modelplane rollout start fraud --candidate 4 --steps 5,25,50,100
    --step-duration 5m --min-requests 500 --max-error-rate 0.01 --max-latency-ratio 1.5 --wait
    """
    st = state(ctx)
    parsed_steps = parse_steps(steps)
    duration_s = parse_duration(step_duration, "--step-duration")
    interval_s = parse_duration(interval, "--interval")
    client = st.client()
    version = _candidate(client, model, candidate)
    rollout = client.start_rollout(
        model,
        version,
        steps=parsed_steps,
        step_duration_s=duration_s,
        min_requests=min_requests,
        max_error_rate=max_error_rate,
        max_latency_ratio=max_latency_ratio,
        alpha=alpha,
        force=force,
    )
    json_mode = st.wants_json(json_out)
    if wait:
        if not json_mode:
            say(
                f"started {rollout.key}: {model}/{rollout.candidate} takes {rollout.weight} % "
                f"against {model}/{rollout.baseline}"
            )
        _drive(client, model, interval_s, json_mode, from_start=True)
        return
    if json_mode:
        print_json(rollout.to_dict())
        return
    show(rollout)
    note(
        "the controller of the serving replicas (modelplane serve) drives it; or drive it "
        f"here: modelplane rollout run {model}"
    )


@app.command("run")
def run(
    ctx: typer.Context,
    model: ModelArg,
    interval: Annotated[
        str, typer.Option("--interval", help="Time between evaluations: 1s, 500ms…")
    ] = "1s",
    json_out: JsonOpt = False,
) -> None:
    """Drive a started rollout in the foreground until it is promoted (exit 0) or rolled back (1).

    Example: modelplane rollout run fraud --interval 1s
    """
    st = state(ctx)
    interval_s = parse_duration(interval, "--interval")
    client = st.client()
    rollout = client.platform.traffic.latest_rollout(model)
    if rollout.status != "running":
        raise InvalidInput(
            f"the latest rollout of {model!r} ({rollout.key}) is already {rollout.status}",
            field="model",
        )
    _drive(client, model, interval_s, st.wants_json(json_out), from_start=False)


@app.command("status")
def status(ctx: typer.Context, model: ModelArg, json_out: JsonOpt = False) -> None:
    """The model's latest rollout: step, weight, candidate and baseline counters, last reason.

    Example: modelplane rollout status fraud
    """
    from modelplane.traffic.views import BASELINE, CANDIDATE

    st = state(ctx)
    client = st.client()
    views = client.platform.traffic
    rollout = views.latest_rollout(model)
    step = views.rollout_counters(rollout)
    totals = views.rollout_totals(rollout)
    next_decision: StepDecision | None = None
    if rollout.status == "running":
        next_decision = _controller(client).evaluate(rollout)
    if st.wants_json(json_out):
        print_json(
            rollout.to_dict()
            | {
                "step_counters": {k: v.to_dict() for k, v in step.items()},
                "totals": {k: v.to_dict() for k, v in totals.items()},
                "next_decision": next_decision.to_dict() if next_decision else None,
            }
        )
        return
    show(rollout)
    print_table(
        ("traffic", "requests", "errors", "error rate", "p50 ms", "p99 ms", "outcomes", "mean"),
        [
            counter_row(f"candidate {rollout.candidate} (this step)", step[CANDIDATE]),
            counter_row(f"baseline {rollout.baseline} (this step)", step[BASELINE]),
            counter_row(f"candidate {rollout.candidate} (all steps)", totals[CANDIDATE]),
            counter_row(f"baseline {rollout.baseline} (all steps)", totals[BASELINE]),
        ],
    )
    if next_decision is not None:
        say(f"now: {next_decision.action} — {next_decision.reason}")


@app.command("promote")
def promote(
    ctx: typer.Context,
    model: ModelArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "promoted by hand",
    json_out: JsonOpt = False,
) -> None:
    """Promote the running rollout's candidate now (the champion alias moves to it).

    Example: modelplane rollout promote fraud
    """
    st = state(ctx)
    rollout = st.client().decide_rollout(model, "promote", reason=reason, manual=True)
    if st.wants_json(json_out):
        print_json(rollout.to_dict())
        return
    say(
        f"{rollout.key}: promoted — {model}@champion → {rollout.candidate} (was {rollout.baseline})"
    )


@app.command("abort")
def abort(
    ctx: typer.Context,
    model: ModelArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "aborted by hand",
    json_out: JsonOpt = False,
) -> None:
    """Stop the running rollout: all traffic goes back to the champion.

    Example: modelplane rollout abort fraud --reason "bad feedback from ops"
    """
    st = state(ctx)
    rollout = st.client().abort_rollout(model, reason)
    if st.wants_json(json_out):
        print_json(rollout.to_dict())
        return
    say(f"{rollout.key}: aborted — all traffic back to {model}/{rollout.baseline}")


@app.command("list")
def list_rollouts(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's.")] = None,
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="running, promoted, rolled_back or aborted."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List rollouts, newest first.

    Example: modelplane rollout list --model fraud
    """
    if status_filter is not None and status_filter not in (
        "running",
        "promoted",
        "rolled_back",
        "aborted",
    ):
        raise InvalidInput(
            f"invalid --status {status_filter!r}: running, promoted, rolled_back or aborted",
            field="--status",
        )
    st = state(ctx)
    found = st.client().platform.traffic.list_rollouts(model=model, status=status_filter)
    if st.wants_json(json_out):
        print_json([r.to_dict() for r in found])
        return
    print_table(
        ("rollout", "candidate", "baseline", "status", "step", "updated", "reason"),
        (
            (
                r.key,
                str(r.candidate),
                str(r.baseline),
                r.status,
                step_text(r),
                fmt_time(r.updated_at),
                r.reason,
            )
            for r in found
        ),
        wrap=("reason",),
        empty="no rollouts",
    )
