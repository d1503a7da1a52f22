"""One background loop: call ``work`` every ``interval_s`` in a task, started and stopped with
its owner (the traffic recorder's flush, the canary controller, the serving view's refresh).

A failure of ``work`` is logged with ``failure`` and the loop goes on at the next interval;
``stop`` cancels the task and waits for it, so nothing runs after it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]


class Periodic:
    def __init__(
        self,
        work: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        name: str,
        log: logging.Logger,
        failure: str,
    ) -> None:
        self._work = work
        self._interval_s = interval_s
        self._name = name
        self._log = log
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._work()
            except Exception:
                self._log.exception(self._failure)
