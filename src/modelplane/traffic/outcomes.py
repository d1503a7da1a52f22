"""An experiment's outcome values per arm, from the stored feedback and the prediction log.

:func:`match_feedback` gathers the outcome values from ``POST /feedback`` rows: those that name
the experiment's subject count for their variant; those whose replica did not know the request
are joined to the prediction log by request id. Feedback for a request id that neither a replica
nor the prediction log knows is never mixed into an arm: the report counts it apart
(``feedback.unmatched``) beside the rows matched to an arm (``feedback.matched``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from modelplane.traffic.experiment import Experiment
    from modelplane.traffic.views import TrafficViews

__all__ = ["FeedbackOutcomes", "load_outcomes", "match_feedback", "outcome_of"]


def outcome_of(
    metric: str, prediction: Any, label: float | None, reward: float | None
) -> float | None:
    """One row's outcome: 1/0 for a correct/wrong prediction (accuracy) or the reward."""
    if metric == "reward":
        return float(reward) if reward is not None and math.isfinite(float(reward)) else None
    if label is None or prediction is None:
        return None
    while isinstance(prediction, list) and len(prediction) == 1:
        prediction = prediction[0]
    if isinstance(prediction, list | dict):
        return None  # a vector per row (probabilities): not comparable with a label
    if isinstance(prediction, float) and not math.isfinite(prediction):
        return None  # NaN (kept by the prediction log since issue 13; older files said null)
    try:
        return 1.0 if float(prediction) == float(label) else 0.0
    except (TypeError, ValueError):
        return 1.0 if str(prediction) == str(label) else 0.0


def _first_output_row0(outputs: Any) -> Any:
    if isinstance(outputs, str | bytes):
        import orjson

        outputs = orjson.loads(outputs)
    if not isinstance(outputs, dict) or not outputs:
        return None
    # the model's prediction output when the log has it (what serving scores labels with)
    first = outputs["predict"] if "predict" in outputs else next(iter(outputs.values()))
    if isinstance(first, list):
        return first[0] if first else None
    return first


def _predictions(
    frame: pd.DataFrame, request_ids: Iterable[str], experiment: str | None
) -> dict[str, tuple[str | None, Any]]:
    """request id → (variant, prediction) of the log rows of ``request_ids``.

    With ``experiment`` only the rows the server routed for that experiment count.
    """
    wanted = set(request_ids)
    if frame.empty or not wanted:
        return {}
    rows = frame[frame["request_id"].isin(wanted)]
    if experiment is not None:
        if "experiment" not in rows.columns:
            return {}
        rows = rows[rows["experiment"] == experiment]
    has_variant = "variant" in rows.columns
    out: dict[str, tuple[str | None, Any]] = {}
    for record in rows.to_dict("records"):
        variant = record.get("variant") if has_variant else None
        if not isinstance(variant, str):
            variant = None
        out[str(record["request_id"])] = (variant, _first_output_row0(record.get("outputs")))
    return out


@dataclass(frozen=True)
class FeedbackOutcomes:
    """An experiment's outcome values per arm from the stored feedback, and what is left out.

    ``matched``: feedback rows attributed to an arm of the experiment (by the replica that
    served the request, or through the prediction log). ``unmatched``: rows of request ids that
    no replica knew and the prediction log does not hold (or no log to look in) — posted for a
    request never served, or one whose log is gone; never counted for any arm. Rows of other
    experiments' or models' requests are neither.
    """

    per_arm: dict[str, list[float]]
    matched: int
    unmatched: int


def match_feedback(
    views: TrafficViews,
    experiment: Experiment,
    *,
    prediction_log: str | None = None,
    read_log: Callable[[str, str | None], pd.DataFrame] | None = None,
) -> FeedbackOutcomes:
    """Outcome values per arm of ``experiment`` from the stored feedback (see the module doc).

    ``prediction_log`` is the log's location (``settings.resolved_prediction_log``);
    ``read_log(location, model)`` reads it (default :func:`modelplane.predlog.read_log`;
    ``model`` None: every model's, read only to tell an unknown request id from another
    model's). Rows without a usable outcome (no label for accuracy, no reward, a prediction not
    comparable with a label) give no value.
    """
    arms = {a.name for a in experiment.arms}
    out: dict[str, list[float]] = {a.name: [] for a in experiment.arms}
    matched = unmatched = 0
    rows = views.store.feedback()
    direct = [r for r in rows if r.get("subject") == experiment.subject]
    loose = [r for r in rows if r.get("subject") is None]
    need_log = loose or (experiment.metric == "accuracy" and direct)
    frame = None
    if need_log and prediction_log is not None:
        if read_log is None:
            from modelplane.predlog import read_log as _read

            read_log = _read
        frame = read_log(prediction_log, experiment.model)
    direct_predictions: dict[str, tuple[str | None, Any]] = {}
    loose_predictions: dict[str, tuple[str | None, Any]] = {}
    seen: set[str] = set()
    if frame is not None:
        if experiment.metric == "accuracy":
            direct_predictions = _predictions(frame, (r["request_id"] for r in direct), None)
        loose_predictions = _predictions(frame, (r["request_id"] for r in loose), experiment.name)
        seen = _logged_ids(frame, (r["request_id"] for r in loose))
    for r in direct:
        variant = r.get("variant")
        if variant not in arms:
            unmatched += 1
            continue
        matched += 1
        prediction = direct_predictions.get(r["request_id"], (None, None))[1]
        value = outcome_of(experiment.metric, prediction, r.get("label"), r.get("reward"))
        if value is not None:
            out[variant].append(value)
    unseen: list[str] = []
    for r in loose:
        found = loose_predictions.get(r["request_id"])
        if found is None or found[0] not in arms:
            if r["request_id"] not in seen:
                unseen.append(r["request_id"])
            continue
        matched += 1
        variant_name = found[0]
        assert variant_name is not None
        value = outcome_of(experiment.metric, found[1], r.get("label"), r.get("reward"))
        if value is not None:
            out[variant_name].append(value)
    if unseen and prediction_log is not None and read_log is not None:
        # Not in this model's log: another model's request, or one nobody served.
        unseen_set = set(unseen) - _logged_ids(read_log(prediction_log, None), unseen)
        unmatched += len(unseen_set)
    else:
        unmatched += len(unseen)
    return FeedbackOutcomes(out, matched, unmatched)


def _logged_ids(frame: pd.DataFrame, request_ids: Iterable[str]) -> set[str]:
    wanted = set(request_ids)
    if frame.empty or not wanted:
        return set()
    found = frame["request_id"][frame["request_id"].isin(wanted)]
    return {str(x) for x in found}


def load_outcomes(
    views: TrafficViews,
    experiment: Experiment,
    *,
    prediction_log: str | None = None,
    read_log: Callable[[str, str | None], pd.DataFrame] | None = None,
) -> dict[str, list[float]]:
    """Outcome values per arm of ``experiment`` (:func:`match_feedback`'s ``per_arm``)."""
    return match_feedback(
        views, experiment, prediction_log=prediction_log, read_log=read_log
    ).per_arm
