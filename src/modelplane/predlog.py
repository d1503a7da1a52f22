"""The prediction log: every prediction, written behind the request path to Parquet.

The request path calls :meth:`PredictionLog.log`, which appends the record to a bounded
in-memory queue and returns at once — it never waits on storage and never raises. When the
queue is full the record is dropped and counted (``dropped``, ``on_drop``). A background writer
*thread* drains the queue as soon as ``flush_rows`` records wait (512), and at least every
``flush_interval_s`` seconds (2), appending them as a row group to the open Parquet file of
their (model, day, tensor layout); a file is closed — published to readers — once it has been
open ``flush_interval_s``, and by :meth:`PredictionLog.flush` and ``close``::

    <location>/model=<name>/date=<YYYY-MM-DD>/part-<YYYYmmddTHHMMSSffffff>-<uuid>.parquet

``location`` is a local folder or any fsspec URL (``s3://…``, ``memory://…``). The folders are
Hive-style partitions, so DuckDB (``hive_partitioning=true, union_by_name=true``), pandas and
pyarrow read the tree with ``model`` and ``date`` as columns. ``model`` lives only in the path,
not in the files: a column present in both makes ``pandas.read_parquet`` fail to merge the
schemas.

Columns of a file: ``request_id``, ``time`` (timestamp[us, UTC]), ``version``, ``unit_id``,
``latency_ms``, ``status``, ``inputs`` and ``outputs`` (structs with one field per tensor, each a
typed list nested as deep as the tensor's rank: a ``(n, 20)`` FP64 input is
``list<list<double>>``; NaN kept; BYTES as text; values Arrow cannot hold, such as mixed
Python objects, as JSON text in a field of type ``large_string``; a file holds one
layout, so tensors of another dtype or rank go to a file of their own; files written before
issue 13 hold JSON text instead, and :func:`read_log` reads both), ``experiment`` and
``variant`` (the experiment or rollout that routed the request and its arm; null otherwise, and
in files written before they existed). :func:`read_log` reads it back and is what monitoring
and the experiment report use to join labels by ``request_id``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import orjson

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PredictionLog", "PredictionRecord", "read_log"]

logger = logging.getLogger(__name__)

_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY
COLUMNS = (
    "request_id",
    "time",
    "model",
    "date",
    "version",
    "unit_id",
    "latency_ms",
    "status",
    "inputs",
    "outputs",
    "experiment",
    "variant",
)


@dataclass(slots=True)
class PredictionRecord:
    """One prediction as the log keeps it. ``time`` is UTC (a naive value is taken as UTC).

    The arrays are serialised later, on the writer thread: do not mutate them after logging.
    """

    request_id: str
    time: datetime
    model: str
    version: int
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: dict[str, np.ndarray[Any, Any]]
    latency_ms: float
    unit_id: str | None
    status: int = 200
    experiment: str | None = None
    variant: str | None = None


class PredictionLog:
    """A bounded write-behind queue in front of Parquet files; see the module docstring.

    ``dropped`` counts records that were not written: refused because the queue was full (or
    the log closed), or lost with a failed write; ``on_drop(n)`` is called with each such
    count. ``write_errors`` counts failed writes; they are logged, never raised. ``written``
    counts the records of published (closed) files. A kill -9 loses what is queued and the open
    files: at most ~2 × ``flush_interval_s`` of predictions.
    """

    def __init__(
        self,
        location: str,
        *,
        queue_size: int = 10_000,
        flush_rows: int = 512,
        flush_interval_s: float = 2.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        if queue_size < 1 or flush_rows < 1 or flush_interval_s <= 0:
            raise ValueError("queue_size and flush_rows must be >= 1, flush_interval_s > 0")
        import fsspec

        self.location = location.rstrip("/")
        fs, root = fsspec.core.url_to_fs(self.location)
        self._fs: Any = fs
        self._root: str = root.rstrip("/")
        self._queue: deque[PredictionRecord] = deque()
        self._queue_size = queue_size
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._on_drop = on_drop
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._parts: dict[tuple[str, date, Any], _Part] = {}
        self._closed = False
        self._dropped = 0
        self._written = 0
        self._write_errors = 0

    # -- the request path -------------------------------------------------------------------

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; False when it was dropped. Never blocks, never raises."""
        queue = self._queue
        # len() and append() are each atomic under the GIL; with many threads the bound may be
        # overshot by at most one record per thread, which keeps this lock-free.
        if self._closed or len(queue) >= self._queue_size:
            self._drop(1)
            return False
        queue.append(record)
        if len(queue) >= self._flush_rows:
            self._wake.set()
        return True

    def _drop(self, n: int) -> None:
        with self._count_lock:
            self._dropped += n
        if self._on_drop is not None:
            try:
                self._on_drop(n)
            except Exception:
                logger.exception("prediction log on_drop callback failed")

    # -- state ------------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def written(self) -> int:
        """Records in published (closed) Parquet files so far."""
        return self._written

    @property
    def write_errors(self) -> int:
        return self._write_errors

    @property
    def pending(self) -> int:
        """Records still queued (not yet in a file)."""
        return len(self._queue)

    # -- the writer -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="modelplane-predlog", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Refuse new records, write what is queued and stop the writer thread."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("prediction log writer did not stop within %.1f s", timeout_s)
                return
        self.flush()

    def flush(self) -> None:
        """Write every record queued now and close the open files (readers see them), on the
        calling thread."""
        with self._write_lock:
            self._append()
            self._close_parts(None)
            _release_arrow_memory()

    def _run(self) -> None:
        _lower_priority()
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            try:
                with self._write_lock:
                    self._append()
                    if self._close_parts(time.monotonic() - self._flush_interval_s):
                        _release_arrow_memory()  # once per published file, not per drain
            except Exception:  # the writes already guard; this keeps the thread alive regardless
                logger.exception("prediction log writer failed")
        self.flush()

    def _append(self) -> None:
        """Append the queued records to the open file of their (model, day, layout)."""
        batch = [self._queue.popleft() for _ in range(len(self._queue))]
        groups: dict[tuple[str, date, Any], list[PredictionRecord]] = {}
        for record in batch:
            try:
                if record.time.tzinfo is not UTC:  # normalised once: the day and the column
                    record.time = _utc(record.time)
                key = (record.model, record.time.date(), _layout(record))
            except Exception:  # not what PredictionRecord promises (an input that is no array)
                self._failed(1, f"{self._root} (a record that cannot be logged)")
                continue
            groups.setdefault(key, []).append(record)
        for key, records in groups.items():
            model, day, _ = key
            folder = f"{self._root}/model={quote(model, safe='')}/date={day.isoformat()}"
            for start in range(0, len(records), SLICE_ROWS):
                chunk = records[start : start + SLICE_ROWS]
                try:
                    table = _to_table(chunk)
                except Exception:  # these records cannot be encoded: only they are lost
                    self._failed(len(chunk), folder)
                    continue
                try:
                    part = self._parts.get(key)
                    if part is not None and not part.schema.equals(table.schema):
                        self._close_part(key)  # (another offset width, say)
                        part = None
                    if part is None:
                        part = self._parts[key] = _Part.open(self._fs, folder, table.schema)
                    part.writer.write_table(table)
                    part.rows += table.num_rows
                except Exception:  # the file is broken: its records and this slice are lost
                    failed = self._parts.pop(key, None)
                    self._failed(len(chunk) + (failed.abort() if failed else 0), folder)

    def _close_parts(self, opened_before: float | None) -> int:
        """Close (publish) the open files, or those opened before ``opened_before``; how many."""
        keys = [
            k for k, p in self._parts.items() if opened_before is None or p.opened < opened_before
        ]
        for key in keys:
            self._close_part(key)
        return len(keys)

    def _close_part(self, key: tuple[str, date, Any]) -> None:
        part = self._parts.pop(key)
        try:
            part.close()
        except Exception:
            self._failed(part.abort(), part.folder)
        else:
            self._written += part.rows

    def _failed(self, records: int, folder: str) -> None:
        self._write_errors += 1
        logger.exception("prediction log: could not write %d records to %s", records, folder)
        self._drop(records)


class _Part:
    """One Parquet file being written: row groups appended as records come, published when
    closed (a local file is written under a ``_``-prefixed name that readers skip, then renamed;
    an object store publishes an upload when it completes)."""

    def __init__(self, fs: Any, folder: str, name: str, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.fs = fs
        self.folder = folder
        self.final = f"{folder}/{name}"
        self.path = self.final if _publishes_on_close(fs) else f"{folder}/_{name}.tmp"
        self.schema = schema
        self.opened = time.monotonic()
        self.rows = 0
        self.fh = fs.open(self.path, "wb")
        try:
            self.writer = pq.ParquetWriter(
                self.fh,
                schema,
                compression=_COMPRESSION,
                use_dictionary=_DICTIONARY_COLUMNS,
                write_statistics=["request_id", "time", "version", "status", "latency_ms"],
            )
        except Exception:
            self.fh.close()
            with contextlib.suppress(Exception):
                fs.rm(self.path)
            raise

    @classmethod
    def open(cls, fs: Any, folder: str, schema: Any) -> _Part:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        fs.makedirs(folder, exist_ok=True)
        return cls(fs, folder, f"part-{stamp}-{uuid.uuid4().hex}.parquet", schema)

    def close(self) -> None:
        self.writer.close()
        self.fh.close()
        if self.path != self.final:
            self.fs.mv(self.path, self.final)

    def abort(self) -> int:
        """Give the file up (its records are lost); how many records it held."""
        for step in (self.writer.close, self.fh.close):
            try:
                step()
            except Exception:
                logger.debug("prediction log: closing a failed part", exc_info=True)
        try:
            if self.fs.exists(self.path):
                self.fs.rm(self.path)
        except Exception:
            logger.debug("prediction log: removing a failed part", exc_info=True)
        return self.rows


#: How much nicer than the server the writer thread runs (Linux: a thread has its own nice value).
WRITER_NICE = 10


def _lower_priority() -> None:
    """Make the calling thread (the writer) yield the CPU to the event loop.

    On one core the writer's encoding and Parquet writes (GIL released) compete with the event
    loop for the CPU, and a request arriving while the writer runs waited for the scheduler:
    measured with ``benchmarks/serving.py`` (32-row, one client, three rounds), p99 1.72x the
    floor's at the same nice value, 1.00x ten steps nicer. A nicer writer still gets ~10 % of a
    saturated core, more than it needs: 15 s at 64 clients (1-row, ~7,400 req/s, and 32-row)
    dropped no record at nice +10; at +15 it dropped 13 %. Elsewhere than Linux,
    ``setpriority`` would renice the whole process: nothing is done.
    """
    if sys.platform != "linux":
        return
    import os

    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + WRITER_NICE))
    except OSError:  # a sandbox that forbids it: the writer keeps the server's priority
        logger.debug("could not lower the prediction log writer's priority", exc_info=True)


#: Records encoded and written at a time (one row group each): what a write holds in memory at
#: once. Draining the queue every 512 records into a file kept open (instead of every 5,000
#: records or 2 s into a new file each time) bounds what waits in the queue too: measured with
#: ``benchmarks/memory.py`` (2,000 requests, half 32-row, 8 clients) and ``serving.py``, see
#: docs/benchmarks.md.
SLICE_ROWS = 512

#: Columns worth a Parquet dictionary (few distinct values); the others are written plain.
#: Trying a dictionary on the tensor columns (unique per record) cost the writer ~3x its time.
_DICTIONARY_COLUMNS = ["version", "unit_id", "status", "experiment", "variant"]
#: LZ4 (raw): ~4x faster than zstd on float tensors, which compress little with either.
_COMPRESSION = "lz4"


def _release_arrow_memory() -> None:
    """Hand the memory a write left in Arrow's pool back to the system.

    Arrow's default pool (mimalloc in the wheels) keeps what a Parquet write freed for reuse:
    measured with ``benchmarks/memory.py``, ``modelplane serve`` held ~45 MiB more after 2,000
    logged predictions than without the log; releasing after each write keeps ~15 MiB
    (~0.3 ms on the writer thread, once per flush).
    """
    import pyarrow as pa

    try:
        pa.default_memory_pool().release_unused()
    except Exception:  # a pool without it (older pyarrow): keep the memory, never fail a write
        logger.debug("could not release Arrow's unused memory", exc_info=True)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


#: Object stores: a file appears only when its upload completes, so it is written in place. On
#: any other file system (local, memory://, sftp…) a file is visible while written: it is
#: written under a ``_``-prefixed name readers skip, then renamed.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})


def _publishes_on_close(fs: Any) -> bool:
    protocol = fs.protocol
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return any(p in _OBJECT_STORES for p in protocols)


def _json_default(obj: Any) -> Any:
    # orjson hands back what OPT_SERIALIZE_NUMPY cannot do: object arrays (BYTES),
    # non-contiguous arrays, numpy scalars, bytes.
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes | bytearray):
        return bytes(obj).decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot log a value of type {type(obj).__name__}")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default, option=_NUMPY_JSON).decode()


def _layout(record: PredictionRecord) -> tuple[Any, ...]:
    """What must match for records to share a file: each tensor's name, dtype and rank."""
    # Lists of tuples, not generators: this runs once per record (~1.5 us of ~9 per record).
    return (
        *[(n, _dtype_key(a.dtype), a.ndim) for n, a in record.inputs.items()],
        None,
        *[(n, _dtype_key(a.dtype), a.ndim) for n, a in record.outputs.items()],
    )


def _dtype_key(dtype: np.dtype[Any]) -> Any:
    """What of a dtype decides its Arrow type: text of any width is text (``<U3`` and ``<U5``
    share a file), byte order does not matter (values are made native)."""
    if dtype.kind in "US":
        return dtype.kind
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _to_table(records: list[PredictionRecord]) -> Any:
    """One Arrow table of records that share a :func:`_layout`.

    ``inputs`` and ``outputs`` are structs with one field per tensor, each a list nested as
    deep as the tensor's rank (a row of a ``(2, 20)`` tensor is ``list<list<double>>``): the
    values stay binary and typed, readable as such by DuckDB, pandas and pyarrow, and are built
    with one ``np.concatenate`` per tensor and slice instead of one JSON text per record.
    Measured on 2,000 records of 32 rows x 20 float64 (LZ4): ~26 ms of writer CPU against
    ~120 ms for JSON text with zstd; most of the rest is the per-record Python of the scalar
    columns.
    """
    import pyarrow as pa

    return pa.table(
        {
            "request_id": pa.array([r.request_id for r in records], pa.string()),
            "time": pa.array([r.time for r in records], pa.timestamp("us", tz="UTC")),
            "version": pa.array([r.version for r in records], pa.int64()),
            "unit_id": pa.array([r.unit_id for r in records], pa.string()),
            "latency_ms": pa.array([r.latency_ms for r in records], pa.float64()),
            "status": pa.array([r.status for r in records], pa.int32()),
            "inputs": _tensors([r.inputs for r in records]),
            "outputs": _tensors([r.outputs for r in records]),
            "experiment": pa.array([r.experiment for r in records], pa.string()),
            "variant": pa.array([r.variant for r in records], pa.string()),
        }
    )


def _tensors(dicts: list[dict[str, np.ndarray[Any, Any]]]) -> Any:
    """A struct column, one field per tensor name (every dict has the same names, dtypes and
    ranks); ``{}`` for records without tensors (a struct needs a field in Parquet)."""
    import pyarrow as pa

    names = list(dicts[0])
    if not names:
        return pa.array(["{}"] * len(dicts), pa.string())
    fields = []
    children = []
    for name in names:
        arrays = [d[name] for d in dicts]
        child = _tensor_column(arrays)
        if child is None:  # values Arrow cannot hold as they are: JSON text, as large_string
            # (its own physical type: text values are plain string, and schemas compare types)
            child = pa.array([_dumps(a) for a in arrays], pa.large_string())
            fields.append(pa.field(name, pa.large_string()))
        else:
            fields.append(pa.field(name, child.type))
        children.append(child)
    return pa.StructArray.from_arrays(children, fields=fields)


def _tensor_column(arrays: list[np.ndarray[Any, Any]]) -> Any:
    """The records' values of one tensor as nested Arrow lists, or None when its dtype is not
    one Arrow holds natively (JSON text then)."""
    first = arrays[0]
    kind = first.dtype.kind
    if kind not in "biufOUS":
        return None
    if first.ndim == 0:
        flat: np.ndarray[Any, Any] = np.array([a.item() for a in arrays], dtype=first.dtype)
        return _values(flat)
    trailing = first.shape[1:]
    uniform = all(a.shape[1:] == trailing for a in arrays)
    values = _values(np.concatenate(arrays if uniform else [a.reshape(-1) for a in arrays]).ravel())
    if values is None:
        return None
    if uniform:
        outer_rows = np.fromiter((a.shape[0] for a in arrays), np.int64, len(arrays))
        count = int(outer_rows.sum())
        for level in range(len(trailing) - 1, -1, -1):  # innermost first: evenly spaced offsets
            lists = count * int(np.prod(trailing[:level], dtype=np.int64))
            size = int(trailing[level])
            if size:
                offsets = np.arange(0, lists * size + 1, size, dtype=np.int64)
            else:  # a (n, 0) tensor: every list is empty
                offsets = np.zeros(lists + 1, np.int64)
            values = _list(offsets, values)
        return _list(np.concatenate(([0], np.cumsum(outer_rows))), values)
    for level in range(first.ndim - 1, -1, -1):  # ragged: each record's sizes at each level
        sizes = np.concatenate(
            [np.full(int(np.prod(a.shape[:level], dtype=np.int64)), a.shape[level]) for a in arrays]
        )
        values = _list(np.concatenate(([0], np.cumsum(sizes))), values)
    return values


def _list(offsets: np.ndarray[Any, Any], values: Any) -> Any:
    import pyarrow as pa

    if int(offsets[-1]) < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    # A slice of very large tensors: 64-bit offsets (its file is then one of its own type).
    return pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), values)


def _values(flat: np.ndarray[Any, Any]) -> Any:
    """The innermost values: numbers and booleans as they are; text and bytes as text."""
    import pyarrow as pa

    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    if flat.dtype == np.float16:  # Parquet's float16 is too new for many readers
        flat = flat.astype(np.float32)
    if flat.dtype.kind in "biuf":
        return pa.array(flat)
    try:
        return pa.array([_text(x) for x in flat.tolist()], pa.string())
    except TypeError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise TypeError(f"not text: {type(value).__name__}")


def read_log(location: str, model: str | None = None, *, decode: bool = True) -> pd.DataFrame:
    """Every record under ``location`` (of one ``model`` if given), oldest first.

    Columns: ``request_id, time, model, date, version, unit_id, latency_ms, status, inputs,
    outputs, experiment, variant`` (the last two null in files written before they existed).
    With ``decode`` (the default) ``inputs`` and ``outputs`` are dicts ``{tensor: nested
    list}``; otherwise JSON text (NaN and infinities as ``null``). Files of both encodings
    are read: tensors as typed Arrow lists (since issue 13) and as JSON text (before). An
    empty or missing log gives an empty frame.
    """
    import fsspec
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, base = fsspec.core.url_to_fs(location.rstrip("/"))
    base = base.rstrip("/")
    root = base if model is None else f"{base}/model={quote(model, safe='')}"
    files = _parquet_files(fs, root)
    if not files:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in COLUMNS})
    partitioning = ds.partitioning(
        pa.schema([("model", pa.string()), ("date", pa.string())]), flavor="hive"
    )
    by_schema: dict[Any, list[str]] = {}
    # One dataset per file layout (tensor columns differ between models); the footers are read
    # a few at a time (on an object store each is a request).
    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        schemas = list(pool.map(lambda path: _schema_of(fs, path), files))
    for path, schema in zip(files, schemas, strict=True):
        if schema is None:
            continue
        for name in ("experiment", "variant"):
            if schema.get_field_index(name) < 0:  # files from before experiments existed
                schema = schema.append(pa.field(name, pa.string()))
        by_schema.setdefault(schema, []).append(path)
    if not by_schema:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in COLUMNS})
    frames = []
    for schema, paths in by_schema.items():
        dataset = ds.dataset(
            paths,
            schema=schema.append(pa.field("model", pa.string())).append(
                pa.field("date", pa.string())
            ),
            filesystem=fs,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=base,
        )
        table = dataset.to_table()
        tensors = {c: _decode_column(table.column(c), decode) for c in ("inputs", "outputs")}
        frame: pd.DataFrame = table.drop_columns(["inputs", "outputs"]).to_pandas()
        for column, values in tensors.items():
            frame[column] = values
        frames.append(frame)
    whole = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    whole = whole.sort_values("time", kind="stable").reset_index(drop=True)
    result: pd.DataFrame = whole[list(COLUMNS)]
    return result


def _schema_of(fs: Any, path: str) -> Any:
    """A file's schema, or None (with a warning) when its footer cannot be read: a file another
    program left half-written, say; the log's own files are published only once complete."""
    import pyarrow.parquet as pq

    try:
        with fs.open(path, "rb") as fh:
            return pq.read_schema(fh)
    except Exception as exc:
        logger.warning("prediction log: skipping %s, not a readable Parquet file: %s", path, exc)
        return None


def _decode_column(column: Any, decode: bool) -> list[Any]:
    """A tensor column as dicts of nested lists (``decode``) or as JSON text."""
    import pyarrow as pa

    if pa.types.is_string(column.type):  # JSON text: the old encoding, or no tensors
        texts = column.to_pylist()
        return [orjson.loads(t) for t in texts] if decode else texts
    names = [f.name for f in column.type]
    parts = []
    for field in column.type:
        child = pa.chunked_array(
            [chunk.field(field.name) for chunk in column.chunks], type=field.type
        ).to_pylist()
        if pa.types.is_large_string(field.type):  # the JSON fallback
            child = [orjson.loads(t) for t in child]
        parts.append(child)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*parts, strict=True)]
    if decode:
        return rows
    return [orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY).decode() for r in rows]


def _parquet_files(fs: Any, root: str) -> list[str]:
    if not fs.exists(root):
        return []
    found: Iterable[str] = fs.find(root)
    return sorted(
        path
        for path in found
        if path.endswith(".parquet") and not path.rsplit("/", 1)[-1].startswith(("_", "."))
    )
