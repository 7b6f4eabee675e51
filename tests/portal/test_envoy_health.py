"""Deployment health read from Envoy's admin /clusters?format=json."""

from __future__ import annotations

import asyncio

import pytest

from portal import envoy_health
from tokengate.procs import free_port


def host(zone: str, port: int, *, priority: int = 0, health: dict[str, object] | None = None,
         total: str | None = None) -> dict[str, object]:
    """One host status as Envoy 1.40 writes it (zero counters are written without a value)."""
    stats: list[dict[str, str]] = [{"name": "cx_connect_fail"}, {"name": "rq_error"}, {"name": "rq_success"},
                                   {"type": "GAUGE", "name": "rq_active"}]
    if total is not None:
        stats += [{"value": total, "name": "rq_total"}, {"value": total, "name": "rq_success"}]
    return {"address": {"socket_address": {"address": "10.0.0.1", "port_value": port}}, "stats": stats,
            "health_status": health or {"eds_health_status": "HEALTHY"}, "weight": 2, "priority": priority,
            "locality": {"zone": zone}}


DOC = {"cluster_statuses": [
    {"name": "translator", "host_statuses": [
        {"address": {"pipe": {"path": "/var/run/translator-0.sock"}}, "stats": [],
         "health_status": {"eds_health_status": "HEALTHY"}}]},
    {"name": "model/claude", "host_statuses": [
        host("anthropic-main", 443, total="7"),
        host("openai-fallback", 443, priority=1,
             health={"eds_health_status": "HEALTHY", "failed_outlier_check": True}),
    ]},
    {"name": "model/gpt", "host_statuses": [host("oai", 8443, health={"eds_health_status": "UNHEALTHY"})]},
]}


def test_hosts_are_read_per_deployment_with_their_health_and_counters() -> None:
    """Model clusters first (by name and priority), the translator last; zero counters default to 0."""
    hosts = envoy_health.parse(DOC)
    assert [("claude", "anthropic-main", 0, True, ()), ("claude", "openai-fallback", 1, False, ("failed_outlier_check",)),
            ("gpt", "oai", 0, False, ("eds_unhealthy",)), ("translator", "", 0, True, ())] == \
        [(h.model, h.deployment, h.priority, h.healthy, h.problems) for h in hosts]
    assert (7, 7, 0, "10.0.0.1:443", 2) == (hosts[0].rq_total, hosts[0].rq_success, hosts[0].rq_error,
                                             hosts[0].address, hosts[0].weight)
    assert "unix:…/translator-0.sock" == hosts[3].address


def test_a_direct_twin_cluster_is_folded_into_its_model() -> None:
    """direct/<model> has the same hosts as model/<model>: one row each, counters added, problems of either."""
    doc = {"cluster_statuses": [
        {"name": "model/gpt", "host_statuses": [host("oai", 8443, total="2")]},
        {"name": "direct/gpt", "host_statuses": [
            host("oai", 8443, total="5", health={"eds_health_status": "HEALTHY", "failed_outlier_check": True})]},
    ]}
    [row] = envoy_health.parse(doc)
    assert ("gpt", "oai", 7, False, ("failed_outlier_check",)) == (row.model, row.deployment, row.rq_total,
                                                                    row.healthy, row.problems)


def test_an_envoy_that_does_not_answer_is_reported_not_raised() -> None:
    """A closed admin port is a HealthUnavailable with a message for the page."""
    with pytest.raises(envoy_health.HealthUnavailable, match="did not answer"):
        asyncio.run(envoy_health.fetch(f"http://127.0.0.1:{free_port()}", timeout_s=0.5))
