"""Deployment health from Envoy's admin ``/clusters?format=json``.

Each model is one Envoy cluster (``model/<name>``) with a locality per
deployment (``locality.zone`` is the deployment's name), so one row per host
says which deployment it is, its priority and weight, whether Envoy considers it
healthy (outlier ejection, failed health checks) and its request counters since
Envoy started. A model on one provider also has a ``direct/<name>`` twin cluster
(for callers of that provider's protocol); its hosts are folded into the model's
rows. The admin listener binds 127.0.0.1; the portal reads it server-side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

# health_status flags that take a host out of load balancing
_FAILURE_FLAGS = ("failed_active_health_check", "failed_outlier_check", "failed_eds_health",
                  "failed_active_degraded_check", "pending_dynamic_removal", "pending_active_hc",
                  "excluded_via_immediate_hc_fail", "active_hc_timeout")


class HealthUnavailable(Exception):
    """Envoy's admin did not answer usefully; the message says how."""


@dataclass(frozen=True, slots=True)
class Host:
    cluster: str
    deployment: str
    address: str
    priority: int
    weight: int
    healthy: bool
    problems: tuple[str, ...]
    rq_total: int
    rq_success: int
    rq_error: int
    rq_active: int
    cx_connect_fail: int

    @property
    def model(self) -> str:
        return self.cluster.removeprefix("model/")

    def plus(self, twin: Host) -> Host:
        """This host with the counters and problems of the same host in the direct twin cluster."""
        problems = self.problems + tuple(p for p in twin.problems if p not in self.problems)
        return Host(self.cluster, self.deployment, self.address, self.priority, self.weight, not problems, problems,
                    self.rq_total + twin.rq_total, self.rq_success + twin.rq_success,
                    self.rq_error + twin.rq_error, self.rq_active + twin.rq_active,
                    self.cx_connect_fail + twin.cx_connect_fail)


def _address(a: dict[str, Any]) -> str:
    if sock := a.get("socket_address"):
        return f"{sock.get('address', '')}:{sock.get('port_value', '')}"
    if pipe := a.get("pipe"):
        return f"unix:…/{str(pipe.get('path', '')).rsplit('/', 1)[-1]}"
    return "?"


def parse(doc: dict[str, Any]) -> list[Host]:
    hosts = []
    for c in doc.get("cluster_statuses") or []:
        for h in c.get("host_statuses") or []:
            stats = {s.get("name", ""): int(s.get("value") or 0) for s in h.get("stats") or []}
            status = h.get("health_status") or {}
            problems = tuple(f for f in _FAILURE_FLAGS if status.get(f))
            eds = status.get("eds_health_status", "HEALTHY")
            if eds not in ("HEALTHY", "UNKNOWN"):
                problems += (f"eds_{eds.lower()}",)
            hosts.append(Host(
                cluster=str(c.get("name", "")), deployment=str((h.get("locality") or {}).get("zone", "")),
                address=_address(h.get("address") or {}), priority=int(h.get("priority") or 0),
                weight=int(h.get("weight") or 1), healthy=not problems, problems=problems,
                rq_total=stats.get("rq_total", 0), rq_success=stats.get("rq_success", 0),
                rq_error=stats.get("rq_error", 0), rq_active=stats.get("rq_active", 0),
                cx_connect_fail=stats.get("cx_connect_fail", 0)))
    rows = {(h.cluster, h.deployment, h.address): h for h in hosts if not h.cluster.startswith("direct/")}
    for twin in (h for h in hosts if h.cluster.startswith("direct/")):
        key = ("model/" + twin.cluster.removeprefix("direct/"), twin.deployment, twin.address)
        rows[key] = rows[key].plus(twin) if key in rows else twin
    hosts = list(rows.values())
    # model clusters first, then Envoy's own (translator, portal)
    return sorted(hosts, key=lambda h: (not h.cluster.startswith("model/"), h.cluster, h.priority, h.deployment))


async def fetch(admin_url: str, *, timeout_s: float = 2.0) -> list[Host]:
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            r = await client.get(f"{admin_url.rstrip('/')}/clusters", params={"format": "json"})
            r.raise_for_status()
            doc = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HealthUnavailable(f"Envoy's admin at {admin_url} did not answer ({type(exc).__name__}).") from None
    if not isinstance(doc, dict):
        raise HealthUnavailable("Envoy's admin answered something other than a JSON object.")
    return parse(doc)
