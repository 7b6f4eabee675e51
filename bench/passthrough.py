"""Scenario B: tokengate's own Envoy render with the ext_proc filters taken out.

Same template, same listener, route table, timeouts, buffer limits and clusters
as the gateway under test; removed are only the two ext_proc filters (router and
upstream level), their per-route overrides, and the translator cluster they
call (with the readiness check that waits for it). The client names the route
itself with the routing header the translator would have set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.config import GatewayConfig
from tokengate.render import render, translator_addresses

EXT_PROC_PREFIX = "tokengate."
TRANSLATOR_CLUSTER = "translator"


def _drop_ext_proc(filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in filters if not str(f.get("name", "")).startswith(EXT_PROC_PREFIX)]


def _strip_hcm(hcm: dict[str, Any]) -> None:
    if "http_filters" in hcm:
        hcm["http_filters"] = _drop_ext_proc(hcm["http_filters"])
    for f in hcm.get("http_filters", []):
        checks = f.get("typed_config", {}).get("cluster_min_healthy_percentages")
        if checks is not None:
            checks.pop(TRANSLATOR_CLUSTER, None)
            if not checks:
                del f["typed_config"]["cluster_min_healthy_percentages"]
    for vh in hcm.get("route_config", {}).get("virtual_hosts", []):
        for route in vh.get("routes", []):
            per_filter = route.get("typed_per_filter_config")
            if per_filter is None:
                continue
            for name in [n for n in per_filter if n.startswith(EXT_PROC_PREFIX)]:
                del per_filter[name]
            if not per_filter:
                del route["typed_per_filter_config"]


def strip_ext_proc(doc: dict[str, Any]) -> dict[str, Any]:
    """The rendered bootstrap without ext_proc (mutates and returns ``doc``)."""
    resources = doc["static_resources"]
    for listener in resources["listeners"]:
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                _strip_hcm(f.get("typed_config", {}))
    resources["clusters"] = [c for c in resources["clusters"] if c["name"] != TRANSLATOR_CLUSTER]
    for cluster in resources["clusters"]:
        for opts in cluster.get("typed_extension_protocol_options", {}).values():
            if "http_filters" in opts:
                opts["http_filters"] = _drop_ext_proc(opts["http_filters"])
    return doc


def has_ext_proc(text: str) -> bool:
    return "ext_proc" in text or f"cluster_name: {TRANSLATOR_CLUSTER}" in text


def render_passthrough(cfg: GatewayConfig, source: str, workers: int) -> str:
    rendered = render(cfg, source=source, addresses=translator_addresses(cfg, workers))
    doc = strip_ext_proc(yaml.safe_load(rendered))
    header = "# Scenario B (bench/passthrough.py): tokengate's render with the ext_proc filters removed.\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


def write(cfg: GatewayConfig, source: str, workers: int, path: Path) -> Path:
    path.write_text(render_passthrough(cfg, source, workers))
    return path
