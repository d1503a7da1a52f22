"""Safe delivery on the serving side: the parts that follow experiments, rollouts and shadows.

:class:`TrafficRouter` groups them for the server and its tests: the routing lives in the
serving view (``view.py``: one loop reads it with the models' aliases, loads and warms every
version a new table routes to, mirrors to or keeps, then swaps it in), live counters go to the
traffic recorder (a port: per-arm requests, server-side errors, latency; flushed to the totals
all replicas share), shadows to ``shadow.py``, feedback to ``feedback.py``.

On the request path (``InferenceService.infer``) a bare-name request of a routed model costs a
dict lookup and a bucket (``ServingView.resolve``: ``route.pick(unit_id)`` names the arm, its
version answers), and the recorder counts it (an error when the server failed it — client input
errors are not counted). Requests of other models pay one dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.errors import ModelplaneError
from modelplane.serving.feedback import LABEL_LIMIT, REWARD_LIMIT, FeedbackMemory
from modelplane.serving.ports import Route, Routing, TrafficRecorder
from modelplane.serving.shadow import ShadowRunner, compare_outputs
from modelplane.serving.view import ServingView

__all__ = [
    "LABEL_LIMIT",
    "REWARD_LIMIT",
    "TrafficRouter",
    "compare_outputs",
    "server_side",
]


def server_side(exc: BaseException) -> bool:
    """Whether a failure is the server's (counted as an arm's error) rather than the caller's."""
    if isinstance(exc, ModelplaneError):
        return exc.status >= 500
    return isinstance(exc, Exception)


class TrafficRouter:
    """This replica's delivery: the view's routing, the recorder, the shadows, the feedback."""

    def __init__(
        self,
        view: ServingView,
        recorder: TrafficRecorder,
        shadows: ShadowRunner,
        memory: FeedbackMemory,
    ) -> None:
        self.view = view
        self.live = recorder
        self.shadow_runner = shadows
        self.memory = memory
        self.feedback = memory.feedback

    @property
    def table(self) -> Routing:
        return self.view.routing

    @property
    def routes(self) -> Mapping[str, Route]:
        return self.view.routes

    async def refresh(self) -> None:
        """Re-read the models and the routing table now (what the view's loop does)."""
        await self.view.refresh()

    async def flush(self) -> None:
        """Send the counters now (what the recorder's loop does)."""
        await self.live.flush()

    @property
    def shadow_pending(self) -> int:
        """Shadow calls queued or running."""
        return self.shadow_runner.shadow_pending

    @property
    def shadow_dropped(self) -> int:
        return self.shadow_runner.shadow_dropped

    async def start(self) -> None:
        await self.live.start()
        await self.shadow_runner.start()

    async def stop(self) -> None:
        """Stop the shadows, then write the counters once more."""
        await self.shadow_runner.stop()
        await self.live.stop()
