"""The report of an experiment: per-variant numbers, comparisons with the control, a verdict.

:func:`experiment_report` is pure: it takes the experiment, its live counters per arm and
(optionally) the outcome values per arm, and computes everything with :mod:`.stats`:

* per variant: requests, errors, error rate, latency p50/p99, outcomes, the metric with its
  confidence interval (Wilson for 0/1 outcomes, Student-t otherwise);
* per non-control variant against the control (the first arm): the two-proportion z-test when
  every outcome is 0 or 1, else Welch's t-test — difference ``variant - control`` and p-value;
* the minimum sample per arm from a power calculation (``mde``, ``alpha``, ``power`` of the
  experiment): for rates from the control's rate (0.5 when it is unknown, 0 or 1), for means
  from the pooled standard deviation;
* a verdict per comparison (:func:`.stats.decide`): never a winner before every arm has the
  minimum sample;
* a sample-ratio-mismatch check of the request counts against the configured weights (not for
  bandits: their weights move by design);
* for a shadow: compared calls, agreement rate, mean absolute difference, errors, dropped copies
  and the shadow's latency.

Each of those parts is computed in :mod:`modelplane.traffic.report_stats`; the outcome values
come from :mod:`modelplane.traffic.outcomes` (``POST /feedback`` rows, joined to the prediction
log where needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.traffic.experiment import Experiment
from modelplane.traffic.live import Counters
from modelplane.traffic.outcomes import match_feedback
from modelplane.traffic.report_stats import (
    Comparison,
    Outcomes,
    VariantReport,
    compare,
    conclusion,
    min_sample_size,
    srm_check,
    variant_report,
)
from modelplane.traffic.stats import SrmResult

if TYPE_CHECKING:
    from modelplane.traffic.views import TrafficViews

__all__ = ["ExperimentReport", "experiment_report", "report_of"]


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    model: str
    kind: str
    status: str
    metric: str
    bandit: bool
    mde: float
    alpha: float
    power: float
    variants: tuple[VariantReport, ...]
    comparisons: tuple[Comparison, ...]
    min_sample_size: int | None
    srm: SrmResult | None
    srm_note: str
    winner: str | None
    summary: str
    #: feedback rows matched to an arm, and rows of request ids no replica or log knows
    #: (None when the report was built from the counters alone)
    feedback_matched: int | None = None
    feedback_unmatched: int | None = None

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def sufficient(self) -> bool:
        """Every arm has reached the minimum sample (a shadow has no such thing)."""
        return bool(self.comparisons) and all(
            c.decision != "insufficient_data" for c in self.comparisons
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "model": self.model,
            "kind": self.kind,
            "status": self.status,
            "metric": self.metric,
            "bandit": self.bandit,
            "mde": self.mde,
            "alpha": self.alpha,
            "power": self.power,
            "control": self.control,
            "variants": [v.to_dict() for v in self.variants],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "min_sample_size": self.min_sample_size,
            "sufficient": self.sufficient,
            "srm": self.srm.to_dict() if self.srm is not None else None,
            "srm_note": self.srm_note,
            "winner": self.winner,
            "summary": self.summary,
            "feedback": (
                None
                if self.feedback_matched is None
                else {"matched": self.feedback_matched, "unmatched": self.feedback_unmatched}
            ),
        }


# --------------------------------------------------------------------------- the report


def experiment_report(
    experiment: Experiment,
    counters: Mapping[str, Counters],
    outcomes: Mapping[str, Sequence[float]] | None = None,
    *,
    feedback: tuple[int, int] | None = None,
) -> ExperimentReport:
    """The report of ``experiment`` from its counters and outcome values (see the module doc).

    ``outcomes`` maps arm name → outcome values (from :func:`.outcomes.load_outcomes`);
    without it the outcome sums the replicas keep in the counters are used. ``feedback`` is
    (matched, unmatched) feedback rows (:class:`.outcomes.FeedbackOutcomes`), reported as they
    are.
    """
    arms = experiment.arms
    per_arm = {a.name: counters.get(a.name, Counters()) for a in arms}
    stats: dict[str, Outcomes] = {}
    for arm in arms:
        if outcomes is not None:
            stats[arm.name] = Outcomes.of_values(list(outcomes.get(arm.name, ())))
        else:
            stats[arm.name] = Outcomes.of_counters(per_arm[arm.name])
    binary = experiment.metric == "accuracy" or all(s.binary for s in stats.values())

    variants = tuple(
        variant_report(
            a.name, a.version, a.weight, per_arm[a.name], stats[a.name], binary, experiment
        )
        for a in arms
    )

    def report(
        comparisons: tuple[Comparison, ...],
        min_n: int | None,
        srm: SrmResult | None,
        srm_note: str,
        winner: str | None,
        text: str,
    ) -> ExperimentReport:
        return ExperimentReport(
            experiment=experiment.name,
            model=experiment.model,
            kind=experiment.kind,
            status=experiment.status,
            metric=experiment.metric,
            bandit=experiment.bandit,
            mde=experiment.mde,
            alpha=experiment.alpha,
            power=experiment.power,
            variants=variants,
            comparisons=comparisons,
            min_sample_size=min_n,
            srm=srm,
            srm_note=srm_note,
            winner=winner,
            summary=text,
            feedback_matched=feedback[0] if feedback is not None else None,
            feedback_unmatched=feedback[1] if feedback is not None else None,
        )

    if experiment.kind == "shadow":
        shadow = variants[0].shadow
        compared = shadow.compared if shadow is not None else 0
        agreement = shadow.agreement_rate if shadow is not None else None
        text = f"shadow of {experiment.model}/{variants[0].version}: " + (
            f"{agreement:.1%} agreement over {compared} compared requests"
            if agreement is not None
            else "no request compared yet"
        )
        return report((), None, None, "not applicable to a shadow", None, text)

    control = arms[0].name
    min_n = min_sample_size(experiment, stats, binary)
    comparisons = tuple(
        compare(control, arm.name, stats[control], stats[arm.name], binary, min_n, experiment)
        for arm in arms[1:]
    )
    srm, srm_note = srm_check(experiment, per_arm)
    winner, text = conclusion(experiment, variants, comparisons, min_n)
    if srm is not None and srm.mismatch:
        text += (
            f"; WARNING: sample ratio mismatch (p={srm.p_value:.2g}): the split is not the "
            "configured one, do not trust the results"
        )
    return report(comparisons, min_n, srm, srm_note, winner, text)


def report_of(
    views: TrafficViews, experiment: Experiment, *, prediction_log: str | None
) -> ExperimentReport:
    """The report of ``experiment`` from its counters and the feedback stored so far.

    Outcomes come from the feedback rows (joined with the prediction log where needed), or
    from the outcome sums the serving replicas keep in the counters when those hold more.
    """
    counters = views.experiment_counters(experiment)
    outcomes: dict[str, list[float]] | None = None
    feedback: tuple[int, int] | None = None
    if experiment.kind == "split":
        loaded = match_feedback(views, experiment, prediction_log=prediction_log)
        feedback = (loaded.matched, loaded.unmatched)
        loaded_n = sum(len(values) for values in loaded.per_arm.values())
        if loaded_n > 0 and loaded_n >= sum(c.outcome_n for c in counters.values()):
            outcomes = loaded.per_arm
    return experiment_report(experiment, counters, outcomes, feedback=feedback)
