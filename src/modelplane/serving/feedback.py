"""Feedback: the outcome of one prediction, stored and counted for the arm that answered it.

**Feedback**: the router remembers the last 100 000 routed requests (request id → subject,
variant, the single-row prediction as a number). ``POST /feedback`` turns a label into an
outcome (1 when the prediction equals it, else 0) or takes a reward as is, stores the row
(subject and variant unknown when another replica served it: the report joins those with the
prediction log by request id, and counts apart the ones it cannot match) and counts it for the
request's variant. Values are bounded (:data:`LABEL_LIMIT`, :data:`REWARD_LIMIT`, finite); a
request has one outcome — a second is a 409 unless it asks to overwrite, which is recorded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelplane.serving.ports import TrafficRecorder

__all__ = ["LABEL_LIMIT", "RECENT_REQUESTS", "REWARD_LIMIT", "FeedbackMemory"]

#: A label is a finite number with ``|label| <= LABEL_LIMIT`` (class ids, 0/1, a target value).
LABEL_LIMIT = 1e9
#: A reward is a finite number in ``[-REWARD_LIMIT, REWARD_LIMIT]``: large enough for any
#: business metric, small enough that no single outcome swamps a bandit's or a test's sums.
REWARD_LIMIT = 1e6
RECENT_REQUESTS = 100_000


@dataclass(slots=True)
class _Recent:
    subject: str
    variant: str
    predicted: float | None
    scored: bool = False


class FeedbackMemory:
    """The last :data:`RECENT_REQUESTS` routed requests of this replica, and their outcomes."""

    def __init__(self, recorder: TrafficRecorder) -> None:
        self._recorder = recorder
        self._recent: OrderedDict[str, _Recent] = OrderedDict()

    def remember(
        self, request_id: str, subject: str, variant: str, prediction: np.ndarray[Any, Any] | None
    ) -> None:
        """Keep what a later label or reward of this routed request needs."""
        predicted: float | None = None
        if prediction is not None and prediction.size == 1:
            try:
                predicted = float(prediction.reshape(-1)[0])
            except (TypeError, ValueError):
                predicted = None
        recent = self._recent
        recent[request_id] = _Recent(subject, variant, predicted)
        if len(recent) > RECENT_REQUESTS:
            recent.popitem(last=False)

    async def feedback(
        self,
        request_id: str,
        *,
        label: float | None = None,
        reward: float | None = None,
        overwrite: bool = False,
    ) -> tuple[str | None, int]:
        """Store one outcome, then count it for the request's variant when this replica knows
        the request; returns (that variant or None, the stored revision).

        A second outcome for a request raises Conflict (409) unless ``overwrite``; the live
        counters count a request's first outcome only (the stored row, which the report reads,
        holds the latest and what it replaced).
        """
        known = self._recent.get(request_id)
        subject = variant = None
        if known is not None:
            subject, variant = known.subject, known.variant
        revision = await asyncio.to_thread(
            self._recorder.store_feedback,
            request_id,
            label=label,
            reward=reward,
            subject=subject,
            variant=variant,
            overwrite=overwrite,
        )
        if known is not None and not known.scored:
            value: float | None = None
            if reward is not None:
                value = reward
            elif label is not None and known.predicted is not None:
                value = 1.0 if known.predicted == label else 0.0
            if value is not None:
                known.scored = True
                self._recorder.outcome(known.subject, known.variant, value)
        return variant, revision
