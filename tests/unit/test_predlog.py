"""The prediction log: bounded write-behind queue to Hive-partitioned Parquet."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest

from modelplane import predlog
from modelplane.predlog import PredictionLog, PredictionRecord, read_log

T0 = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def record(
    request_id: str = "r1",
    *,
    model: str = "fraud",
    time: datetime = T0,
    inputs: dict[str, np.ndarray[Any, Any]] | None = None,
    outputs: dict[str, np.ndarray[Any, Any]] | None = None,
    unit_id: str | None = "u1",
    status: int = 200,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        time=time,
        model=model,
        version=3,
        inputs={"x": np.array([[1.5, 2.0]])} if inputs is None else inputs,
        outputs={"y": np.array([1])} if outputs is None else outputs,
        latency_ms=1.25,
        unit_id=unit_id,
        status=status,
    )


def parts(location: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(location)
    return sorted(p.removeprefix(root.rstrip("/") + "/") for p in fs.find(root))


@pytest.fixture
def memory_url() -> Iterator[str]:
    url = f"memory://predlog-{uuid.uuid4().hex}"
    yield url
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


class TestWriting:
    def test_records_land_in_model_and_utc_day_partitions(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a"))
        log.log(record("b", model="churn"))
        # 01:00 at +02:00 is 23:00 UTC the day before: partitions are UTC days.
        log.log(record("c", time=datetime(2024, 5, 3, 1, 0, tzinfo=timezone(timedelta(hours=2)))))
        log.flush()

        folders = sorted({p.rsplit("/", 1)[0] for p in parts(str(tmp_path))})
        assert folders == [
            "model=churn/date=2024-05-01",
            "model=fraud/date=2024-05-01",
            "model=fraud/date=2024-05-02",
        ]
        assert all(p.rsplit("/", 1)[1].startswith("part-") for p in parts(str(tmp_path)))
        assert all(p.endswith(".parquet") for p in parts(str(tmp_path)))
        assert log.written == 3

    def test_a_batch_larger_than_a_slice_is_one_file_with_every_record_in_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pyarrow.parquet as pq

        monkeypatch.setattr(predlog, "SLICE_ROWS", 4)  # written 4 records at a time
        log = PredictionLog(str(tmp_path))
        for i in range(10):
            log.log(record(f"r{i}", inputs={"x": np.array([[float(i), 1.0]])}))
        log.flush()

        (part,) = parts(str(tmp_path))
        assert pq.ParquetFile(tmp_path / part).metadata.num_row_groups == 3
        frame = read_log(str(tmp_path))
        assert list(frame["request_id"]) == [f"r{i}" for i in range(10)]
        assert [row["x"] for row in frame["inputs"]] == [[[float(i), 1.0]] for i in range(10)]
        assert log.written == 10

    def test_read_log_returns_the_values_intact(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        x = np.arange(6, dtype=np.float32).reshape(3, 2).T  # not C-contiguous
        log.log(
            record(
                "a",
                inputs={
                    "x": x,
                    "n": np.array([1, -2], np.int64),
                    "s": np.array(["é", b"b"], object),
                },
                outputs={"y": np.array([True, False]), "p": np.array([0.25, np.nan])},
                unit_id=None,
                status=500,
            )
        )
        log.flush()

        df = read_log(str(tmp_path))
        assert len(df) == 1
        row = df.iloc[0]
        assert row["request_id"] == "a"
        assert row["time"] == T0
        assert (row["model"], row["date"], row["version"]) == ("fraud", "2024-05-01", 3)
        assert pd.isna(row["unit_id"])
        assert (row["latency_ms"], row["status"]) == (1.25, 500)
        np.testing.assert_array_equal(np.asarray(row["inputs"]["x"], np.float32), x)
        assert row["inputs"]["n"] == [1, -2]
        assert row["inputs"]["s"] == ["é", "b"]
        assert row["outputs"]["y"] == [True, False]
        assert row["outputs"]["p"][0] == 0.25
        assert np.isnan(row["outputs"]["p"][1])

    def test_read_log_of_one_model_and_json_text_when_not_decoded(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a"))
        log.log(record("b", model="churn"))
        log.flush()

        df = read_log(str(tmp_path), "churn", decode=False)
        assert list(df["request_id"]) == ["b"]
        assert list(df["model"]) == ["churn"]
        assert df["inputs"][0] == '{"x":[[1.5,2.0]]}'
        assert df["outputs"][0] == '{"y":[1]}'

    def test_tensors_are_typed_nested_lists_in_the_file(self, tmp_path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        log = PredictionLog(str(tmp_path))
        log.log(record("a", inputs={"x": np.ones((2, 3), np.float32), "k": np.array([7])}))
        log.log(record("b", inputs={"x": np.zeros((1, 3), np.float32), "k": np.array([8])}))
        log.flush()

        (part,) = parts(str(tmp_path))
        table = pq.read_table(tmp_path / part)
        assert table.schema.field("inputs").type == pa.struct(
            [("x", pa.list_(pa.list_(pa.float32()))), ("k", pa.list_(pa.int64()))]
        )
        assert table.column("inputs").to_pylist() == [
            {"x": [[1.0] * 3] * 2, "k": [7]},
            {"x": [[0.0] * 3], "k": [8]},
        ]

    def test_every_shape_and_dtype_reads_back_as_logged(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        cube = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
        ragged = [np.arange(6.0).reshape(1, 2, 3), np.arange(4.0).reshape(2, 2, 1)]
        for i, seq in enumerate(ragged):  # one layout, different trailing shapes
            log.log(
                record(
                    f"r{i}",
                    inputs={
                        "cube": cube,
                        "seq": seq,
                        "half": np.array([0.5], np.float16),
                        "scalar": np.array(3.5),
                        "u": np.array(["ab", "c"]),
                        "raw": np.array([b"\xff", b"ok"], object),
                    },
                    outputs={},  # a failed prediction has no outputs
                    status=500,
                )
            )
        log.flush()

        frame = read_log(str(tmp_path))
        for i, seq in enumerate(ragged):
            inputs = frame["inputs"][i]
            assert inputs["cube"] == cube.tolist()
            assert inputs["seq"] == seq.tolist()
            assert inputs["half"] == [0.5]
            assert inputs["scalar"] == 3.5
            assert inputs["u"] == ["ab", "c"]
            assert inputs["raw"] == ["\\xff", "ok"]  # bytes as text, undecodable escaped
            assert frame["outputs"][i] == {}

    def test_values_arrow_cannot_hold_are_kept_as_json_text(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a", inputs={"mixed": np.array([1, "two", None], object)}))
        log.flush()

        assert read_log(str(tmp_path))["inputs"][0] == {"mixed": [1, "two", None]}
        assert read_log(str(tmp_path), decode=False)["inputs"][0] == '{"mixed":[1,"two",null]}'

    def test_records_of_different_layouts_go_to_their_own_files_and_read_back_together(
        self, tmp_path: Path
    ) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a", inputs={"x": np.array([[1.0, 2.0]])}))
        log.log(record("b", inputs={"x": np.array([[1, 2]], np.int64)}))  # new dtype
        log.log(record("c", inputs={"x": np.array([[3.0, 4.0]])}, time=T0 + timedelta(1)))
        log.log(record("d", inputs={"z": np.array(["t"])}, time=T0 - timedelta(1)))
        log.flush()

        assert len(parts(str(tmp_path))) == 4
        frame = read_log(str(tmp_path))
        assert list(frame["request_id"]) == ["d", "a", "b", "c"]  # oldest first
        assert list(frame["inputs"]) == [
            {"z": ["t"]},
            {"x": [[1.0, 2.0]]},
            {"x": [[1, 2]]},
            {"x": [[3.0, 4.0]]},
        ]

    def test_files_of_the_json_text_encoding_still_read(self, tmp_path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = tmp_path / "model=fraud" / "date=2024-05-01"
        folder.mkdir(parents=True)
        old = pa.table(  # what the log wrote before issue 13 (and before experiments)
            {
                "request_id": ["old"],
                "time": pa.array([T0 - timedelta(hours=1)], pa.timestamp("us", tz="UTC")),
                "version": pa.array([2], pa.int64()),
                "unit_id": pa.array([None], pa.string()),
                "latency_ms": [1.0],
                "status": pa.array([200], pa.int32()),
                "inputs": ['{"x":[[9.0,9.0]]}'],
                "outputs": ['{"y":[0]}'],
            }
        )
        pq.write_table(old, folder / "part-20240501T000000000000-old.parquet")
        log = PredictionLog(str(tmp_path))
        log.log(record("new"))
        log.flush()

        frame = read_log(str(tmp_path))
        assert list(frame["request_id"]) == ["old", "new"]
        assert list(frame["inputs"]) == [{"x": [[9.0, 9.0]]}, {"x": [[1.5, 2.0]]}]
        assert frame["experiment"].isna().all()
        assert list(read_log(str(tmp_path), decode=False)["outputs"]) == ['{"y":[0]}', '{"y":[1]}']

    def test_tensors_with_an_empty_dimension_are_logged(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a", inputs={"x": np.zeros((2, 0)), "y": np.zeros((1, 0, 3))}))
        log.flush()

        assert log.written == 1
        assert read_log(str(tmp_path))["inputs"][0] == {"x": [[], []], "y": [[]]}

    def test_text_and_json_values_of_one_scalar_tensor_never_share_a_file(
        self, tmp_path: Path
    ) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a", inputs={"s": np.array("abc", object)}))
        log.log(record("b", inputs={"s": np.array(None, object)}))  # not text: JSON
        log.flush()

        frame = read_log(str(tmp_path))
        assert list(frame["inputs"]) == [{"s": "abc"}, {"s": None}]

    def test_a_record_that_cannot_be_encoded_loses_only_its_slice(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(predlog, "SLICE_ROWS", 2)
        drops: list[int] = []
        log = PredictionLog(str(tmp_path), on_drop=drops.append)
        log.log(record("ok1"))
        log.log(record("ok2"))
        with log._write_lock:
            log._append()  # r-ok1, r-ok2 in the open file
        bad = {"x": np.array([[1 + 2j]])}  # complex: neither Arrow nor JSON holds it
        for name in ("ok3", "bad", "ok4", "ok5"):
            log.log(record(name, inputs=bad if name == "bad" else None))
        log.flush()

        logged = sorted(read_log(str(tmp_path))["request_id"])
        assert logged == ["ok1", "ok2", "ok3", "ok4", "ok5"]  # the open file kept its records
        assert log.written == 5
        assert drops == [1]  # "bad" alone: it has a layout (complex) of its own
        assert log.write_errors == 1

    def test_a_memory_url_shows_no_file_before_it_is_published(self, memory_url: str) -> None:
        log = PredictionLog(memory_url, flush_interval_s=3600)
        log.log(record("a"))
        with log._write_lock:
            log._append()  # an open file now

        assert read_log(memory_url).empty  # readers skip it; reading it does not break it
        log.flush()
        assert list(read_log(memory_url)["request_id"]) == ["a"]

    def test_a_file_that_is_not_parquet_is_skipped_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a"))
        log.flush()
        folder = tmp_path / "model=fraud" / "date=2024-05-01"
        (folder / "part-broken.parquet").write_bytes(b"not parquet")

        assert list(read_log(str(tmp_path))["request_id"]) == ["a"]
        assert "part-broken.parquet" in caplog.text

    def test_read_log_of_an_empty_location_is_an_empty_frame(self, tmp_path: Path) -> None:
        df = read_log(str(tmp_path / "nothing"))
        assert df.empty
        assert "request_id" in df.columns

    def test_an_fsspec_memory_url_works(self, memory_url: str) -> None:
        log = PredictionLog(memory_url)
        log.log(record("a"))
        log.flush()

        assert [p.rsplit("/", 1)[0] for p in parts(memory_url)] == ["model=fraud/date=2024-05-01"]
        assert list(read_log(memory_url)["request_id"]) == ["a"]

    def test_the_partitions_read_back_with_pandas(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path))
        log.log(record("a"))
        log.flush()

        df = pd.read_parquet(tmp_path)
        assert list(df["request_id"]) == ["a"]
        assert list(df["model"].astype(str)) == ["fraud"]


class TestTheQueue:
    def test_a_full_queue_drops_and_counts_without_blocking(self, tmp_path: Path) -> None:
        drops: list[int] = []
        log = PredictionLog(str(tmp_path), queue_size=2, on_drop=drops.append)  # no writer

        accepted = [log.log(record(str(i))) for i in range(5)]

        assert accepted == [True, True, False, False, False]
        assert log.dropped == 3
        assert drops == [1, 1, 1]
        assert log.pending == 2

    def test_a_failing_on_drop_callback_does_not_reach_the_caller(self, tmp_path: Path) -> None:
        def boom(n: int) -> None:
            raise RuntimeError("metrics are down")

        log = PredictionLog(str(tmp_path), queue_size=1, on_drop=boom)
        log.log(record("a"))
        assert log.log(record("b")) is False
        assert log.dropped == 1

    def test_close_writes_what_is_queued(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path), flush_interval_s=3600)
        log.start()
        log.log(record("a"))
        log.log(record("b"))
        log.close()

        assert sorted(read_log(str(tmp_path))["request_id"]) == ["a", "b"]
        assert log.log(record("c")) is False  # closed: refused, counted
        assert log.dropped == 1

    def test_the_writer_thread_takes_the_queue_once_flush_rows_wait(self, tmp_path: Path) -> None:
        log = PredictionLog(str(tmp_path), flush_rows=3, flush_interval_s=3600)
        log.start()
        try:
            for i in range(3):
                log.log(record(str(i)))
            deadline = time.monotonic() + 10
            while log.pending and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log.pending == 0  # appended to an open file, not yet published
            assert parts(str(tmp_path)) == [] or all(
                p.rsplit("/", 1)[1].startswith("_") for p in parts(str(tmp_path))
            )
            assert log.written == 0
        finally:
            log.close()
        assert log.written == 3
        assert sorted(read_log(str(tmp_path))["request_id"]) == ["0", "1", "2"]

    def test_flushes_append_to_one_file_until_it_is_published(self, tmp_path: Path) -> None:
        import pyarrow.parquet as pq

        log = PredictionLog(str(tmp_path), flush_interval_s=3600)
        for i in range(3):  # three drains of the queue, as the writer thread does
            log.log(record(f"r{i}"))
            with log._write_lock:
                log._append()
        assert read_log(str(tmp_path)).empty  # nothing published yet
        log.flush()

        (part,) = parts(str(tmp_path))
        assert pq.ParquetFile(tmp_path / part).metadata.num_row_groups == 3
        assert list(read_log(str(tmp_path))["request_id"]) == ["r0", "r1", "r2"]

    def test_a_failed_write_is_logged_and_counted_not_raised(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        drops: list[int] = []
        log = PredictionLog(str(blocker / "log"), on_drop=drops.append)
        log.log(record("a"))
        log.log(record("b"))

        log.flush()

        assert log.write_errors == 1
        assert log.dropped == 2
        assert drops == [2]
        assert "could not write 2 records" in caplog.text


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_writer_thread_runs_nicer_than_the_server(tmp_path: Path) -> None:
    import os
    import threading

    seen: dict[str, int] = {}
    done = threading.Event()

    def probe(n: int) -> None:  # on_drop runs on the writer thread when its write fails
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        done.set()

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    log = PredictionLog(str(blocker / "log"), flush_rows=1, on_drop=probe)
    log.start()
    try:
        log.log(record("a"))
        assert done.wait(30)
    finally:
        log.close()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["nice"] == min(19, here + predlog.WRITER_NICE)
