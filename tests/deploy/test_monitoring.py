"""The monitoring component: the Grafana dashboard parses and queries valid PromQL, the alert rules pass
``promtool check rules`` and fire in ``promtool test rules``, and the PodMonitor finds the metrics ports.
(tests/e2e/test_dashboard_metrics.py checks that every metric they name exists.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.crds import POD_MONITOR
from tests.deploy.kube import Obj, containers, find, pod_labels, pod_templates, render_base_with
from tests.deploy.monitoring import dashboard, dashboard_exprs, rule_exprs, rule_groups


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Prometheus' own checker (Debian's prometheus package: apt-get install prometheus)."""
    exe = shutil.which("promtool")
    assert exe, "promtool is needed: apt-get install prometheus"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def objs() -> list[Obj]:
    return render_base_with("monitoring")


def test_the_dashboard_is_a_grafana_dashboard_with_a_query_per_panel() -> None:
    """It parses; a uid, a Prometheus data source variable; every panel but a row has queries on it."""
    d = dashboard()
    assert d["uid"] and d["title"]
    assert "datasource" in [v["name"] for v in d["templating"]["list"]]
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for p in panels:
        assert p["targets"], p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" and t["expr"] for t in p["targets"]), p["title"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))


def test_the_dashboard_panels_do_not_overlap() -> None:
    """Grafana lays panels on a 24-column grid: no two share a cell."""
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells.get((x, y))}"
                cells[x, y] = p["title"]


def test_every_query_and_rule_is_valid_promql(tmp_path: Path) -> None:
    """promtool checks the alert rules as they are, and the dashboard's queries as recording rules."""
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    queries = [{"record": f"tokengate:dashboard_query_{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}))
    done = promtool("check", "rules", "alerts.yml", "dashboard.yml", cwd=tmp_path)
    assert 0 == done.returncode, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in done.stdout
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_every_alert_says_what_it_means_and_how_bad() -> None:
    """Each alert has a severity, a summary and a description (docs/observability.md explains each)."""
    alerts = [r for g in rule_groups() for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    docs = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for r in alerts:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert f"`{r['alert']}`" in docs, f"{r['alert']} is not in docs/observability.md"


# Series in, alerts out: promtool's unit tests of the rules (https://prometheus.io/docs/prometheus/latest/
# configuration/unit_testing_rules/). Each case: input series, the alert, when, and the labels it fires with.
CASES: list[tuple[str, list[dict[str, str]], str, str, list[dict[str, str]]]] = [
    ("deployment errors",
     [{"series": 'tokengate_requests_total{namespace="tg",deployment="oai",status="200"}', "values": "0+60x30"},
      {"series": 'tokengate_requests_total{namespace="tg",deployment="oai",status="500"}', "values": "0+30x30"}],
     "TokengateDeploymentErrors", "20m", [{"namespace": "tg", "deployment": "oai", "severity": "warning"}]),
    ("healthy deployment",
     [{"series": 'tokengate_requests_total{namespace="tg",deployment="oai",status="200"}', "values": "0+60x30"},
      {"series": 'tokengate_requests_total{namespace="tg",deployment="oai",status="500"}', "values": "0+1x30"}],
     "TokengateDeploymentErrors", "20m", []),
    ("fail closed",
     [{"series": 'tokengate_admission_outcomes_total{namespace="tg",outcome="fail_closed"}', "values": "0+10x20"}],
     "TokengateFailClosed", "10m", [{"namespace": "tg", "severity": "critical"}]),
    ("ejected",
     [{"series": 'envoy_cluster_outlier_detection_ejections_active{namespace="tg",envoy_cluster_name="model/gpt"}',
       "values": "1x20"}],
     "TokengateUpstreamEjected", "10m",
     [{"namespace": "tg", "envoy_cluster_name": "model/gpt", "severity": "warning"}]),
    ("slow first token",
     [{"series": 'gen_ai_server_time_to_first_token_seconds_bucket{namespace="tg",gen_ai_request_model="m",le="5.0"}',
       "values": "0+0x40"},
      {"series": 'gen_ai_server_time_to_first_token_seconds_bucket{namespace="tg",gen_ai_request_model="m",le="7.5"}',
       "values": "0+10x40"},
      {"series": 'gen_ai_server_time_to_first_token_seconds_bucket{namespace="tg",gen_ai_request_model="m",le="+Inf"}',
       "values": "0+10x40"}],
     "TokengateTimeToFirstTokenHigh", "30m",
     [{"namespace": "tg", "gen_ai_request_model": "m", "severity": "warning"}]),
    ("backlog",
     [{"series": 'tokengate_metering_backlog_events{namespace="tg",pod="s1"}', "values": "9000x20"},
      {"series": 'tokengate_metering_pending_events{namespace="tg",pod="s1"}', "values": "2000x20"}],
     "TokengateMeteringBacklog", "15m", [{"namespace": "tg", "severity": "warning"}]),
    ("dead letters",
     [{"series": 'tokengate_metering_dead_letters{namespace="tg",pod="s1"}', "values": "0 3x5"}],
     "TokengateSettlerDeadLetters", "3m", [{"namespace": "tg", "severity": "warning"}]),
    ("settler down", [], "TokengateSettlerDown", "15m", [{"severity": "critical"}]),
]


def test_the_alerts_fire_on_the_series_they_watch_and_not_otherwise(tmp_path: Path) -> None:
    """promtool test rules: each alert fires (with its labels) on series that should raise it, and not on others."""
    groups = rule_groups()
    for g in groups:  # promtool compares annotations too; their wording is checked above
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump({"groups": groups}))
    tests: list[dict[str, Any]] = [
        {"name": name, "interval": "1m", "input_series": series,
         "alert_rule_test": [{"eval_time": at, "alertname": alert,
                              "exp_alerts": [{"exp_labels": labels} for labels in fired]}]}
        for name, series, alert, at, fired in CASES]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "tests": tests}))
    done = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert 0 == done.returncode, done.stdout + done.stderr


def test_the_pod_monitor_scrapes_the_gateway_and_the_settler_on_their_metrics_ports(objs: list[Obj]) -> None:
    """Its selector picks the gateway and settler pods, each has the port it names, and the network policy of
    each lets the monitoring namespace reach that port."""
    pm = find(objs, "PodMonitor", "tokengate")["spec"]
    port = pm["podMetricsEndpoints"][0]["port"]
    chosen = set(pm["selector"]["matchExpressions"][0]["values"])
    assert {"gateway", "settler"} == chosen
    labels = pod_labels(objs)
    scraped = [name for name, pod in pod_templates(objs)
               if labels[name].get("app.kubernetes.io/component") in chosen
               and pm["selector"]["matchLabels"].items() <= labels[name].items()]
    assert ["tokengate-gateway", "tokengate-settler"] == sorted(scraped)
    for name, pod in pod_templates(objs):
        if name not in scraped:
            continue
        assert port in [p["name"] for c in containers(pod) for p in c.get("ports", [])], name
        policy = find(objs, "NetworkPolicy", name)["spec"]
        assert any({"port": port, "protocol": "TCP"} in rule.get("ports", []) and rule.get("from")
                   for rule in policy["ingress"]), name


def test_the_crd_schemas_refuse_a_misspelt_field(objs: list[Obj]) -> None:
    """The PodMonitor schema is strict: a misspelt field fails as kubernetes-validate --strict would."""
    pm = find(objs, "PodMonitor", "tokengate")
    jsonschema.validate(pm, POD_MONITOR)
    pm["spec"]["podMetricEndpoints"] = pm["spec"].pop("podMetricsEndpoints")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(pm, POD_MONITOR)


def test_the_dashboard_ships_as_a_config_map_for_grafanas_sidecar(objs: list[Obj]) -> None:
    """The component's ConfigMap holds dashboard.json unchanged, labelled for Grafana's dashboard sidecar."""
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("tokengate-dashboard"))
    assert "1" == cm["metadata"]["labels"]["grafana_dashboard"]
    assert dashboard() == json.loads(cm["data"]["tokengate.json"])
