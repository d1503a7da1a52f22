"""Tracing: nested spans, W3C trace context in and out, a free no-op when off; the access log."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelplane.serving import accesslog, tracing
from modelplane.serving.accesslog import configure_access_log, log_request
from modelplane.serving.tracing import (
    setup_tracing,
    shutdown_tracing,
    span,
    start_request_span,
    trace_id_of_current,
    traceparent_of_current,
)

TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    setup_tracing("test", exporter=exporter)
    yield exporter
    shutdown_tracing()


def finished(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    assert tracing.active_tracer().force_flush()
    return {s.name: s for s in exporter.get_finished_spans()}


class TestEnabled:
    def test_nested_spans_have_the_right_parents(self, exporter: InMemorySpanExporter) -> None:
        with (
            start_request_span({}, "POST /predict"),
            span("validate", model="fraud"),
            span("route"),
            span("cache"),
            span("queue"),
            span("predict", rows=3),
        ):
            pass

        spans = finished(exporter)
        assert set(spans) == {"POST /predict", "validate", "route", "cache", "queue", "predict"}
        chain = ["POST /predict", "validate", "route", "cache", "queue", "predict"]
        for parent, child in itertools.pairwise(chain):
            parent_ctx, child_parent = spans[parent].context, spans[child].parent
            assert parent_ctx is not None
            assert child_parent is not None
            assert child_parent.span_id == parent_ctx.span_id
        assert spans["POST /predict"].parent is None
        assert spans["validate"].attributes == {"model": "fraud"}
        assert spans["predict"].attributes == {"rows": 3}

    def test_an_incoming_traceparent_is_continued(self, exporter: InMemorySpanExporter) -> None:
        with start_request_span({"Traceparent": CALLER}, "POST /predict"):
            with span("predict"):
                pass
            header = traceparent_of_current()

        spans = finished(exporter)
        request = spans["POST /predict"].context
        assert request is not None
        assert f"{request.trace_id:032x}" == CALLER_TRACE
        caller = spans["POST /predict"].parent
        assert caller is not None
        assert caller.span_id == 0x00F067AA0BA902B7
        assert header == f"00-{CALLER_TRACE}-{request.span_id:016x}-01"

    def test_traceparent_of_current_is_a_w3c_header(self, exporter: InMemorySpanExporter) -> None:
        assert traceparent_of_current() is None
        with start_request_span({}, "GET /v2"):
            header = traceparent_of_current()
            trace_id = trace_id_of_current()
        assert header is not None
        assert TRACEPARENT_RE.fullmatch(header)
        assert header.split("-")[1] == trace_id
        # Flags: sampled (0x01); the SDK also sets W3C level 2's random-trace-id bit (0x02).
        assert int(header[-2:], 16) & 0x01

    def test_an_exception_marks_the_span_as_an_error(self, exporter: InMemorySpanExporter) -> None:
        with pytest.raises(RuntimeError), span("predict"):
            raise RuntimeError("model failed")

        status = finished(exporter)["predict"].status
        assert not status.is_ok

    def test_none_attributes_are_left_out(self, exporter: InMemorySpanExporter) -> None:
        with span("cache", tier="l1", key=None):
            pass
        assert finished(exporter)["cache"].attributes == {"tier": "l1"}


class TestDisabled:
    def test_no_spans_and_no_errors(self) -> None:
        tracer = setup_tracing("test")
        assert not tracer.enabled
        with start_request_span({"traceparent": CALLER}, "POST /predict") as outer:
            with span("predict", rows=1) as inner:
                inner.set_attribute("ignored", True)
            assert not outer.is_recording()
            assert traceparent_of_current() is None
            assert trace_id_of_current() is None
        assert tracer.force_flush()

    def test_setup_without_exporter_creates_no_sdk_provider(self) -> None:
        tracer = setup_tracing("test")
        assert tracer._provider is None
        assert span("a") is span("b")  # one shared do-nothing context manager

    def test_shutdown_turns_tracing_off(self) -> None:
        setup_tracing("test", exporter=InMemorySpanExporter())
        assert tracing.active_tracer().enabled
        shutdown_tracing()
        assert not tracing.active_tracer().enabled


class TestAccessLog:
    @pytest.fixture(autouse=True)
    def _restore(self) -> Iterator[None]:
        yield
        configure_access_log(enabled=False)

    def test_one_json_line_per_request(self) -> None:
        stream = io.StringIO()
        configure_access_log(stream)

        log_request(
            request_id="r1",
            method="POST",
            path="/predict",
            model="fraud",
            version=3,
            status=200,
            latency_ms=1.23456,
            trace_id=CALLER_TRACE,
            cached=True,
        )

        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        line = orjson.loads(lines[0])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("ts"))
        assert line == {
            "request_id": "r1",
            "method": "POST",
            "path": "/predict",
            "model": "fraud",
            "version": 3,
            "status": 200,
            "latency_ms": 1.235,
            "trace_id": CALLER_TRACE,
            "fallback": False,
            "cached": True,
        }

    def test_lines_are_buffered_and_written_together_on_flush(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stream = io.StringIO()
        configure_access_log(stream)
        monkeypatch.setattr(accesslog, "FLUSH_S", 3600.0)  # no timer fires on a slow machine

        async def three_requests() -> list[str]:
            for i in range(3):
                log_request(request_id=f"r{i}", method="GET", path="/v2", model=None,
                            version=None, status=200, latency_ms=0.1)  # fmt: skip
            await asyncio.sleep(0)
            assert stream.getvalue() == ""  # buffered: nothing written yet
            accesslog.flush()  # what the server does as it stops
            return stream.getvalue().splitlines()

        lines = asyncio.run(three_requests())
        assert [orjson.loads(line)["request_id"] for line in lines] == ["r0", "r1", "r2"]

    def test_the_buffer_is_written_by_its_timer_and_when_full(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class Signalling(io.StringIO):
            """A stream that says when it is written to (the test waits on that, not a time)."""

            written: asyncio.Event | None = None

            def write(self, text: str) -> int:
                n = super().write(text)
                if self.written is not None:
                    self.written.set()
                return n

        stream = Signalling()
        configure_access_log(stream)
        monkeypatch.setattr(accesslog, "FLUSH_S", 0.0)

        async def one_request_then_a_turn() -> str:
            stream.written = asyncio.Event()
            log_request(request_id="t", method="GET", path="/v2", model=None, version=None,
                        status=200, latency_ms=0.1)  # fmt: skip
            await asyncio.wait_for(stream.written.wait(), 60)  # the timer fired
            stream.written = None
            return stream.getvalue()

        assert orjson.loads(asyncio.run(one_request_then_a_turn()))["request_id"] == "t"

        monkeypatch.setattr(accesslog, "FLUSH_S", 3600.0)
        monkeypatch.setattr(accesslog, "BUFFER_BYTES", 1)

        async def full() -> str:
            log_request(request_id="f", method="GET", path="/v2", model=None, version=None,
                        status=200, latency_ms=0.1)  # fmt: skip
            return stream.getvalue()  # written at once: the buffer was full

        assert orjson.loads(asyncio.run(full()).splitlines()[-1])["request_id"] == "f"

    def test_a_handler_a_user_adds_sees_every_line(self) -> None:
        stream = io.StringIO()
        logger = configure_access_log(stream)
        seen: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = seen.append  # type: ignore[method-assign]
        logger.addHandler(handler)
        try:
            log_request(request_id="r1", method="GET", path="/v2", model=None, version=None,
                        status=200, latency_ms=0.1)  # fmt: skip
        finally:
            logger.removeHandler(handler)

        assert [r.msg["request_id"] for r in seen] == ["r1"]  # type: ignore[index]
        assert orjson.loads(stream.getvalue())["request_id"] == "r1"  # and ours still writes

    def test_logging_shutdown_writes_what_is_buffered(self) -> None:
        stream = io.StringIO()
        logger = configure_access_log(stream)

        async def one() -> None:
            log_request(request_id="s", method="GET", path="/v2", model=None, version=None,
                        status=200, latency_ms=0.1)  # fmt: skip

        asyncio.run(one())
        for handler in logger.handlers:
            handler.flush()  # what logging.shutdown and dictConfig do
        assert orjson.loads(stream.getvalue())["request_id"] == "s"

    def test_nothing_is_written_when_disabled(self) -> None:
        stream = io.StringIO()
        configure_access_log(stream, enabled=False)
        log_request(
            request_id="r1",
            method="GET",
            path="/v2",
            model=None,
            version=None,
            status=200,
            latency_ms=0.1,
        )
        assert stream.getvalue() == ""
