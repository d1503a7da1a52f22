"""OpenTelemetry traces of the inference server: validate → route → cache → queue → predict.

:func:`setup_tracing` builds the server's :class:`Tracer` and makes it the active one that the
module-level :func:`span` and :func:`start_request_span` use, so code deep in the request path
opens spans without a tracer being threaded through it. Without an OTLP endpoint or an
exporter, tracing is off: no SDK provider is created and :func:`span` returns one shared
do-nothing context manager (a dict build and two calls, no allocation of a span).

The request span continues the caller's trace when the request carries a W3C ``traceparent``
header; :func:`traceparent_of_current` gives the header value to send back.

We do not install a global OpenTelemetry ``TracerProvider``: the SDK lets a process set it only
once, while a server (and each test) builds its own. Context propagation (``contextvars``) is
global anyway, so nesting works across ``await`` — but not into a thread pool unless the
caller copies the context (``asyncio.to_thread`` does, ``run_in_executor`` does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "Tracer",
    "active_tracer",
    "enabled",
    "setup_tracing",
    "shutdown_tracing",
    "span",
    "start_request_span",
    "trace_id_of_current",
    "traceparent_of_current",
]

SpanContextManager = AbstractContextManager[trace.Span]


class _NoopSpan:
    """The context manager every span is when tracing is off; yields the invalid span."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads ``traceparent``/``tracestate`` whatever the case of the header names."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            value = next((v for k, v in carrier.items() if k.lower() == key), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracer:
    """Opens spans on an OpenTelemetry SDK tracer, or does nothing when ``otel`` is None."""

    def __init__(self, otel: trace.Tracer | None = None, provider: Any = None) -> None:
        self._otel = otel
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._otel is not None

    def span(self, name: str, **attrs: Any) -> SpanContextManager:
        """A child of the current span, current while the ``with`` block runs.

        ``None`` attribute values are left out; an exception leaving the block is recorded
        on the span and marks it as an error.
        """
        if self._otel is None:
            return _NOOP_SPAN
        return self._otel.start_as_current_span(name, attributes=_attributes(attrs))

    def start_request_span(
        self, headers: Mapping[str, str], name: str, **attrs: Any
    ) -> SpanContextManager:
        """The server span of a request, continuing the trace of its ``traceparent`` header."""
        if self._otel is None:
            return _NOOP_SPAN
        parent = _PROPAGATOR.extract(headers, getter=_GETTER)
        return self._otel.start_as_current_span(
            name, context=parent, kind=trace.SpanKind.SERVER, attributes=_attributes(attrs)
        )

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        """Export the spans ended so far; True when done in time (or tracing is off)."""
        if self._provider is None:
            return True
        return bool(self._provider.force_flush(timeout_ms))

    def shutdown(self) -> None:
        """Export what is pending and stop the exporter thread."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._otel = None


def _attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


_DISABLED = Tracer()
_active: Tracer = _DISABLED


def setup_tracing(
    service_name: str = "modelplane",
    *,
    otlp_endpoint: str | None = None,
    exporter: Any = None,
    sample_ratio: float = 1.0,
) -> Tracer:
    """Build the tracer and make it the active one; return it.

    ``otlp_endpoint`` (``http://collector:4317``) exports over OTLP gRPC; ``exporter`` (any
    ``SpanExporter``, e.g. the SDK's ``InMemorySpanExporter`` in tests) takes precedence. Spans
    leave through a ``BatchSpanProcessor``: a bounded queue and its own thread, never the
    request path. ``sample_ratio`` samples new traces; a caller's sampled flag is followed.
    With neither endpoint nor exporter, tracing is off and no SDK object is created.
    A previous active tracer is shut down.
    """
    global _active
    previous = _active
    if exporter is None and otlp_endpoint is None:
        tracer = _DISABLED
    else:
        tracer = _sdk_tracer(service_name, otlp_endpoint, exporter, sample_ratio)
    _active = tracer
    if previous is not tracer:
        previous.shutdown()
    return tracer


def _sdk_tracer(
    service_name: str, otlp_endpoint: str | None, exporter: Any, sample_ratio: float
) -> Tracer:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracer(provider.get_tracer("modelplane.serving"), provider)


def shutdown_tracing() -> None:
    """Flush and stop the active tracer; tracing is off afterwards."""
    setup_tracing()


def active_tracer() -> Tracer:
    return _active


def span(name: str, **attrs: Any) -> SpanContextManager:
    """A span on the active tracer (see :meth:`Tracer.span`); free when tracing is off."""
    tracer = _active
    if tracer._otel is None:
        return _NOOP_SPAN
    return tracer.span(name, **attrs)


def enabled() -> bool:
    """Whether spans are recorded (``setup_tracing`` was given an endpoint or exporter)."""
    return _active._otel is not None


def start_request_span(headers: Mapping[str, str], name: str, **attrs: Any) -> SpanContextManager:
    """The request's server span on the active tracer (see :meth:`Tracer.start_request_span`)."""
    return _active.start_request_span(headers, name, **attrs)


def traceparent_of_current() -> str | None:
    """The W3C ``traceparent`` of the current span (``00-<trace>-<span>-<flags>``), or None."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def trace_id_of_current() -> str | None:
    """The current trace id as 32 hex digits (for log lines), or None."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None
