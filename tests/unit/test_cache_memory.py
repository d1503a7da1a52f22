"""The prediction cache without Redis: L1 LRU + TTL, canonical keys, the codec, single-flight."""

from __future__ import annotations

import ast
import asyncio
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modelplane.cache
from modelplane.cache import (
    MemoryCache,
    PredictionCache,
    decode_outputs,
    encode_outputs,
    open_cache,
    prediction_key,
)
from modelplane.cache.memory import entry_cost
from tests.clocks import FakeClock


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, tier: str, outcome: str) -> None:
        self.seen.append((tier, outcome))

    def count(self, tier: str, outcome: str) -> int:
        return self.seen.count((tier, outcome))


def test_public_api_is_pinned() -> None:
    assert sorted(modelplane.cache.__all__) == [
        "CacheUnavailable",
        "EventSink",
        "MemoryCache",
        "PredictionCache",
        "decode_outputs",
        "encode_outputs",
        "open_cache",
        "prediction_key",
    ]


# Each module of modelplane.cache and the cache modules it may import: the port (base) at the
# bottom, the tiers on it, the composite (tiered) over the port only, the package on top.
CACHE_LAYERS = {
    "base": set(),
    "codec": set(),
    "keys": {"codec"},
    "memory": {"base"},
    "redis": {"base"},
    "tiered": {"base"},
    "__init__": {"base", "codec", "keys", "memory", "redis", "tiered"},
}


def test_cache_modules_import_only_the_layers_below_them() -> None:
    package = Path(modelplane.cache.__file__).parent
    found = {path.stem: _cache_imports(path) for path in package.glob("*.py")}
    assert set(found) == set(CACHE_LAYERS), "a new module: place it in CACHE_LAYERS"
    assert {name: imports - CACHE_LAYERS[name] for name, imports in found.items()} == {
        name: set() for name in CACHE_LAYERS
    }


def _cache_imports(path: Path) -> set[str]:
    """The ``modelplane.cache`` modules ``path`` imports anywhere (functions and
    ``TYPE_CHECKING`` blocks included)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["modelplane", "cache"] and len(parts) == 3:
                imported.add(parts[2])
    return imported


def test_importing_the_cache_does_not_import_redis() -> None:
    import subprocess

    code = "import sys, modelplane.cache; open_l1 = modelplane.cache.open_cache(); "
    code += "assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class TestMemoryCache:
    def test_get_returns_what_was_set(self) -> None:
        cache = MemoryCache(1000, 60)
        cache.set("k", b"value")
        assert cache.get("k") == b"value"
        assert cache.get("other") is None
        assert len(cache) == 1
        assert cache.bytes_used == entry_cost("k", b"value")

    def test_evicts_least_recently_used_when_bytes_overflow(self) -> None:
        cache = MemoryCache(3 * entry_cost("a", b"x" * 10), 60)  # room for three such entries
        for key in "abc":
            cache.set(key, b"x" * 10)
        assert cache.get("a") == b"x" * 10  # "a" is now the most recently used; "b" the least
        cache.set("d", b"y" * 10)
        assert cache.get("b") is None
        assert [cache.get(k) is not None for k in "acd"] == [True, True, True]
        assert cache.bytes_used == 3 * entry_cost("a", b"x" * 10)

    def test_a_large_value_evicts_as_many_entries_as_needed(self) -> None:
        small = entry_cost("0", b"x" * 9)
        cache = MemoryCache(9 * small, 60)
        for i in range(9):
            cache.set(str(i), b"x" * 9)
        cache.set("big", b"z" * (4 * small))
        assert cache.bytes_used <= 9 * small
        assert cache.get("big") == b"z" * (4 * small)
        assert cache.get("0") is None
        assert cache.get("8") is not None

    def test_a_value_larger_than_the_cache_is_not_stored(self) -> None:
        cache = MemoryCache(entry_cost("k", b"small"), 60)
        cache.set("k", b"small")
        cache.set("k", b"x" * 100)
        assert cache.get("k") is None
        assert cache.bytes_used == 0

    def test_overwriting_counts_only_the_new_value(self) -> None:
        cache = MemoryCache(1000, 60)
        cache.set("k", b"x" * 100)
        cache.set("k", b"x" * 10)
        assert cache.bytes_used == entry_cost("k", b"x" * 10)
        assert len(cache) == 1

    def test_entries_expire_after_ttl(self) -> None:
        clock = FakeClock()
        cache = MemoryCache(1000, 5.0, clock=clock)
        cache.set("k", b"v")
        clock.now += 4.9
        assert cache.get("k") == b"v"
        clock.now += 0.1
        assert cache.get("k") is None
        assert len(cache) == 0
        assert cache.bytes_used == 0

    def test_expired_entries_are_dropped_when_writing(self) -> None:
        clock = FakeClock()
        cache = MemoryCache(1000, 1.0, clock=clock)
        cache.set("old", b"v" * 100)
        clock.now += 2
        cache.set("new", b"v")
        assert len(cache) == 1
        assert cache.bytes_used == entry_cost("new", b"v")

    @pytest.mark.parametrize(("max_bytes", "ttl_s"), [(0, 1.0), (10, 0.0)])
    def test_rejects_a_non_positive_bound(self, max_bytes: int, ttl_s: float) -> None:
        with pytest.raises(ValueError, match="positive"):
            MemoryCache(max_bytes, ttl_s)


def _arrays(draw: st.DrawFn) -> dict[str, np.ndarray[Any, Any]]:
    names = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True))
    result = {}
    for name in names:
        dtype = draw(st.sampled_from(["<i8", "<f4", "|b1", "<u2", "<f2"]))
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
        result[name] = draw(hnp.arrays(dtype, shape))
    return result


arrays_dicts = st.composite(_arrays)


class TestPredictionKey:
    @given(arrays_dicts(), st.randoms(use_true_random=False))
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    def test_ignores_dict_order_and_memory_layout(
        self, inputs: dict[str, np.ndarray[Any, Any]], rnd: Any
    ) -> None:
        names = list(inputs)
        rnd.shuffle(names)
        relaid: dict[str, np.ndarray[Any, Any]] = {}
        for name in names:
            arr = inputs[name]
            layout = rnd.choice(["fortran", "strided", "swapped"])
            if layout == "fortran":
                relaid[name] = np.asfortranarray(arr)
            elif layout == "strided":  # a non-contiguous view with the same values
                wide = np.repeat(arr[..., np.newaxis], 2, axis=-1)
                relaid[name] = wide[..., 0]
            else:  # the same values stored big-endian
                relaid[name] = arr.astype(arr.dtype.newbyteorder(">"))
        assert prediction_key("m", 1, relaid) == prediction_key("m", 1, inputs)

    @given(arrays_dicts(), st.data())
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    def test_any_single_element_change_changes_the_key(
        self, inputs: dict[str, np.ndarray[Any, Any]], data: st.DataObject
    ) -> None:
        name = data.draw(st.sampled_from(sorted(inputs)))
        changed = {k: v.copy() for k, v in inputs.items()}
        flat = changed[name].reshape(-1)
        index = data.draw(st.integers(0, flat.size - 1))
        raw = flat[index : index + 1].view(np.uint8)
        raw[data.draw(st.integers(0, raw.size - 1))] ^= 1  # flip one bit of one element
        assert prediction_key("m", 1, changed) != prediction_key("m", 1, inputs)

    def test_name_dtype_shape_model_version_and_outputs_are_all_in_the_key(self) -> None:
        x = np.arange(6, dtype=np.int64)
        base = prediction_key("m", 1, {"x": x})
        variants = [
            prediction_key("m", 1, {"y": x}),
            prediction_key("m", 1, {"x": x.astype(np.int32)}),
            prediction_key("m", 1, {"x": x.astype(np.float64)}),
            prediction_key("m", 1, {"x": x.reshape(2, 3)}),
            prediction_key("m", 1, {"x": x.reshape(6, 1)}),
            prediction_key("n", 1, {"x": x}),
            prediction_key("m", 2, {"x": x}),
            prediction_key("m", 1, {"x": x}, ["out"]),
            prediction_key("m", 1, {"x": x, "z": np.zeros(0)}),
        ]
        assert len({base, *variants}) == len(variants) + 1

    def test_framing_keeps_adjacent_fields_apart(self) -> None:
        a = prediction_key("m", 1, {"ab": np.zeros(1)}, ["c"])
        b = prediction_key("m", 1, {"a": np.zeros(1)}, ["bc"])
        objects_1 = prediction_key("m", 1, {"s": np.array([b"ab", b"c"], dtype=object)})
        objects_2 = prediction_key("m", 1, {"s": np.array([b"a", b"bc"], dtype=object)})
        assert a != b
        assert objects_1 != objects_2

    def test_bytes_tensors_hash_element_wise(self) -> None:
        one = np.array([b"a", b"bc"], dtype=object)
        same = np.array([[b"a"], [b"bc"]], dtype=object)[:, 0]
        text = np.array(["a", "bc"], dtype=object)
        assert prediction_key("m", 1, {"s": one}) == prediction_key("m", 1, {"s": same})
        assert prediction_key("m", 1, {"s": one}) != prediction_key("m", 1, {"s": text})

    def test_object_elements_are_typed_in_the_key(self) -> None:
        keys = {
            prediction_key("m", 1, {"s": np.array([value], dtype=object)})
            for value in [1, "1", b"1", 1.0, True, None, 0, False, np.int64(1)]
        }
        assert len(keys) == 8  # all distinct, except np.int64(1) which keys as 1

    def test_object_elements_of_other_types_are_refused(self) -> None:
        with pytest.raises(TypeError, match="dict"):
            prediction_key("m", 1, {"s": np.array([{}], dtype=object)})

    def test_is_32_hex_characters(self) -> None:
        key = prediction_key("m", 1, {"x": np.zeros((2, 2))})
        assert len(key) == 32
        int(key, 16)


EVERY_DTYPE = [
    np.array([True, False, True]),
    *(np.arange(-3, 3).astype(t) for t in ("i1", "i2", "i4", "i8")),
    *(np.arange(0, 6).astype(t) for t in ("u1", "u2", "u4", "u8")),
    np.array([0.5, -1.25, np.inf], dtype=np.float16),
    np.array([[0.5, np.nan], [1e30, -0.0]], dtype=np.float32),
    np.linspace(0, 1, 7, dtype=np.float64),
    np.array([1 + 2j, -3j], dtype=np.complex64),
    np.array([b"", b"\x00\xff", b"abc"], dtype=object),
    np.array([["héllo", ""], ["x", "\U0001f600"]], dtype=object),
    np.array([None, True, -(10**30), 2.5, "mixed", b"\x00"], dtype=object),
    np.array([b"ab", b"c"], dtype="S2"),
    np.array(["ab", "ç"], dtype="U2"),
    np.array(["2024-01-02T03:04"], dtype="datetime64[m]"),
    np.array([5], dtype="timedelta64[ms]"),
    np.arange(4, dtype=">f8"),
    np.zeros((0, 3), dtype=np.float32),
    np.array(7, dtype=np.int64),
    np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
]


class TestCodec:
    @pytest.mark.parametrize("arr", EVERY_DTYPE, ids=lambda a: f"{a.dtype.str}{a.shape}")
    def test_round_trips_every_dtype(self, arr: np.ndarray[Any, Any]) -> None:
        decoded = decode_outputs(encode_outputs({"out": arr, "other": np.ones(2)}))
        assert list(decoded) == ["out", "other"]
        out = decoded["out"]
        assert out.dtype == arr.dtype
        assert out.shape == arr.shape
        assert out.flags.writeable
        if arr.dtype == object:
            assert out.tolist() == arr.tolist()
        else:
            np.testing.assert_array_equal(out, arr)

    def test_round_trips_no_outputs(self) -> None:
        assert decode_outputs(encode_outputs({})) == {}

    @pytest.mark.parametrize(
        "garbage",
        [
            b"",
            b"not a cache entry",
            b"\x80\x04\x95pickle",
            b"MPO1" + struct.pack("<I", 1),
            b"MPO1" + struct.pack("<I", 0) + b"trailing",
        ],
    )
    def test_garbage_raises_value_error(self, garbage: bytes) -> None:
        with pytest.raises(ValueError, match="not an encoded prediction"):
            decode_outputs(garbage)

    def test_an_object_dtype_cannot_be_smuggled_as_raw(self) -> None:
        good = encode_outputs({"x": np.zeros(1, dtype=np.int64)})
        evil = good.replace(b"<i8", b"|O8")
        with pytest.raises(ValueError, match="dtype"):
            decode_outputs(evil)

    def test_a_shape_that_does_not_match_the_payload_is_refused(self) -> None:
        good = encode_outputs({"x": np.zeros(2, dtype=np.int64)})
        evil = good.replace(struct.pack("<Q", 2), struct.pack("<Q", 3), 1)
        with pytest.raises(ValueError, match="not an encoded prediction"):
            decode_outputs(evil)

    @given(st.data())
    @settings(max_examples=200)
    def test_any_corruption_raises_value_error_or_decodes(self, data: st.DataObject) -> None:
        encoded = bytearray(
            encode_outputs(
                {
                    "a": np.arange(3, dtype=np.float32),
                    "b": np.array([b"x", "y", 3, 1.5, None, False], dtype=object),
                }
            )
        )
        for _ in range(data.draw(st.integers(1, 3))):
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(encoded)))
        try:
            decoded = decode_outputs(bytes(encoded[:cut]))
        except ValueError:
            return
        assert all(isinstance(v, np.ndarray) for v in decoded.values())

    def test_unsupported_output_types_are_refused_when_encoding(self) -> None:
        with pytest.raises(TypeError):
            encode_outputs({"x": np.array([object()], dtype=object)})
        with pytest.raises(TypeError):
            encode_outputs({"x": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])})


class Computation:
    """A compute function that counts its calls and finishes when released."""

    def __init__(self, value: bytes = b"value", error: Exception | None = None) -> None:
        self.calls = 0
        self.value = value
        self.error = error
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def _start_many(
    cache: PredictionCache, compute: Callable[[], Awaitable[bytes]], n: int
) -> list[asyncio.Task[tuple[bytes, bool]]]:
    tasks = [asyncio.ensure_future(cache.get_or_compute("k", compute)) for _ in range(n)]
    for _ in range(3):
        await asyncio.sleep(0)  # let every task reach its await
    return tasks


class TestSingleFlight:
    @pytest.mark.anyio
    async def test_concurrent_identical_misses_compute_once(self) -> None:
        events = Events()
        cache = PredictionCache(MemoryCache(1 << 20, 60), None, on_event=events)
        compute = Computation()
        tasks = await _start_many(cache, compute, 100)
        compute.release.set()
        results = await asyncio.gather(*tasks)
        assert compute.calls == 1
        assert results == [(b"value", False)] * 100
        assert events.count("flight", "shared") == 99
        assert events.count("l1", "miss") == 100
        assert await cache.get_or_compute("k", compute) == (b"value", True)
        assert events.count("l1", "hit") == 1

    @pytest.mark.anyio
    async def test_a_failing_compute_fails_every_waiter_and_caches_nothing(self) -> None:
        l1 = MemoryCache(1 << 20, 60)
        cache = PredictionCache(l1, None)
        failing = Computation(error=RuntimeError("model exploded"))
        tasks = await _start_many(cache, failing, 20)
        failing.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert failing.calls == 1
        assert all(isinstance(r, RuntimeError) and str(r) == "model exploded" for r in results)
        assert len(l1) == 0

        healthy = Computation(b"second")
        healthy.release.set()
        assert await cache.get_or_compute("k", healthy) == (b"second", False)
        assert healthy.calls == 1

    @pytest.mark.anyio
    async def test_a_cancelled_waiter_does_not_cancel_the_others(self) -> None:
        cache = PredictionCache(MemoryCache(1 << 20, 60), None)
        compute = Computation()
        tasks = await _start_many(cache, compute, 3)
        tasks[0].cancel()  # the caller that started the computation gives up
        await asyncio.sleep(0)
        compute.release.set()
        assert await asyncio.gather(*tasks[1:]) == [(b"value", False)] * 2
        assert tasks[0].cancelled()
        assert compute.calls == 1

    @pytest.mark.anyio
    async def test_different_keys_compute_separately(self) -> None:
        cache = PredictionCache(MemoryCache(1 << 20, 60), None)

        async def compute_a() -> bytes:
            return b"a"

        async def compute_b() -> bytes:
            return b"b"

        results = await asyncio.gather(
            cache.get_or_compute("a", compute_a), cache.get_or_compute("b", compute_b)
        )
        assert results == [(b"a", False), (b"b", False)]

    @pytest.mark.anyio
    async def test_bypass_computes_without_reading_and_stores_the_fresh_value(self) -> None:
        l1 = MemoryCache(1 << 20, 60)
        l1.set("k", b"stale")
        cache = PredictionCache(l1, None)
        fresh = Computation(b"fresh")
        fresh.release.set()
        assert await cache.get_or_compute("k", fresh, bypass=True) == (b"fresh", False)
        assert l1.get("k") == b"fresh"

    @pytest.mark.anyio
    async def test_works_without_any_tier(self) -> None:
        cache = PredictionCache(None, None)
        compute = Computation()
        tasks = await _start_many(cache, compute, 10)
        compute.release.set()
        assert await asyncio.gather(*tasks) == [(b"value", False)] * 10
        assert compute.calls == 1
        await cache.close()

    @pytest.mark.anyio
    async def test_open_cache_builds_an_l1_only_cache_by_default(self) -> None:
        events = Events()
        cache = open_cache(l1_bytes=1 << 20, ttl_s=60, on_event=events)
        assert cache.l1 is not None
        assert cache.l2 is None
        compute = Computation()
        compute.release.set()
        await cache.get_or_compute("k", compute)
        assert await cache.get_or_compute("k", compute) == (b"value", True)
        assert events.seen == [("l1", "miss"), ("l1", "set"), ("l1", "hit")]
        await cache.close()
