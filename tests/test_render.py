"""The rendered Envoy config: valid for the real Envoy binary, for every example config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from core.config import load
from tokengate.devstack import ensure_dev_certificate, envoy_binary
from tokengate.render import TEMPLATE, render, translator_addresses

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_renders_to_a_config_envoy_accepts(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`envoy --mode validate` accepts the render of each example config."""
    monkeypatch.chdir(tmp_path)  # relative paths (certificates, sockets) resolve here
    cfg = load(example)
    ensure_dev_certificate(Path(cfg.server.tls_cert), Path(cfg.server.tls_key))
    out = tmp_path / "envoy.yaml"
    out.write_text(render(cfg, source=str(example), addresses=translator_addresses(cfg, 2)))
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_only_the_status_snippets_a_route_names_are_rendered(example: Path) -> None:
    """The Lua filter holds exactly the snippets the routes name: a config with no provider whose streams
    are framed otherwise (AWS) carries no ``/typed`` one, and one with no route to another protocol no filter."""
    cfg = load(example)
    hcm = yaml.safe_load(render(cfg, source="x", addresses=translator_addresses(cfg, 1))
                         )["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    named = {r["typed_per_filter_config"]["tokengate.status"]["name"] for r in routes
             if "tokengate.status" in r.get("typed_per_filter_config", {})}
    lua = [f["typed_config"]["source_codes"] for f in hcm["http_filters"] if f["name"] == "tokengate.status"]
    assert named == (set(lua[0]) if lua else set())
    assert any(n.endswith("/typed") for n in named) == any(p.aws is not None for p in cfg.providers)


def test_committed_reference_render_is_current() -> None:
    """envoy/envoy.yaml is what `make render` produces today (regenerate when this fails)."""
    cfg = load(ROOT / "examples/providers.yaml")
    fresh = render(cfg, source="examples/providers.yaml", addresses=translator_addresses(cfg, 2))
    assert fresh == (ROOT / "envoy/envoy.yaml").read_text()


def test_every_non_default_value_in_the_template_says_why() -> None:
    """Each tuned Envoy value in the template carries a one-line comment."""
    tuned = ("timeout:", "failure_mode_allow:", "message_timeout:", "per_connection_buffer_limit_bytes:",
             "request_body_buffer_limit:", "max_concurrent_streams:", "use_remote_address:",
             "no_traffic_interval:", "pass_through_mode:", "headers_with_underscores_action:")
    lines = TEMPLATE.read_text().splitlines()
    missing = [ln.strip() for ln in lines if ln.strip().startswith(tuned) and "#" not in ln]
    assert [] == missing


def test_model_routes_and_clusters_follow_the_config() -> None:
    """Each model name and alias routes to its model's cluster: a locality per deployment, weights and priorities kept."""
    cfg = load(ROOT / "examples/providers.yaml")
    doc = yaml.safe_load(render(cfg, source="x", addresses=translator_addresses(cfg, 1)))
    vhost = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    routes = {r["name"]: r for r in vhost["routes"]}
    assert "model/claude-sonnet-4-5" == routes["model/claude-sonnet"]["route"]["cluster"]
    clusters = {c["name"]: c for c in doc["static_resources"]["clusters"]}
    expected = [f"{kind}/{m.name}" for m in cfg.models
                for kind in (("model", "direct") if cfg.direct_deployment(m) else ("model",))]
    assert ["translator", *expected] == list(clusters)
    admin = doc["admin"]["address"]["socket_address"]["address"]
    assert "127.0.0.1" == admin


def test_a_model_on_one_provider_gets_a_direct_route_without_the_upstream_filter() -> None:
    """One provider and model behind a model: a direct route per caller protocol (before the model route) to a
    twin cluster with no per-attempt filter; callers of another protocol get the Lua status map."""
    cfg = load(ROOT / "examples/providers.yaml")
    doc = yaml.safe_load(render(cfg, source="x", addresses=translator_addresses(cfg, 1)))
    vhost = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    names = [r["name"] for r in vhost["routes"]]
    direct = {r["name"]: r for r in vhost["routes"] if r["name"].startswith("direct/") and r["name"].endswith("/gpt-4o")}
    assert ["direct/openai/gpt-4o", "direct/anthropic/gpt-4o", "direct/gemini/gpt-4o",
            "direct/openai-responses/gpt-4o"] == list(direct)
    assert max(names.index(n) for n in direct) < names.index("model/gpt-4o")
    same, other = direct["direct/openai/gpt-4o"], direct["direct/anthropic/gpt-4o"]
    assert ("gpt-4o#openai", "direct/gpt-4o", ["x-tokengate-model", "x-envoy-external-address"]) == (
        same["match"]["headers"][0]["string_match"]["exact"], same["route"]["cluster"],
        same["request_headers_to_remove"])
    assert "tokengate.status" not in same["typed_per_filter_config"]
    assert "status/anthropic" == other["typed_per_filter_config"]["tokengate.status"]["name"]
    clusters = {c["name"]: c for c in doc["static_resources"]["clusters"]}
    options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    assert "http_filters" not in clusters["direct/gpt-4o"]["typed_extension_protocol_options"][options]
    assert "http_filters" in clusters["model/gpt-4o"]["typed_extension_protocol_options"][options]
    assert clusters["direct/gpt-4o"]["load_assignment"]["endpoints"] == clusters["model/gpt-4o"]["load_assignment"]["endpoints"]


# One model on three deployments of two providers: no direct route.
WEIGHTED = {
    "providers": [{"name": "a", "protocol": "anthropic", "base_url": "https://api.anthropic.com"},
                  {"name": "o", "protocol": "openai", "base_url": "http://127.0.0.1:9/v1"}],
    "deployments": [{"name": "a1", "provider": "a", "model": "m"}, {"name": "a2", "provider": "a", "model": "m"},
                    {"name": "o1", "provider": "o", "model": "m"}],
    "models": [{"name": "m", "price": {"input": 1, "output": 1}, "deployments": [
        {"deployment": "a1", "weight": 3}, {"deployment": "a2", "weight": 1},
        {"deployment": "o1", "priority": 1}]}],
    "routing": {"retries": 3, "per_try_timeout_s": 7},
}


def test_without_a_route_to_another_protocol_there_is_no_status_filter(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No direct route, so no Lua snippet is named: the filter is left out, and Envoy accepts the config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(WEIGHTED))
    cfg = load(tmp_path / "gw.yaml")
    ensure_dev_certificate(Path(cfg.server.tls_cert), Path(cfg.server.tls_key))
    rendered = render(cfg, source="x", addresses=translator_addresses(cfg, 1))
    hcm = yaml.safe_load(rendered)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "tokengate.status" not in [f["name"] for f in hcm["http_filters"]]
    (tmp_path / "envoy.yaml").write_text(rendered)
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stdout + proc.stderr


def test_weights_priorities_and_retries_are_rendered(tmp_path: Path) -> None:
    """Weighted deployments share a priority, a failover deployment sits below, retries move down."""
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(WEIGHTED))
    cfg = load(path)
    doc = yaml.safe_load(render(cfg, source="x", addresses=translator_addresses(cfg, 1)))
    cluster = doc["static_resources"]["clusters"][1]
    localities = [(e["locality"]["zone"], e["priority"], e["load_balancing_weight"]) for e in cluster["load_assignment"]["endpoints"]]
    assert [("a1", 0, 3), ("a2", 0, 1), ("o1", 1, 1)] == localities
    tls = [e["lb_endpoints"][0]["metadata"]["filter_metadata"]["envoy.transport_socket_match"]["tls_host"]
           for e in cluster["load_assignment"]["endpoints"]]
    assert ["api.anthropic.com", "api.anthropic.com", ""] == tls
    [match] = cluster["transport_socket_matches"]
    assert "api.anthropic.com" == match["transport_socket"]["typed_config"]["sni"]
    vhost = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    retry = vhost["routes"][0]["route"]["retry_policy"]
    assert (3, "7s", "envoy.retry_priorities.previous_priorities") == (
        retry["num_retries"], retry["per_try_timeout"], retry["retry_priority"]["name"])


@pytest.mark.parametrize("upstream", ["127.0.0.1:8091", "portal.tokengate.svc:8091"], ids=["ip", "dns"])
def test_portal_route_goes_to_the_portal_without_the_translator(upstream: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With a portal, /portal (and only /portal…) routes to its cluster first, ext_proc off; Envoy accepts it."""
    monkeypatch.chdir(tmp_path)
    cfg = load(ROOT / "examples/demo.yaml")
    ensure_dev_certificate(Path(cfg.server.tls_cert), Path(cfg.server.tls_key))
    text = render(cfg, source="x", addresses=translator_addresses(cfg, 1), portal=upstream)
    doc = yaml.safe_load(text)
    vhost = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    first = vhost["routes"][0]
    assert ("portal", {"path_separated_prefix": "/portal"}, "portal") == (first["name"], first["match"], first["route"]["cluster"])
    assert first["typed_per_filter_config"]["tokengate.router"]["disabled"] is True
    [cluster] = [c for c in doc["static_resources"]["clusters"] if c["name"] == "portal"]
    host, port = upstream.rsplit(":", 1)
    assert ("STATIC" if host[0].isdigit() else "STRICT_DNS") == cluster["type"]
    assert {"address": host, "port_value": int(port)} == \
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    (tmp_path / "envoy.yaml").write_text(text)
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stdout + proc.stderr


def test_no_portal_no_portal_route() -> None:
    """Without server.portal_upstream (and no portal started by `tokengate run`) nothing answers /portal."""
    cfg = load(ROOT / "examples/providers.yaml")
    assert "portal" not in render(cfg, source="x", addresses=translator_addresses(cfg, 1))
