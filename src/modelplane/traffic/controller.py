"""The canary controller: judges each step of a rollout on live evidence and acts on it.

Every serving replica adds its per-arm counters to the database each second, so the controller
sees the traffic of all replicas, whichever process it runs in (``modelplane serve`` runs one,
``modelplane rollout run`` or ``rollout start --wait`` runs one in the foreground). Several
controllers may run at once: a decision carries the step it was made for, and the domain applies
it only if the rollout is still there, so a step is never decided twice. Its state is the
rollout's row: a controller that dies resumes where the rollout is.

The rules of one step, in order (the candidate's counters are those of the current step; the
baseline's are the current step's, or all steps' when the step sent it too little traffic, as at
100 %):

1. **Roll back** when the candidate's error rate is above ``max_error_rate`` with significance
   (one-sided exact binomial test, ``p < alpha``) — checked from :data:`EARLY_REQUESTS` requests
   on, so a badly broken candidate is stopped long before the minimum sample — or when it is
   above the limit and significantly above the baseline's (one-sided two-proportion z-test).
2. **Roll back** when, with at least ``min_requests`` successful candidate requests, its p99
   latency is significantly above the allowed ``max_latency_ratio`` × the baseline's p99 (and
   at least :data:`LATENCY_SLACK_MS` above it: sub-millisecond models jitter by more than any
   ratio). The test is on the quantile itself: if the candidate's p99 were within the bound, at
   most 1 % of its requests would be slower than the bound; a one-sided binomial test of the
   share that is slower (``p < alpha``) decides, so two unlucky outliers in a small sample do
   not roll a healthy candidate back.
3. **Roll back** when labels have arrived for both arms (outcomes, at least
   :data:`EARLY_REQUESTS` each) and the candidate's accuracy/reward is significantly lower.
4. **Hold** until the candidate has ``min_requests`` requests in this step and the step has
   lasted ``step_duration``. A candidate whose error rate is above the limit without
   significance also holds — up to 4 × ``min_requests``, after which it is rolled back.
5. Otherwise **advance** to the next weight, or **promote** (the ``champion`` alias moves to
   the candidate) after the last step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from modelplane.core.clock import utcnow
from modelplane.core.periodic import Periodic
from modelplane.errors import Conflict, RolloutNotFound
from modelplane.traffic.commands import DecideRollout
from modelplane.traffic.live import Counters, slower_than
from modelplane.traffic.rollout import Rollout
from modelplane.traffic.views import BASELINE, CANDIDATE, TrafficViews

__all__ = [
    "EARLY_REQUESTS",
    "LATENCY_SLACK_MS",
    "ControllerJob",
    "RolloutController",
    "StepDecision",
]

log = logging.getLogger(__name__)

EARLY_REQUESTS = 30
"""Fewest candidate requests on which an error-rate or outcome rollback may be decided."""

LATENCY_SLACK_MS = 1.0
"""Latency differences smaller than this never roll back (timer and scheduling noise)."""

Action = Literal["advance", "promote", "rollback", "hold"]


class _Bus(Protocol):
    def handle(self, message: Any) -> Any: ...


@dataclass(frozen=True)
class StepDecision:
    """What the controller concluded about a rollout's current step, with its evidence."""

    model: str
    key: str
    step: int
    weight: int
    action: Action
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rollout": self.key,
            "step": self.step,
            "weight": self.weight,
            "action": self.action,
            "reason": self.reason,
            "evidence": self.evidence,
        }

    def line(self) -> str:
        """One line for people: ``step 2 (25 %): advance — reason``."""
        return f"step {self.step + 1} ({self.weight} %): {self.action} — {self.reason}"


def _arm(c: Counters) -> dict[str, Any]:
    return {
        "requests": c.requests,
        "errors": c.errors,
        "error_rate": round(c.error_rate, 6),
        "latency_p50_ms": _round(c.p(0.5)),
        "latency_p99_ms": _round(c.p(0.99)),
        "outcomes": c.outcome_n,
        "outcome_mean": round(c.outcome_sum / c.outcome_n, 6) if c.outcome_n else None,
    }


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _binomial_greater(errors: int, n: int, limit: float) -> float:
    """P(X >= errors) for X ~ Binomial(n, limit): is the error rate above the limit?"""
    from scipy.stats import binomtest

    return float(binomtest(errors, n, limit, alternative="greater").pvalue)


def _proportion_greater(x_b: int, n_b: int, x_a: int, n_a: int) -> float:
    """One-sided p-value that rate b > rate a (pooled two-proportion z-test)."""
    from scipy.stats import norm

    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0.0:
        return 1.0 if x_b / n_b <= x_a / n_a else 0.0
    z = (x_b / n_b - x_a / n_a) / se
    return float(norm.sf(z))


class RolloutController:
    """Decides and applies the next move of every running rollout (see the module docstring).

    ``bus`` takes :class:`DecideRollout`; ``views`` reads rollouts and counters; ``clock`` is
    injectable so a test runs a 5-minute step in no time.
    """

    def __init__(
        self,
        bus: _Bus,
        views: TrafficViews,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._bus = bus
        self._views = views
        self._clock = clock

    # -- judging -----------------------------------------------------------------------------
    def evaluate(self, rollout: Rollout) -> StepDecision:
        cand_step = self._views.rollout_counters(rollout)
        cand = cand_step[CANDIDATE]
        base = cand_step[BASELINE]
        base_source = "this step"
        if base.requests < EARLY_REQUESTS and rollout.step_index > 0:
            base = self._views.rollout_totals(rollout)[BASELINE]
            base_source = "all steps"
        elapsed = (self._clock() - rollout.step_started_at).total_seconds()
        evidence: dict[str, Any] = {
            "candidate": _arm(cand),
            "baseline": _arm(base),
            "baseline_from": base_source,
            "elapsed_s": round(elapsed, 3),
        }

        def decision(action: Action, reason: str) -> StepDecision:
            return StepDecision(
                model=rollout.model,
                key=rollout.key,
                step=rollout.step_index,
                weight=rollout.weight,
                action=action,
                reason=reason,
                evidence=evidence,
            )

        limit = rollout.max_error_rate
        alpha = rollout.alpha
        rate = cand.error_rate
        over_limit = False
        if cand.requests >= EARLY_REQUESTS:
            p_limit = _binomial_greater(cand.errors, cand.requests, limit)
            evidence["p_error_above_limit"] = round(p_limit, 6)
            if p_limit < alpha:
                return decision(
                    "rollback",
                    f"error rate {rate:.2%} of {cand.requests} requests is above the "
                    f"{limit:.2%} limit (binomial test p={p_limit:.2g} < {alpha:g})",
                )
            if rate > limit:
                over_limit = True
                if base.requests >= EARLY_REQUESTS:
                    p_base = _proportion_greater(
                        cand.errors, cand.requests, base.errors, base.requests
                    )
                    evidence["p_error_above_baseline"] = round(p_base, 6)
                    if p_base < alpha:
                        return decision(
                            "rollback",
                            f"error rate {rate:.2%} is above the {limit:.2%} limit and above "
                            f"the baseline's {base.error_rate:.2%} (z-test p={p_base:.2g})",
                        )
                if cand.requests >= 4 * rollout.min_requests:
                    return decision(
                        "rollback",
                        f"error rate {rate:.2%} stayed above the {limit:.2%} limit over "
                        f"{cand.requests} requests",
                    )

        ok = cand.requests - cand.errors
        cand_p99 = cand.p(0.99)
        base_p99 = base.p(0.99)
        if (
            ok >= rollout.min_requests
            and cand_p99 is not None
            and base_p99 is not None
            and base.requests - base.errors >= EARLY_REQUESTS
        ):
            ratio = cand_p99 / base_p99 if base_p99 > 0 else 1.0
            evidence["latency_ratio"] = round(ratio, 4)
            bound = max(rollout.max_latency_ratio * base_p99, base_p99 + LATENCY_SLACK_MS)
            slower = slower_than(cand.buckets, bound)
            p_slow = _binomial_greater(slower, ok, 0.01)
            evidence["latency_bound_ms"] = round(bound, 4)
            evidence["slower_than_bound"] = slower
            evidence["p_p99_above_bound"] = round(p_slow, 6)
            if p_slow < alpha:
                return decision(
                    "rollback",
                    f"p99 latency {cand_p99:.2f} ms is {ratio:.2f}× the baseline's "
                    f"{base_p99:.2f} ms (limit {rollout.max_latency_ratio:g}×): {slower} of "
                    f"{ok} requests slower than {bound:.2f} ms (binomial test p={p_slow:.2g})",
                )

        if cand.outcome_n >= EARLY_REQUESTS and base.outcome_n >= EARLY_REQUESTS:
            binary = all(
                c.outcome_sumsq == c.outcome_sum for c in (cand, base)
            )  # 0/1 outcomes: Σx² = Σx
            if binary:
                p_worse = _proportion_greater(
                    round(base.outcome_sum), base.outcome_n, round(cand.outcome_sum), cand.outcome_n
                )
                evidence["p_outcome_worse"] = round(p_worse, 6)
                if p_worse < alpha:
                    return decision(
                        "rollback",
                        f"outcome {cand.outcome_sum / cand.outcome_n:.3f} is significantly below "
                        f"the baseline's {base.outcome_sum / base.outcome_n:.3f} "
                        f"(z-test p={p_worse:.2g})",
                    )

        if cand.requests < rollout.min_requests:
            return decision(
                "hold",
                f"waiting for traffic: {cand.requests} of {rollout.min_requests} requests",
            )
        if over_limit:
            return decision(
                "hold",
                f"error rate {rate:.2%} is above the {limit:.2%} limit but not significantly "
                "yet; gathering more requests",
            )
        if elapsed < rollout.step_duration_s:
            return decision(
                "hold",
                f"healthy; step lasts {rollout.step_duration_s:g} s, "
                f"{rollout.step_duration_s - elapsed:.0f} s to go",
            )
        summary = f"error rate {rate:.2%} ≤ {limit:.2%} over {cand.requests} requests" + (
            f", p99 {evidence['latency_ratio']:.2f}× baseline"
            if "latency_ratio" in evidence
            else ""
        )
        if rollout.step_index + 1 >= len(rollout.steps):
            return decision("promote", f"healthy at 100 %: {summary}")
        return decision(
            "advance",
            f"healthy: {summary}; next {rollout.steps[rollout.step_index + 1]} %",
        )

    # -- acting ------------------------------------------------------------------------------
    def apply(self, decision: StepDecision) -> bool:
        """Carry out a decision; False when another controller moved the rollout first."""
        if decision.action == "hold":
            return True
        try:
            self._bus.handle(
                DecideRollout(
                    model=decision.model,
                    decision=decision.action,
                    reason=decision.reason,
                    evidence=decision.evidence,
                    expected_step=decision.step,
                )
            )
        except (Conflict, RolloutNotFound):
            return False
        return True

    def step(self, rollout: Rollout) -> StepDecision:
        decision = self.evaluate(rollout)
        self.apply(decision)
        return decision

    def tick(self) -> list[StepDecision]:
        """Evaluate and act on every running rollout once."""
        decisions = []
        for rollout in self._views.running_rollouts():
            try:
                decisions.append(self.step(rollout))
            except Exception:
                log.exception("could not evaluate rollout %s", rollout.key)
        return decisions

    def run(
        self,
        model: str,
        *,
        interval_s: float = 1.0,
        on_decision: Callable[[StepDecision], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Rollout:
        """Drive ``model``'s latest rollout until it is promoted, rolled back or aborted.

        ``on_decision`` sees every move this controller made, and a hold whenever its reason
        changes kind (a move another controller made first is not reported as its own).
        """
        last_hold = ""
        while True:
            rollout = self._views.latest_rollout(model)
            if rollout.status != "running" or (should_stop is not None and should_stop()):
                return rollout
            decision = self.evaluate(rollout)
            if not self.apply(decision):
                continue  # another controller moved it first: look again
            if on_decision is not None:
                kind = decision.reason.split(":")[0].split(";")[0]
                if decision.action != "hold" or kind != last_hold:
                    on_decision(decision)
                last_hold = kind if decision.action == "hold" else ""
            if decision.action == "hold":
                sleep(interval_s)


class ControllerJob:
    """Runs :meth:`RolloutController.tick` every ``interval_s`` beside a server (DB work in a
    thread), started and stopped with it.

    Several replicas may run it at once: the rollout aggregate refuses a second decision on a
    step (``expected_step``), so a double move cannot happen. Errors are logged, never raised.
    """

    def __init__(self, controller: RolloutController, interval_s: float) -> None:
        self._controller = controller
        self._loop = Periodic(
            self._tick, interval_s, name="modelplane-canary", log=log,
            failure="canary controller tick failed",
        )  # fmt: skip

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _tick(self) -> None:
        for decision in await asyncio.to_thread(self._controller.tick):
            if decision.action != "hold":
                log.info("canary: %s", decision.line())
