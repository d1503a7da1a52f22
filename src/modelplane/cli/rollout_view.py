"""What the ``modelplane rollout`` commands show: a rollout's fields, counter rows, decisions.

A decision is shown the same way whoever made it — this CLI's controller or a serving
replica's, read back from the rollout's events (:class:`DecisionLog`) — as the line and the
``decisions`` entry ``StepDecision`` itself would give.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelplane.cli.output import fmt_time, print_fields

if TYPE_CHECKING:
    from modelplane.client import Client
    from modelplane.events.views import EventRecord
    from modelplane.traffic.live import Counters
    from modelplane.traffic.rollout import Rollout

__all__ = [
    "DecisionLog",
    "counter_row",
    "decision_line",
    "decision_of",
    "fmt_duration",
    "show",
    "step_text",
]


def fmt_duration(seconds: float) -> str:
    """``600`` → ``10m``, ``90`` → ``90s``, ``7200`` → ``2h``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def step_text(rollout: Rollout) -> str:
    """``2 of 4 (25 %)``: where the rollout stands."""
    return f"{rollout.step_index + 1} of {len(rollout.steps)} ({rollout.weight} %)"


def show(rollout: Rollout) -> None:
    """Print a rollout as fields: its versions, steps, rules and last reason."""
    fields = [
        ("rollout", rollout.key),
        ("status", rollout.status + (" (forced past its gates)" if rollout.forced else "")),
        ("candidate", f"{rollout.model}/{rollout.candidate}"),
        ("baseline", f"{rollout.model}/{rollout.baseline}"),
        ("steps", ", ".join(f"{s} %" for s in rollout.steps)),
        ("step", step_text(rollout)),
        (
            "rules",
            f"each step ≥ {fmt_duration(rollout.step_duration_s)} and ≥ {rollout.min_requests} "
            f"requests; error rate ≤ {rollout.max_error_rate:g}; p99 ≤ "
            f"{rollout.max_latency_ratio:g}× baseline; alpha {rollout.alpha:g}",
        ),
        ("updated", fmt_time(rollout.updated_at)),
    ]
    if rollout.reason:
        fields.append(("reason", rollout.reason))
    print_fields(fields)


#: The rollout events that record a decision, whoever made it (this CLI or a server's controller).
_DECISIONS = ("CanaryStepAdvanced", "CanaryPromoted", "CanaryRolledBack", "CanaryAborted")
_ACTIONS = {
    "CanaryStepAdvanced": "advance",
    "CanaryPromoted": "promote",
    "CanaryRolledBack": "rollback",
    "CanaryAborted": "abort",
}


def decision_of(event: EventRecord, rollout: Rollout) -> dict[str, Any]:
    """A decision event as the ``decisions`` entry ``StepDecision.to_dict()`` would give.

    ``CanaryStepAdvanced`` records the step it moved *to*; the decision was about the one
    before it. An abort names no step: it happened at the rollout's current one.
    """
    p = event.payload
    action = _ACTIONS[event.type]
    step = int(p.get("step", rollout.step_index))
    if action == "advance":
        step -= 1
    step = min(max(step, 0), len(rollout.steps) - 1)
    return {
        "model": rollout.model,
        "rollout": rollout.key,
        "step": step,
        "weight": rollout.steps[step],
        "action": action,
        "reason": str(p.get("reason", "")),
        "evidence": p.get("evidence") or {},
        "manual": bool(p.get("manual", False)),
        "at": event.occurred_at.isoformat(),
    }


def decision_line(d: dict[str, Any]) -> str:
    """The same line as ``StepDecision.line()``: ``step 2 (25 %): advance — reason``."""
    return f"step {d['step'] + 1} ({d['weight']} %): {d['action']} — {d['reason']}"


class DecisionLog:
    """The rollout's decision events not reported yet, oldest first, each once.

    Every decision is in the event log whoever made it — this CLI's controller or the
    controller of a ``modelplane serve`` replica that decided first — so reading the log is
    what shows every step (the controller's own callback only sees its own moves).
    """

    def __init__(self, client: Client, rollout: Rollout, *, from_start: bool) -> None:
        self._client = client
        self._key = rollout.key
        self._after = 0
        if not from_start:
            for event in self._unread():
                self._after = event.id

    def _unread(self) -> Iterator[EventRecord]:
        from modelplane.core.pagination import encode_cursor

        while True:
            page = self._client.list_events(
                aggregate_type="rollout",
                aggregate_id=self._key,
                cursor=encode_cursor({"id": self._after}) if self._after else None,
                limit=100,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            self._after = page.items[-1].id

    def new(self, rollout: Rollout) -> list[dict[str, Any]]:
        """The decisions recorded since the last call, as :func:`decision_of` gives them."""
        found = []
        for event in list(self._unread()):
            self._after = event.id
            if event.type in _DECISIONS:
                found.append(decision_of(event, rollout))
        return found


def counter_row(label: str, c: Counters) -> tuple[str, ...]:
    """One row of ``rollout status``'s table: one arm's traffic, latency and outcomes."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    mean = f"{c.outcome_sum / c.outcome_n:.4g}" if c.outcome_n else "-"
    return (
        label,
        str(c.requests),
        str(c.errors),
        f"{c.error_rate:.2%}",
        ms(c.p(0.5)),
        ms(c.p(0.99)),
        str(c.outcome_n),
        mean,
    )
