"""Prometheus metrics of the translator processes (docs/observability.md, "Metrics").

Every worker writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode); the worker started with
``--metrics-listen`` serves ``/metrics`` for all of them, aggregated, followed by
Envoy's own ``/stats/prometheus`` (its admin port is loopback only, in the same pod):
one endpoint for the gateway pod.

The OpenTelemetry GenAI semantic conventions, in Prometheus form (dots become
underscores, the unit ``s`` a ``_seconds`` suffix, ``{token}`` no suffix):

    gen_ai_client_token_usage{op,provider,request_model,response_model,token_type}  input / output tokens
    gen_ai_server_request_duration_seconds{…, error_type}   request start to last byte
    gen_ai_server_time_to_first_token_seconds{…}            request start to the first response byte (streams)
    gen_ai_server_time_per_output_token_seconds{…}          the rest of a stream over its other output tokens

(``…``: gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model,
gen_ai_response_model.) tokengate's own:

    tokengate_requests_total{model,deployment,protocol,status}   admitted requests, by outcome
    tokengate_rejected_total{protocol,kind}                      refused before any upstream call
    tokengate_request_seconds{model,protocol}                    duration, request start to last byte
    tokengate_tokens_total{model,deployment,bucket}              input, cache_read, cache_write, output, reasoning
    tokengate_cost_nano_usd_total{model}                         what was charged
    tokengate_admissions_total{path}                             admitted against a lease in process, or by Redis
    tokengate_admission_outcomes_total{outcome}                  admitted, insufficient_balance, rate_limited, …
    tokengate_upstream_attempts_total{model,deployment}          attempts Envoy made, by the deployment that answered
    tokengate_failovers_total{model,deployment}                  requests answered after more than one attempt

Every label takes its values from the configuration or from a fixed set: never an
account, a key or a request (tests/test_metrics_names.py checks it).

A request's samples (about twenty) are added up in the process (``TALLY``) and handed to
prometheus_client once a second (``flush_every``) and at shutdown: written at once, each
was a lock and an mmap write (a histogram's also a walk over its buckets), and metrics took
8% of the request path's instructions in process; the tally halves that (docs/performance.md).
A scrape sees a request's samples at most a second late.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import urllib.request
from bisect import bisect_left
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from core.config import Provider
from core.usage import BUCKETS

REQUESTS = Counter("tokengate_requests_total", "Admitted requests by outcome",
                   ["model", "deployment", "protocol", "status"])
REJECTED = Counter("tokengate_rejected_total", "Requests refused before any upstream call",
                   ["protocol", "kind"])
DURATION = Histogram("tokengate_request_seconds", "Request duration, start to last byte",
                     ["model", "protocol"],
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
TOKENS = Counter("tokengate_tokens_total", "Tokens by usage bucket", ["model", "deployment", "bucket"])
COST = Counter("tokengate_cost_nano_usd_total", "Charged cost in nano-USD", ["model"])
ADMISSIONS = Counter("tokengate_admissions_total", "Admissions: against a lease in process, or by a Redis call",
                     ["path"])
ADMISSION_OUTCOMES = Counter("tokengate_admission_outcomes_total",
                             "Admission decisions: admitted, or why not (fail_closed: Redis unavailable)",
                             ["outcome"])
ATTEMPTS = Counter("tokengate_upstream_attempts_total",
                   "Upstream attempts Envoy made (retries and failovers included), by the deployment that answered",
                   ["model", "deployment"])
FAILOVERS = Counter("tokengate_failovers_total", "Requests answered after more than one upstream attempt",
                    ["model", "deployment"])

# The GenAI semantic conventions (docs/gen-ai/gen-ai-metrics.md), their recommended buckets.
_GEN_AI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model"]
GEN_AI_TOKENS = Histogram(
    "gen_ai_client_token_usage", "Number of input and output tokens used", [*_GEN_AI, "gen_ai_token_type"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864))
GEN_AI_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds", "Generative AI server request duration (time to last byte)",
    [*_GEN_AI, "error_type"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92))
GEN_AI_TTFT = Histogram(
    "gen_ai_server_time_to_first_token_seconds", "Time to generate first token for successful responses",
    _GEN_AI, buckets=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0))
GEN_AI_TPOT = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Time per output token generated after the first token for successful responses",
    _GEN_AI, buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5))

# gen_ai.provider.name: the conventions' well-known value where one applies, by preset or official host;
# otherwise the preset's name, else the provider's name in the configuration (a custom value they allow).
_WELL_KNOWN_PRESETS = {
    "openai": "openai", "openai-responses": "openai", "anthropic": "anthropic", "google-ai-studio": "gcp.gemini",
    "deepseek": "deepseek", "deepseek-anthropic": "deepseek", "mistral": "mistral_ai", "groq": "groq",
    "xai": "x_ai", "perplexity": "perplexity", "cohere": "cohere", "moonshot": "moonshot_ai",
    "moonshot-cn": "moonshot_ai", "moonshot-anthropic": "moonshot_ai", "azure-openai": "azure.ai.openai",
    "azure-ai-foundry": "azure.ai.openai", "aws-bedrock": "aws.bedrock", "vertex-ai": "gcp.vertex_ai",
    "vertex-ai-anthropic": "gcp.vertex_ai",
}
_WELL_KNOWN_HOSTS = {
    "api.openai.com": "openai", "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini", "aiplatform.googleapis.com": "gcp.vertex_ai",
}


def gen_ai_provider(p: Provider) -> str:
    """The provider's ``gen_ai.provider.name``."""
    if p.azure is not None:
        return "azure.ai.openai"
    if p.preset:
        return _WELL_KNOWN_PRESETS.get(p.preset, p.preset)
    host = p.base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return _WELL_KNOWN_HOSTS.get(host, p.name)


def gen_ai_operation(kind: str, chat: str) -> str:
    """``gen_ai.operation.name`` of an endpoint kind (translator.protocols.base.Kind's value); ``chat``:
    the caller's protocol's name for a chat request (its codec's ``gen_ai_operation``)."""
    if kind == "chat":
        return chat
    return "embeddings" if kind.startswith("embed") else kind  # count_tokens: a custom value


class Series(NamedTuple):
    """The children one request's shape writes to, looked up once per shape (see ``series``)."""

    requests: Any
    duration: Any
    tokens: dict[str, Any]
    cost: Any
    gen_ai_input: Any
    gen_ai_output: Any
    gen_ai_duration: Any
    ttft: Any
    tpot: Any
    attempts: Any
    failovers: Any


@functools.lru_cache(maxsize=4096)
def series(model: str, deployment: str, protocol: str, status: str, kind: str, chat: str, provider: str,
           response_model: str, error_type: str) -> Series:
    """Every child a request of this shape records to (``labels()`` validates and locks on each call)."""
    ga = (gen_ai_operation(kind, chat), provider, model, response_model)
    return Series(
        REQUESTS.labels(model, deployment, protocol, status), DURATION.labels(model, protocol),
        {b: TOKENS.labels(model, deployment, b) for b in BUCKETS},
        COST.labels(model), GEN_AI_TOKENS.labels(*ga, "input"), GEN_AI_TOKENS.labels(*ga, "output"),
        GEN_AI_DURATION.labels(*ga, error_type), GEN_AI_TTFT.labels(*ga), GEN_AI_TPOT.labels(*ga),
        ATTEMPTS.labels(model, deployment), FAILOVERS.labels(model, deployment))


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (labels() validates and locks each call)."""
    return metric.labels(*labels)


class Tally:
    """Counter and histogram samples added up until ``flush`` writes them (one ``inc`` per value
    touched). Used from the event loop's thread only."""

    def __init__(self) -> None:
        self._amounts: dict[Any, float] = {}  # a counter child, or a histogram child's bucket or sum value

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        a = self._amounts
        a[counter] = a.get(counter, 0.0) + amount

    def observe(self, histogram: Any, amount: float) -> None:
        """What ``histogram.observe(amount)`` adds: one to the first bucket whose bound is ``>= amount``
        (the last bound is +Inf), ``amount`` to the sum."""
        a = self._amounts
        bucket = histogram._buckets[bisect_left(histogram._upper_bounds, amount)]
        a[bucket] = a.get(bucket, 0.0) + 1.0
        total = histogram._sum
        a[total] = a.get(total, 0.0) + amount

    def flush(self) -> None:
        amounts, self._amounts = self._amounts, {}
        for value, amount in amounts.items():
            value.inc(amount)


TALLY = Tally()
FLUSH_S = 1.0


async def flush_every(seconds: float = FLUSH_S) -> None:
    """Hand the tally to prometheus_client every ``seconds`` (a task of the translator's loop)."""
    while True:
        await asyncio.sleep(seconds)
        TALLY.flush()


ENVOY_TIMEOUT_S = 2.0


def scrape(registry: CollectorRegistry, envoy: str | None) -> bytes:
    """The translators' metrics in Prometheus' text format, then Envoy's (``envoy``: its stats URL).

    Envoy's names all start with ``envoy_``, so the two sets never collide.
    ``tokengate_envoy_stats_up`` says whether Envoy's part is there."""
    own = generate_latest(registry)
    if envoy is None:
        return own
    try:
        with urllib.request.urlopen(envoy, timeout=ENVOY_TIMEOUT_S) as resp:  # noqa: S310 - our loopback URL
            theirs: bytes = resp.read()
        up = 1
    except OSError:
        theirs, up = b"", 0
    head = (b"# HELP tokengate_envoy_stats_up Whether Envoy's stats could be read for this scrape\n"
            b"# TYPE tokengate_envoy_stats_up gauge\n" + b"tokengate_envoy_stats_up %d\n" % up)
    return own + head + theirs


def serve(address: str, envoy: str | None = None) -> ThreadingHTTPServer:
    """Serve ``/metrics`` on ``host:port`` (a background thread): every worker's metrics aggregated
    and, with ``envoy`` (Envoy's ``/stats/prometheus`` URL), Envoy's after them."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY
        registry = REGISTRY

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = scrape(registry, envoy)
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
