"""Prometheus metrics of the translator processes.

Every worker writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode); the worker started with
``--metrics-listen`` serves ``/metrics`` for all of them, aggregated.

    tokengate_requests_total{model,deployment,protocol,status}   admitted requests, by outcome
    tokengate_rejected_total{protocol,kind}                      refused before any upstream call
    tokengate_request_seconds{model,protocol}                    duration, request start to last byte
    tokengate_tokens_total{model,deployment,bucket}              input, cache_read, cache_write, output, reasoning
    tokengate_cost_nano_usd_total{model}                         what was charged
    tokengate_admissions_total{path}                             admitted against a lease in process, or by Redis
"""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

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


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (labels() validates and locks each call)."""
    return metric.labels(*labels)


def serve(address: str) -> None:
    """Serve the aggregated metrics of every worker on ``host:port`` (a background thread)."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    else:
        start_http_server(int(port), addr=host or "127.0.0.1")
