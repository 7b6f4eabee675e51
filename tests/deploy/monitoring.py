"""The monitoring component's dashboard and alert rules, read for tests: their PromQL expressions and
the metric names those expressions read."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.deploy.kube import COMPONENTS

DASHBOARD = COMPONENTS["monitoring"] / "dashboard.json"
RULES = COMPONENTS["monitoring"] / "prometheusrule.yaml"
# Grafana's variables, as a query reaches Prometheus
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": ".*"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*(?![\w(])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_exprs() -> list[str]:
    """Every query of every panel, Grafana's variables substituted."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append(expr)
    return out


def rule_groups() -> list[dict[str, Any]]:
    """The PrometheusRule's groups: a plain Prometheus rules file's content."""
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return groups


def rule_exprs() -> list[str]:
    return [r["expr"] for g in rule_groups() for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, label names, keywords and numbers left out)."""
    bare = _GROUPING.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub('""', expr))))
    return {n for n in _NAME.findall(bare) if n.lower() not in _KEYWORDS}
