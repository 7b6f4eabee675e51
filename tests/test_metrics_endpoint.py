"""The gateway's one /metrics endpoint when Envoy's stats cannot be read: the translators' metrics still
come, and tokengate_envoy_stats_up says Envoy's are missing (tests/e2e/test_metrics.py: with them)."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter

from tokengate.procs import free_port
from translator import metrics


def test_the_translators_metrics_are_served_when_envoys_stats_cannot_be_read() -> None:
    """Envoy's admin refuses the connection: the scrape still answers, with tokengate_envoy_stats_up 0."""
    port = free_port()
    envoy = f"http://127.0.0.1:{free_port()}/stats/prometheus"  # nothing listens there
    server = metrics.serve(f"127.0.0.1:{port}", envoy)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "tokengate_envoy_stats_up 0" in text.splitlines()
        assert "# TYPE tokengate_requests_total counter" in text
        assert 404 == httpx.get(f"http://127.0.0.1:{port}/other").status_code
    finally:
        server.shutdown()
        server.server_close()


def test_envoys_stats_follow_the_translators_metrics() -> None:
    """What Envoy's stats URL returns is appended after ours, with tokengate_envoy_stats_up 1."""
    registry = CollectorRegistry()
    Counter("tokengate_demo_total", "demo", registry=registry).inc()
    port = free_port()
    envoy = metrics.serve(f"127.0.0.1:{port}")  # any Prometheus text will do as Envoy's
    try:
        text = metrics.scrape(registry, f"http://127.0.0.1:{port}/metrics").decode()
        ours, _, theirs = text.partition("tokengate_envoy_stats_up 1\n")
        assert "tokengate_demo_total 1.0" in ours
        assert "# TYPE tokengate_requests_total counter" in theirs
    finally:
        envoy.shutdown()
        envoy.server_close()
