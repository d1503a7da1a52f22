"""Adaptive micro-batching: batching ≡ one by one, no waiting at low load, batches under load."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelplane.errors import NotReady
from modelplane.serving.batcher import Batcher

pytestmark = pytest.mark.anyio


def rows_of(batch: Any) -> int:
    if isinstance(batch, dict):
        return len(next(iter(batch.values())))
    return len(batch)


def row_sums(batch: Any) -> Any:
    """A deterministic model for every input kind: ndarray → 1-D, DataFrame → Series,
    dict → dict of arrays."""
    if isinstance(batch, pd.DataFrame):
        return batch.sum(axis=1)
    if isinstance(batch, dict):
        return {"sum": batch["a"].sum(axis=1) + batch["b"], "first": batch["a"][:, 0]}
    return batch.sum(axis=1)


class Model:
    """Counts its calls (rows per call, from the executor thread); can hold, sleep or fail."""

    def __init__(
        self,
        *,
        gate: threading.Event | None = None,
        sleep_s: float = 0.0,
        fail_negative: bool = False,
    ) -> None:
        self.calls: list[int] = []
        self.threads: set[int] = set()
        self.gate = gate
        self.sleep_s = sleep_s
        self.fail_negative = fail_negative

    def __call__(self, batch: Any) -> Any:
        self.calls.append(rows_of(batch))
        self.threads.add(threading.get_ident())
        if self.gate is not None:
            self.gate.wait(5)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_negative and isinstance(batch, np.ndarray) and (batch < 0).any():
            raise ValueError("negative input")
        return row_sums(batch)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the model's first batch until set, so the next requests queue behind it."""
    event = threading.Event()
    yield event
    event.set()  # never leave an executor thread blocked


def assert_same(got: Any, expected: Any) -> None:
    if isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for name in expected:
            assert_same(got[name], expected[name])
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


# -- batching ≡ one by one --------------------------------------------------------------------


KINDS = st.tuples(
    st.sampled_from(["ndarray", "frame", "dict"]),
    st.integers(1, 3),  # width
    st.sampled_from([np.int64, np.float64]),
)


@st.composite
def requests(draw: st.DrawFn) -> list[Any]:
    """Concurrent requests of one to three kinds (so that some can share a batch and some
    cannot), each of 1-6 rows of distinct values."""
    kinds = draw(st.lists(KINDS, min_size=1, max_size=3))
    batch: list[Any] = []
    for _ in range(draw(st.integers(1, 30))):
        kind, width, dtype = draw(st.sampled_from(kinds))
        rows = draw(st.integers(1, 6))
        seed = draw(st.integers(0, 2**32 - 1))
        values = np.random.default_rng(seed).integers(-50, 50, size=(rows, width)).astype(dtype)
        if kind == "ndarray":
            batch.append(values)
        elif kind == "frame":
            batch.append(pd.DataFrame(values, columns=[f"c{i}" for i in range(width)]))
        else:
            batch.append({"a": values, "b": values[:, 0] * 2})
    return batch


class TestBatchingIsTransparent:
    @settings(max_examples=60, deadline=None)
    @given(
        batch=requests(),
        max_batch_size=st.sampled_from([1, 2, 5, 32]),
    )
    def test_each_caller_gets_what_predicting_its_own_rows_gives(
        self, batch: list[Any], max_batch_size: int
    ) -> None:
        async def scenario() -> tuple[list[Any], list[int]]:
            gate = threading.Event()
            model = Model(gate=gate)
            batcher = Batcher(model, max_batch_size=max_batch_size)
            tasks = [asyncio.create_task(batcher.submit(one)) for one in batch]
            await asyncio.sleep(0)  # all queued behind the first, held batch
            gate.set()
            try:
                return list(await asyncio.gather(*tasks)), model.calls
            finally:
                await batcher.close()

        results, calls = asyncio.run(scenario())
        for one, got in zip(batch, results, strict=True):
            assert_same(got, row_sums(one))
        big = [rows_of(one) for one in batch if rows_of(one) > max_batch_size]
        assert all(n <= max_batch_size or n in big for n in calls)
        assert sum(calls) == sum(rows_of(one) for one in batch)

    async def test_hundreds_of_concurrent_requests_with_distinct_inputs_get_their_own(
        self,
    ) -> None:
        model = Model()
        batcher = Batcher(model, max_batch_size=32)
        inputs = [np.full((1 + i % 4, 3), i, dtype=np.int64) for i in range(500)]
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        await batcher.close()
        for i, (x, got) in enumerate(zip(inputs, results, strict=True)):
            np.testing.assert_array_equal(got, np.full(len(x), 3 * i))
        assert len(model.calls) < 500
        assert max(model.calls) <= 32

    async def test_incompatible_requests_go_in_separate_batches(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        batcher = Batcher(model)
        first = asyncio.create_task(batcher.submit(np.ones((1, 2))))
        inputs = [np.ones((1, 2)), np.ones((2, 3)), np.ones((1, 2), dtype=np.int64)] * 2
        tasks = [asyncio.create_task(batcher.submit(x)) for x in inputs]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, *tasks)
        await batcher.close()
        for x, got in zip(inputs, results[1:], strict=True):
            assert_same(got, x.sum(axis=1))
        assert model.calls == [1, 2, 4, 2]  # held; float (1,2)×2; float (2,3)×2; int (1,2)×2


# -- when batches form -------------------------------------------------------------------------


class TestAdaptiveDispatch:
    async def test_sequential_requests_are_predicted_alone_without_waiting(self) -> None:
        seen: list[tuple[int, int]] = []
        model = Model()
        batcher = Batcher(
            model,
            max_batch_size=32,
            max_wait_ms=10_000,  # would be visible if an idle batcher ever waited for it
            on_batch=lambda n, rows: seen.append((n, rows)),
        )
        for i in range(20):
            got = await batcher.submit(np.full((2, 2), i))
            np.testing.assert_array_equal(got, [2 * i, 2 * i])
        await batcher.close()
        assert model.calls == [2] * 20
        assert seen == [(1, 2)] * 20

    async def test_under_load_batches_form_and_stay_within_max_batch_size(self) -> None:
        seen: list[tuple[int, int]] = []
        model = Model(sleep_s=0.02)
        batcher = Batcher(model, max_batch_size=8, on_batch=lambda n, r: seen.append((n, r)))
        results = await asyncio.gather(*(batcher.submit(np.full((1, 2), i)) for i in range(50)))
        await batcher.close()
        assert [float(r[0]) for r in results] == [2.0 * i for i in range(50)]
        assert len(model.calls) < 50
        assert max(model.calls) <= 8
        assert any(n > 1 for n in model.calls)
        assert sum(rows for _, rows in seen) == 50

    async def test_max_batch_size_one_predicts_each_request_alone(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        batcher = Batcher(model, max_batch_size=1)
        tasks = [asyncio.create_task(batcher.submit(np.ones((1, 3)))) for _ in range(10)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        await batcher.close()
        assert model.calls == [1] * 10

    async def test_a_request_larger_than_max_batch_size_goes_alone(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        batcher = Batcher(model, max_batch_size=4)
        inputs = [np.ones((1, 2)), np.ones((2, 2)), np.ones((10, 2)), np.ones((1, 2))]
        tasks = [asyncio.create_task(batcher.submit(x)) for x in inputs]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
        await batcher.close()
        assert [len(r) for r in results] == [1, 2, 10, 1]
        assert model.calls == [1, 2, 10, 1]

    async def test_predict_runs_off_the_event_loop(self) -> None:
        model = Model()
        batcher = Batcher(model)
        await batcher.submit(np.ones((1, 2)))
        await batcher.close()
        assert threading.get_ident() not in model.threads

    async def test_queue_depth_counts_waiting_rows(self, gate: threading.Event) -> None:
        batcher = Batcher(Model(gate=gate))
        tasks = [asyncio.create_task(batcher.submit(np.ones((2, 2)))) for _ in range(4)]
        await asyncio.sleep(0)
        assert (batcher.queue_depth, batcher.in_flight) == (6, 1)
        gate.set()
        await asyncio.gather(*tasks)
        await batcher.close()
        assert (batcher.queue_depth, batcher.in_flight) == (0, 0)

    async def test_with_spare_slots_a_full_batch_goes_while_another_runs(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            batcher = Batcher(
                model, max_batch_size=4, max_wait_ms=10_000, executor=pool, max_concurrency=2
            )
            held = asyncio.create_task(batcher.submit(np.ones((1, 2))))
            await asyncio.sleep(0)
            # One row lingers for a batch: the spare slot is not spent on it at once...
            tasks = [asyncio.create_task(batcher.submit(np.ones((1, 2))))]
            await asyncio.sleep(0)
            assert (batcher.in_flight, batcher.queue_depth) == (1, 1)
            # ...until the batch is full: then it goes, while the first is still held.
            tasks += [asyncio.create_task(batcher.submit(np.ones((1, 2)))) for _ in range(3)]
            await asyncio.sleep(0)
            assert (batcher.in_flight, batcher.queue_depth) == (2, 0)
            gate.set()
            await asyncio.gather(held, *tasks)
            await batcher.close()
        assert sorted(model.calls) == [1, 4]

    async def test_with_spare_slots_a_partial_batch_goes_after_max_wait_ms(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            batcher = Batcher(
                model, max_batch_size=4, max_wait_ms=1, executor=pool, max_concurrency=2
            )
            held = asyncio.create_task(batcher.submit(np.ones((1, 2))))
            await asyncio.sleep(0)
            lone = batcher.submit(np.ones((1, 2)))
            gate.set()  # both predictions may run now; the second waited for its timer
            np.testing.assert_array_equal(await lone, [2.0])
            await held
            await batcher.close()
        assert model.calls == [1, 1]


# -- failures, cancellation, shutdown -----------------------------------------------------------


class TestInline:
    """On one CPU the model runs on the event loop: deferred one loop turn so that requests read
    in the same turn share a batch — unless the edge says the request is the only one."""

    async def test_requests_of_one_loop_turn_share_a_batch(self) -> None:
        model = Model()
        batcher = Batcher(model, max_batch_size=32, inline=True)
        tasks = [asyncio.create_task(batcher.submit(np.full((1, 2), i))) for i in range(10)]
        results = await asyncio.gather(*tasks)
        assert model.calls == [10]
        assert [int(r[0]) for r in results] == [2 * i for i in range(10)]
        await batcher.close()

    async def test_a_sole_request_is_predicted_at_once_in_its_own_task(self) -> None:
        seen: list[tuple[int, int]] = []
        order: list[str] = []
        model = Model()
        batcher = Batcher(model, inline=True, on_batch=lambda n, rows: seen.append((n, rows)))
        asyncio.get_running_loop().call_soon(order.append, "next loop turn")
        got = await batcher.submit(np.full((3, 2), 1), sole=True)
        order.append("answered")
        np.testing.assert_array_equal(got, [2, 2, 2])
        assert order == ["answered"]  # no loop turn between submit and the answer
        assert batcher.at_once == 1
        assert model.calls == [3]
        assert seen == [(1, 3)]
        assert threading.get_ident() in model.threads  # on the event loop's thread
        await batcher.close()

    async def test_the_same_request_not_sole_waits_one_loop_turn(self) -> None:
        order: list[str] = []
        batcher = Batcher(Model(), inline=True)
        asyncio.get_running_loop().call_soon(order.append, "next loop turn")
        await batcher.submit(np.full((1, 2), 1))
        order.append("answered")
        assert order == ["next loop turn", "answered"]
        await batcher.close()

    async def test_a_sole_request_behind_queued_ones_joins_their_batch(self) -> None:
        model = Model()
        batcher = Batcher(model, max_batch_size=32, inline=True)
        queued = [asyncio.create_task(batcher.submit(np.full((1, 2), i))) for i in range(3)]
        await asyncio.sleep(0)  # the three are queued, their batch not run yet
        assert batcher.queue_depth == 3
        last = await batcher.submit(np.full((1, 2), 9), sole=True)  # a stale hint: it queues
        await asyncio.gather(*queued)
        assert int(last[0]) == 18
        assert model.calls == [4]
        await batcher.close()

    async def test_a_sole_request_that_fails_raises_the_models_error(self) -> None:
        batcher = Batcher(Model(fail_negative=True), inline=True)
        with pytest.raises(ValueError, match="negative input"):
            await batcher.submit(-np.ones((1, 2)), sole=True)
        assert batcher.in_flight == 0
        np.testing.assert_array_equal(await batcher.submit(np.ones((1, 2)), sole=True), [2])
        await batcher.close()

    async def test_sole_means_nothing_to_a_batcher_with_an_executor(self) -> None:
        model = Model()
        batcher = Batcher(model)
        await batcher.submit(np.ones((1, 2)), sole=True)
        assert threading.get_ident() not in model.threads  # still off the loop
        await batcher.close()

    async def test_a_timeout_expires_a_request_still_queued(self) -> None:
        from modelplane.errors import DeadlineExceeded

        batcher = Batcher(Model(), inline=True)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(np.ones((1, 2)), timeout=-1.0)
        with pytest.raises(DeadlineExceeded):  # an expired request takes no shortcut
            await batcher.submit(np.ones((1, 2)), timeout=-1.0, sole=True)
        assert batcher.at_once == 0
        await batcher.close()


class TestFailures:
    async def test_one_bad_request_in_a_batch_fails_alone(self, gate: threading.Event) -> None:
        model = Model(gate=gate, fail_negative=True)
        batcher = Batcher(model)
        inputs = [np.full((1, 2), float(i)) for i in range(6)]
        inputs[3] = np.full((1, 2), -1.0)
        tasks = [asyncio.create_task(batcher.submit(x)) for x in inputs]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        assert isinstance(results[3], ValueError)
        for i in (0, 1, 2, 4, 5):
            np.testing.assert_array_equal(results[i], [2.0 * i])
        assert model.calls == [1, 5, 1, 1, 1, 1, 1]  # held; batch of 5 fails; each alone

    async def test_an_output_that_cannot_be_split_is_retried_request_by_request(
        self, gate: threading.Event
    ) -> None:
        def total(batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            gate.wait(5)
            return np.array([batch.sum()])  # one row for the whole batch

        batcher = Batcher(total)
        tasks = [asyncio.create_task(batcher.submit(np.full((1, 1), i))) for i in range(4)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
        await batcher.close()
        assert [int(r[0]) for r in results] == [0, 1, 2, 3]

    async def test_an_input_of_unknown_kind_is_predicted_alone(self) -> None:
        batcher = Batcher(lambda batch: [sum(row) for row in batch])
        results = await asyncio.gather(*(batcher.submit([[i, i]]) for i in range(5)))
        await batcher.close()
        assert results == [[2 * i] for i in range(5)]


class TestCancellation:
    async def test_a_request_cancelled_while_queued_is_skipped(self, gate: threading.Event) -> None:
        model = Model(gate=gate)
        batcher = Batcher(model)
        tasks = [asyncio.create_task(batcher.submit(np.full((i + 1, 1), i))) for i in range(4)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        assert isinstance(results[2], asyncio.CancelledError)
        for i in (0, 1, 3):
            np.testing.assert_array_equal(results[i], np.full(i + 1, i))
        assert model.calls == [1, 2 + 4]  # the cancelled request's 3 rows were never computed

    async def test_a_request_cancelled_while_its_batch_runs_does_not_break_the_batch(
        self, gate: threading.Event
    ) -> None:
        model = Model(gate=gate)
        batcher = Batcher(model)
        tasks = [asyncio.create_task(batcher.submit(np.full((1, 1), i))) for i in range(3)]
        await asyncio.sleep(0)
        tasks[0].cancel()  # its batch is already in the executor
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        assert isinstance(results[0], asyncio.CancelledError)
        assert [np.asarray(r).tolist() for r in results[1:]] == [[1], [2]]
        assert (batcher.queue_depth, batcher.in_flight) == (0, 0)


class TestClose:
    async def test_close_finishes_queued_and_running_work_then_refuses(
        self, gate: threading.Event
    ) -> None:
        batcher = Batcher(Model(gate=gate), name="fraud/3")
        tasks = [asyncio.create_task(batcher.submit(np.full((1, 1), i))) for i in range(5)]
        await asyncio.sleep(0)
        closing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0)
        with pytest.raises(NotReady, match="fraud/3"):
            await batcher.submit(np.ones((1, 1)))
        gate.set()
        await closing
        assert [r.tolist() for r in await asyncio.gather(*tasks)] == [[i] for i in range(5)]
        assert batcher.closed

    async def test_close_of_an_idle_batcher_is_immediate_and_idempotent(self) -> None:
        batcher = Batcher(Model())
        await batcher.close()
        await batcher.close()
        with pytest.raises(NotReady):
            await batcher.submit(np.ones((1, 1)))


class TestProcessPool:
    async def test_a_picklable_predict_runs_in_a_process_pool(self) -> None:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            batcher = Batcher(np.negative, executor=pool)
            inputs = [np.full((2, 3), i) for i in range(20)]
            results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
            await batcher.close()
        for x, got in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(got, -x)
