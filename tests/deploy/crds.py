"""Schemas of the Prometheus Operator's custom resources the monitoring component uses
(monitoring.coreos.com/v1; kubernetes-validate has none). The fields and types are the operator's CRDs'
(prometheus-operator example/prometheus-operator-crd/monitoring.coreos.com_{podmonitors,prometheusrules}.yaml),
trimmed to what tokengate sets, and strict: an unknown or misspelt field fails, as kubernetes-validate
--strict does for built-in kinds."""

from __future__ import annotations

from typing import Any

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "labels": _STRINGS,
                                                                "annotations": _STRINGS, "namespace": {"type": "string"}}}


def _strict(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": props, "required": required or []}


_SELECTOR = _strict({
    "matchLabels": _STRINGS,
    "matchExpressions": {"type": "array", "items": _strict({
        "key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}}}, ["key", "operator"])},
})

POD_MONITOR = _strict({
    "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"}, "metadata": _META,
    "spec": _strict({
        "jobLabel": {"type": "string"},
        "namespaceSelector": _strict({"any": {"type": "boolean"}, "matchNames": {"type": "array"}}),
        "selector": _SELECTOR,
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _strict({
            "port": {"type": "string"}, "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
            "interval": {"type": "string", "pattern": DURATION},
            "scrapeTimeout": {"type": "string", "pattern": DURATION},
            "honorLabels": {"type": "boolean"}})},
    }, ["selector"]),
}, ["apiVersion", "kind", "metadata", "spec"])

PROMETHEUS_RULE = _strict({
    "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"}, "metadata": _META,
    "spec": _strict({"groups": {"type": "array", "items": _strict({
        "name": {"type": "string", "minLength": 1},
        "interval": {"type": "string", "pattern": DURATION},
        "labels": _STRINGS, "limit": {"type": "integer"},
        "rules": {"type": "array", "items": _strict({
            "alert": {"type": "string"}, "record": {"type": "string"},
            "expr": {"type": ["string", "integer"]},
            "for": {"type": "string", "pattern": DURATION},
            "keep_firing_for": {"type": "string", "minLength": 1, "pattern": DURATION},
            "labels": _STRINGS, "annotations": _STRINGS}, ["expr"])},
    }, ["name"])}}),
}, ["apiVersion", "kind", "metadata", "spec"])

SCHEMAS = {("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
           ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE}
