"""The translator's OpenTelemetry spans, in the trace Envoy started (docs/observability.md, "Traces").

Off by default: ``Gateway.tracing`` is then None, the SDK is never imported, and a stream pays
one ``is None`` test (a phase: one call returning the shared ``NULL`` context).

On, Envoy opens each ext_proc stream inside a span of its own (the ext_proc call, a child of
the request's span or of the attempt's upstream span) and sends that span's context as the
stream's ``traceparent`` gRPC metadata. A stream whose ``traceparent`` is sampled gets one span
here, a child of Envoy's, and a child span per phase::

    Envoy: ingress ─┬─ ext_proc call ── tokengate.router  (span name "{operation} {model}")
                    │                     ├─ tokengate.admission
                    │                     ├─ tokengate.response   (first to last response chunk)
                    │                     └─ tokengate.metering
                    └─ router egress (per attempt) ── ext_proc call ── tokengate.attempt

An unsampled (or absent) ``traceparent`` costs no span at all: sampling is Envoy's decision
(``tracing.sampling``), the translators follow it. Spans leave through the SDK's batch
processor, on its own thread, off the request path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from core.config import Tracing as TracingConfig

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

NULL: contextlib.nullcontext[None] = contextlib.nullcontext()  # a phase of an untraced stream


class Tracing:
    """The process's tracer provider and OTLP exporter (one per translator process)."""

    def __init__(self, cfg: TracingConfig) -> None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": f"{cfg.service_name}-translator"}),
            sampler=ParentBased(ALWAYS_OFF),  # a span only inside a trace Envoy samples
        )
        # An unreachable collector holds an export (and a shutdown's last one) for at most 5 s.
        exporter = OTLPSpanExporter(endpoint=cfg.otlp_endpoint, insecure=True, timeout=5)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("tokengate.translator")
        self._propagator = TraceContextTextMapPropagator()

    def start(self, name: str, metadata: Iterable[tuple[str, Any]] | None) -> Trace | None:
        """The stream's span, a child of Envoy's ext_proc call span; None unless that one is sampled."""
        carrier = {k: v for k, v in metadata or () if k in ("traceparent", "tracestate")}
        parent = carrier.get("traceparent")
        if not isinstance(parent, str) or not _sampled(parent):
            return None
        from opentelemetry.trace import SpanKind, set_span_in_context

        ctx = self._propagator.extract(carrier)
        span = self.tracer.start_span(name, context=ctx, kind=SpanKind.SERVER)
        return Trace(self.tracer, span, set_span_in_context(span))

    def shutdown(self) -> None:
        """Export what is buffered (bounded by the exporter's own timeout)."""
        self.provider.shutdown()


def _sampled(traceparent: str) -> bool:
    """W3C trace-context: version-traceid-spanid-flags, bit 0 of the flags is "sampled"."""
    try:
        return len(traceparent) >= 55 and bool(int(traceparent[53:55], 16) & 1)
    except ValueError:
        return False


class Trace:
    """One stream's span and the children of its phases."""

    __slots__ = ("ctx", "span", "tracer")

    def __init__(self, tracer: Tracer, span: Span, ctx: Context) -> None:
        self.tracer, self.span, self.ctx = tracer, span, ctx

    def begin(self, name: str, attributes: dict[str, Any] | None = None) -> Span:
        """A child span the caller ends (one that outlives a message, such as the response's)."""
        return self.tracer.start_span(name, context=self.ctx, attributes=attributes)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Span]:
        """A child span around a block; an exception marks it failed (and goes on)."""
        span = self.begin(name)
        try:
            yield span
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            span.end()


def phase(trace: Trace | None, name: str) -> contextlib.AbstractContextManager[Any]:
    """``trace.phase(name)``, or the shared no-op context for an untraced stream."""
    return NULL if trace is None else trace.phase(name)


def fail(span: Span, exc: BaseException | str) -> None:
    """Mark ``span`` failed: OTel's ``error.type`` and an ERROR status (the exception recorded)."""
    from opentelemetry.trace import Status, StatusCode

    kind = exc if isinstance(exc, str) else getattr(exc, "kind", None) or type(exc).__name__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))
    if isinstance(exc, BaseException):
        span.record_exception(exc)
