"""Bulkhead, timeout and circuit breaker: what keeps serving up when a model misbehaves."""

from __future__ import annotations

import asyncio
import logging

import pytest

from modelplane.errors import DeadlineExceeded, Overloaded
from modelplane.serving.resilience import Bulkhead, CircuitBreaker, with_timeout
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


# -- bulkhead ----------------------------------------------------------------------------------


class TestBulkhead:
    async def test_at_most_max_concurrency_inside_and_the_rest_wait_in_order(self) -> None:
        bulkhead = Bulkhead(max_concurrency=2, max_queue=10)
        release = asyncio.Event()
        inside = 0
        peak = 0
        order: list[int] = []

        async def request(i: int) -> None:
            nonlocal inside, peak
            async with bulkhead.slot():
                order.append(i)
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(request(i)) for i in range(6)]
        await settle()
        assert (bulkhead.in_flight, bulkhead.waiting) == (2, 4)
        release.set()
        await asyncio.gather(*tasks)
        assert peak == 2
        assert order == list(range(6))
        assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)

    async def test_a_full_queue_is_refused_at_once_with_retry_after(self) -> None:
        bulkhead = Bulkhead(max_concurrency=1, max_queue=1, name="fraud")
        hold = asyncio.Event()

        async def request() -> None:
            async with bulkhead.slot():
                await hold.wait()

        tasks = [asyncio.create_task(request()) for _ in range(2)]
        await settle()
        with pytest.raises(Overloaded, match="fraud") as caught:
            await request()
        assert caught.value.retry_after == 1.0  # nothing measured yet: the floor
        assert caught.value.status == 503
        hold.set()
        await asyncio.gather(*tasks)

    async def test_retry_after_follows_recent_service_time(self) -> None:
        clock = FakeClock()
        bulkhead = Bulkhead(max_concurrency=1, max_queue=1, clock=clock)
        async with bulkhead.slot():
            clock.advance(3.0)  # a request that held its slot 3 s
        hold = asyncio.Event()

        async def request() -> None:
            async with bulkhead.slot():
                await hold.wait()

        tasks = [asyncio.create_task(request()) for _ in range(2)]
        await settle()
        with pytest.raises(Overloaded) as caught:
            await request()
        assert caught.value.retry_after == 6.0  # one waiting + the newcomer, 3 s each
        hold.set()
        await asyncio.gather(*tasks)

    async def test_cancelling_a_waiter_gives_its_place_back(self) -> None:
        bulkhead = Bulkhead(max_concurrency=1, max_queue=1)
        hold = asyncio.Event()

        async def request() -> None:
            async with bulkhead.slot():
                await hold.wait()

        holder = asyncio.create_task(request())
        waiter = asyncio.create_task(request())
        await settle()
        assert bulkhead.waiting == 1
        waiter.cancel()
        await settle()
        assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
        replacement = asyncio.create_task(request())  # the queue has room again
        await settle()
        assert bulkhead.waiting == 1
        hold.set()
        await asyncio.gather(holder, replacement)
        assert waiter.cancelled()
        assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)

    async def test_a_waiter_cancelled_just_as_it_got_the_slot_passes_it_on(self) -> None:
        bulkhead = Bulkhead(max_concurrency=1, max_queue=2)
        entered: list[str] = []
        leave = asyncio.Event()

        async def request(name: str) -> None:
            async with bulkhead.slot():
                entered.append(name)
                await leave.wait()

        first = asyncio.create_task(request("first"))
        second = asyncio.create_task(request("second"))
        third = asyncio.create_task(request("third"))
        await settle()
        leave.set()
        await asyncio.sleep(0)  # first leaves and hands its slot to second...
        second.cancel()  # ...which is cancelled before it could run
        await asyncio.gather(first, third, second, return_exceptions=True)
        assert entered == ["first", "third"]
        assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)

    async def test_an_error_inside_releases_the_slot(self) -> None:
        bulkhead = Bulkhead(max_concurrency=1, max_queue=0)
        with pytest.raises(RuntimeError):
            async with bulkhead.slot():
                raise RuntimeError("model crashed")
        async with bulkhead.slot():
            assert bulkhead.in_flight == 1
        assert bulkhead.in_flight == 0


# -- timeout -----------------------------------------------------------------------------------


class TestWithTimeout:
    async def test_past_the_limit_the_work_is_cancelled_and_deadline_exceeded_raised(
        self,
    ) -> None:
        cancelled = False

        async def slow() -> int:
            nonlocal cancelled
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled = True
                raise
            return 1

        with pytest.raises(DeadlineExceeded, match=r"prediction of fraud/3 .* 0\.01 s") as caught:
            await with_timeout(slow(), 0.01, what="prediction of fraud/3")
        assert caught.value.status == 504
        assert cancelled

    async def test_work_within_the_limit_returns_its_result(self) -> None:
        async def quick() -> str:
            return "ok"

        assert await with_timeout(quick(), 5, what="x") == "ok"
        assert await with_timeout(quick(), None, what="x") == "ok"

    async def test_the_works_own_timeout_error_is_not_a_deadline(self) -> None:
        async def redis_call() -> None:
            raise TimeoutError("redis did not answer")

        with pytest.raises(TimeoutError, match="redis"):
            await with_timeout(redis_call(), 5, what="cache read")


# -- circuit breaker ---------------------------------------------------------------------------


def failures(breaker: CircuitBreaker, n: int, *, ok: int = 0) -> None:
    for _ in range(ok):
        assert breaker.allow()
        breaker.record(True)
    for _ in range(n):
        assert breaker.allow()
        breaker.record(False)


class TestCircuitBreaker:
    def test_opens_when_the_error_share_reaches_the_threshold(self) -> None:
        clock = FakeClock()
        changes: list[str] = []
        breaker = CircuitBreaker(clock=clock, on_change=changes.append)
        failures(breaker, 9, ok=10)
        assert breaker.state == "closed"  # 9 of 19: not enough requests yet
        failures(breaker, 1)
        assert breaker.state == "open"  # 10 of 20 = 0.5
        assert not breaker.allow()
        assert changes == ["open"]

    def test_min_requests_is_respected_even_if_all_fail(self) -> None:
        breaker = CircuitBreaker(clock=FakeClock(), min_requests=20)
        failures(breaker, 19)
        assert breaker.state == "closed"
        failures(breaker, 1)
        assert breaker.state == "open"

    def test_a_low_error_share_keeps_it_closed(self) -> None:
        breaker = CircuitBreaker(clock=FakeClock())
        failures(breaker, 10, ok=100)
        assert breaker.state == "closed"
        assert breaker.window == (110, 10)

    def test_open_then_half_open_probes_then_closed(self) -> None:
        clock = FakeClock()
        changes: list[str] = []
        breaker = CircuitBreaker(clock=clock, open_s=10, half_open_probes=3)
        breaker.on_change = changes.append
        failures(breaker, 20)
        clock.advance(9.9)
        assert breaker.state == "open"
        assert not breaker.allow()
        clock.advance(0.1)
        assert breaker.state == "half_open"
        assert [breaker.allow() for _ in range(4)] == [True, True, True, False]
        breaker.record(True)
        breaker.record(True)
        assert breaker.state == "half_open"
        breaker.record(True)
        assert breaker.state == "closed"
        assert breaker.allow()
        assert breaker.window == (0, 0)  # a fresh start
        assert changes == ["open", "half_open", "closed"]

    def test_a_failed_probe_opens_it_again(self) -> None:
        clock = FakeClock()
        changes: list[str] = []
        breaker = CircuitBreaker(clock=clock, open_s=10, on_change=changes.append)
        failures(breaker, 20)
        clock.advance(10)
        assert breaker.allow()
        assert breaker.allow()
        breaker.record(True)
        breaker.record(False)
        assert breaker.state == "open"
        assert not breaker.allow()
        clock.advance(10)
        assert breaker.state == "half_open"
        assert changes == ["open", "half_open", "open", "half_open"]

    def test_probes_that_never_report_back_are_forgotten_after_open_s(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(clock=clock, open_s=10, half_open_probes=1)
        failures(breaker, 20)
        clock.advance(10)
        assert breaker.allow()  # this probe's caller goes away without recording
        assert not breaker.allow()
        clock.advance(10)
        assert breaker.allow()
        breaker.record(True)
        assert breaker.state == "closed"

    def test_results_arriving_while_open_are_ignored(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(clock=clock, open_s=10)
        failures(breaker, 20)
        for _ in range(50):
            breaker.record(True)
        assert breaker.state == "open"

    def test_the_window_slides_old_failures_out(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(clock=clock, window_s=30, min_requests=20)
        failures(breaker, 15)
        clock.advance(20)
        failures(breaker, 4)
        assert breaker.window == (19, 19)
        clock.advance(11)  # the first 15 are now older than 30 s
        assert breaker.window == (4, 4)
        failures(breaker, 15)
        assert breaker.state == "closed"  # 19 in the window, not 34
        failures(breaker, 1)
        assert breaker.state == "open"

    def test_a_long_silence_empties_the_window(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(clock=clock)
        failures(breaker, 19)
        clock.advance(3600)
        assert breaker.window == (0, 0)
        failures(breaker, 19)
        assert breaker.state == "closed"

    def test_a_failing_on_change_callback_does_not_stop_the_transition(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(state: str) -> None:
            raise RuntimeError("metrics down")

        breaker = CircuitBreaker(clock=FakeClock(), on_change=broken)
        with caplog.at_level(logging.ERROR):
            failures(breaker, 20)
        assert breaker.state == "open"
        assert "on_change" in caplog.text

    @pytest.mark.parametrize(
        "kwargs",
        [{"window_s": 0}, {"error_rate": 0}, {"error_rate": 1.5}, {"min_requests": 0}],
    )
    def test_nonsense_settings_are_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="must be"):
            CircuitBreaker(**kwargs)  # type: ignore[arg-type]
