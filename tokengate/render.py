"""Render the Envoy bootstrap from the gateway config.

The template (``templates/envoy.yaml.j2``) holds every Envoy value and its reason;
this module only computes what varies with the gateway config: routes per model,
one cluster per deployment, the translator endpoints, and the error shapes Envoy
uses for its own local replies.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from core.config import GatewayConfig, Model
from translator.errors import BadRequest, NotFound, UserFacingError
from translator.protocols import REGISTRY
from translator.protocols.base import SSE_CONTENT_TYPE, Codec, Json
from translator.upstream_http import CTX_HEADER, DEPLOYMENT_ATTR, RESPONSE_TYPE_HEADER, direct_route

TEMPLATE = Path(__file__).with_name("templates") / "envoy.yaml.j2"

# Router-level filter: request headers held until the body is read (so the body can pick
# the route); response headers skipped, their facts sent as attributes with the body.
ROUTER_MODE = {
    "request_header_mode": "SEND",
    "request_body_mode": "BUFFERED",
    "response_header_mode": "SKIP",
    "response_body_mode": "STREAMED",
    "request_trailer_mode": "SKIP",
    "response_trailer_mode": "SKIP",
}
ROUTER_REQUEST_ATTRIBUTES: list[str] = []  # the header phase tells all
ROUTER_RESPONSE_ATTRIBUTES = ["response.code", "upstream.request_attempt_count", DEPLOYMENT_ATTR]
# Upstream-level filter: once per attempt. Headers always (they carry the attempt's endpoint
# metadata); the body (the original client body, every attempt) only when it must change.
UPSTREAM_MODE = {
    "request_header_mode": "SEND",
    "request_body_mode": "BUFFERED",
    "response_header_mode": "SKIP",
    "response_body_mode": "NONE",
    "request_trailer_mode": "SKIP",
    "response_trailer_mode": "SKIP",
}
UPSTREAM_REQUEST_ATTRIBUTES = ["xds.upstream_host_metadata", f"request.headers['{CTX_HEADER}']"]


def _flow(obj: Any) -> str:
    """A YAML flow mapping (JSON is valid YAML) on one line."""
    return json.dumps(obj, separators=(", ", ": "))


_ANY_PATH: Json = {"name": ":path", "present_match": True}
_STATUS_PLACEHOLDER = 999  # a status no error has: where a protocol's body carries it, Envoy's goes instead


@dataclass(frozen=True)
class _Shape:
    """How Envoy tells a protocol's callers (by header), to answer them in that protocol's error shape."""

    codec: Codec
    matchers: tuple[Json, ...]  # the first picks the not-found route; any of them picks the local-reply shape

    @property
    def match(self) -> str:
        return _flow(self.matchers[0])

    @property
    def reply_filter(self) -> str:
        """The access-log filter that picks this shape for a local reply."""
        one = [{"header_filter": {"header": m}} for m in self.matchers]
        return _flow(one[0] if len(one) == 1 else {"or_filter": {"filters": one}})

    def body(self, m: dict[str, Any]) -> str:
        err = UserFacingError(m.get("message", "%LOCAL_REPLY_BODY%"), status=_STATUS_PLACEHOLDER, kind=m["kind"])
        return _flow(_with_response_code(self.codec.error_body(err)))


def _with_response_code(v: Any) -> Any:
    """``v`` with Envoy's status (``%RESPONSE_CODE%``) wherever the error's status was."""
    if isinstance(v, dict):
        return {k: _with_response_code(x) for k, x in v.items()}
    return "%RESPONSE_CODE%" if v == _STATUS_PLACEHOLDER and isinstance(v, int) else v


def _shapes() -> list[_Shape]:
    """One per protocol: those told by their path first (the surer sign: a Gemini path is Gemini's whatever
    headers came with it), then those told by a header; the registry's fallback takes whatever is left."""
    told = [c for c in REGISTRY.match_order if c.envoy_match and c is not REGISTRY.fallback]
    told.sort(key=lambda c: c.envoy_match[0].get("name") != ":path")
    return [*(_Shape(c, c.envoy_match) for c in told), _Shape(REGISTRY.fallback, (_ANY_PATH,))]

# Flags Envoy sets on replies it makes up because an upstream failed or was missing.
_UPSTREAM_FLAGS = ["UH", "UF", "UO", "NR", "URX", "UT", "UC", "UR", "LR", "SI", "DT", "NC"]


def _status(code: int) -> dict[str, Any]:
    value = {"default_value": code, "runtime_key": "unused"}
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}}


def _error_mappers() -> list[dict[str, Any]]:
    flags = {"response_flag_filter": {"flags": _UPSTREAM_FLAGS}}
    out = [
        {"filter": _flow(_status(413)), "status": 413, "kind": "request_too_large"},
        {"filter": _flow(_status(431)), "status": 431, "kind": "request_too_large"},
        {"filter": _flow(_status(408)), "status": 408, "kind": "timeout"},
    ]
    for status, kind in ((504, "timeout"), (503, "unavailable")):
        both = {"and_filter": {"filters": [flags, _status(status)]}}
        out.append({"filter": _flow(both), "status": status, "kind": kind})
    out.append({"filter": _flow(flags), "status": 502, "kind": "api_error"})
    # The ext_proc filter's own failure (no translator answered; status_on_error): its body is empty.
    ext_proc_failed = {"extension_filter": {"name": "envoy.access_loggers.extension_filters.cel", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
        "expression": "response.code_details.startsWith('ext_proc_error')"}}}
    out.append({"filter": _flow(ext_proc_failed), "status": 503, "kind": "unavailable",
                "message": "The gateway could not process this request right now; retry shortly."})
    return out


def _endpoint(addr: str) -> str:
    if addr.startswith("unix:"):
        return _flow({"pipe": {"path": addr.removeprefix("unix:")}})
    host, _, port = addr.rpartition(":")
    return _flow({"socket_address": {"address": host, "port_value": int(port)}})


def translator_addresses(cfg: GatewayConfig, workers: int) -> list[str]:
    """The gRPC address of each translator process (Unix sockets under socket_dir).

    Relative paths stay relative: Envoy and the translators resolve them against the
    directory they run in, like every other path in the config.
    """
    sock_dir = Path(cfg.translator.socket_dir)
    return [f"unix:{sock_dir / f'translator-{i}.sock'}" for i in range(workers)]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _seconds(v: float) -> str:
    return f"{v:g}s"


def _model_clusters(cfg: GatewayConfig, m: Model) -> list[dict[str, Any]]:
    """One cluster per model: a locality per deployment (its weight and priority), with the
    per-attempt ext_proc filter; and, when every attempt goes to one provider and model, its
    direct twin without that filter, for callers of that provider's protocol."""
    endpoints = []
    for t in m.deployments:
        d = cfg.deployment(t.deployment)
        p = cfg.provider(d.provider)
        endpoints.append({
            "deployment": d.name, "protocol": p.protocol.value, "host": p.host, "port": p.port,
            "tls": p.tls, "weight": t.weight, "priority": t.priority, "ip": _is_ip(p.host),
        })
    r = cfg.routing_for(m)
    providers = [cfg.provider(cfg.deployment(t.deployment).provider) for t in m.deployments]
    cluster = {
        "name": f"model/{m.name}",
        "upstream_filter": True,
        "type": "STATIC" if all(e["ip"] for e in endpoints) else "STRICT_DNS",
        "connect_timeout": _seconds(max(p.timeout_connect_s for p in providers)),
        "any_tls": any(e["tls"] for e in endpoints),
        "endpoints": endpoints,
        "retry_budget_percent": r.retry_budget_percent,
        "min_retry_concurrency": r.min_retry_concurrency,
        "eject_after_failures": r.eject_after_failures,
        "ejection": _seconds(r.ejection_s),
        "max_ejection": _seconds(r.ejection_s * 10),
    }
    if cfg.direct_deployment(m) is None:
        return [cluster]
    return [cluster, {**cluster, "name": f"direct/{m.name}", "upstream_filter": False}]


def _route_policy(cfg: GatewayConfig, m: Model) -> dict[str, Any]:
    r = cfg.routing_for(m)
    return {
        "retries": r.retries,
        "retry_on_status": _flow(r.retry_on_status),
        "per_try_timeout": _seconds(r.per_try_timeout_s),
        "idle_timeout": _seconds(r.idle_timeout_s),
        "backoff_base": _seconds(r.backoff_base_ms / 1000),
        "backoff_max": _seconds(r.backoff_max_ms / 1000),
        "retry_after_max": _seconds(r.retry_after_max_s),
        "failover": len({t.priority for t in m.deployments}) > 1,
    }


_STATUS_LUA = """local map = {%s}
function envoy_on_response(h)
  local headers = h:headers()
  if headers:get("x-envoy-upstream-service-time") == nil then return end  -- Envoy's own reply
  local to = map[tonumber(headers:get(":status"))]
  if to then headers:replace(":status", tostring(to)) end%s
end
"""
# Only for callers that may read a stream as one JSON array (Codec.array_streams): the content type
# the router asked for on the request (a translated stream is SSE upstream, a JSON array for the caller).
_CONTENT_TYPE_LUA = ("""function envoy_on_request(h)
  local wanted = h:headers():get("%s")
  if wanted then h:streamInfo():dynamicMetadata():set("tokengate.status", "content_type", wanted) end
end
""", """
  local md = h:streamInfo():dynamicMetadata():get("tokengate.status")
  if md and md.content_type and headers:get(":status") == "200" then
    headers:replace("content-type", md.content_type)
  end""")


def status_maps() -> dict[str, str]:
    """Per caller protocol that spells some upstream error statuses differently, the Lua that
    rewrites them on a direct cross-protocol route (what the upstream filter does per attempt),
    and for a caller that may read a JSON-array stream the content type the router asked for
    (``RESPONSE_TYPE_HEADER``). Every caller protocol today has a status to rewrite, so each has one.
    ``status/<caller>/typed`` sets that content type for every caller: a route to a provider whose streams
    are framed otherwise (AWS event streams) is SSE for the caller. Protocols no client speaks have none."""
    out = {}
    for caller in REGISTRY:
        if not caller.body_routes:  # upstream only (Bedrock Converse)
            continue
        pairs = [(s, caller.client_status(s)) for s in range(400, 600)]
        table = ", ".join(f"[{a}] = {b}" for a, b in pairs if a != b)
        if table:
            lua = _STATUS_LUA % (table, _CONTENT_TYPE_LUA[1] if caller.array_streams else "")
            out[f"status/{caller.name}"] = (_CONTENT_TYPE_LUA[0] % RESPONSE_TYPE_HEADER if caller.array_streams
                                            else "") + lua
            out[f"status/{caller.name}/typed"] = (_CONTENT_TYPE_LUA[0] % RESPONSE_TYPE_HEADER
                                                  + _STATUS_LUA % (table, _CONTENT_TYPE_LUA[1]))
    return out


def _portal(upstream: str | None) -> dict[str, Any] | None:
    """The portal's cluster (Envoy forwards /portal to it), or None for no portal route."""
    if upstream is None:
        return None
    host, _, port = upstream.rpartition(":")
    return {"host": host, "port": int(port), "type": "STATIC" if _is_ip(host) else "STRICT_DNS"}


def _tracing(cfg: GatewayConfig) -> dict[str, Any] | None:
    """Envoy's OpenTelemetry tracer and its collector's cluster, or None (tracing off: nothing rendered)."""
    t = cfg.tracing
    if not t.enabled:
        return None
    host, _, port = t.otlp_endpoint.rpartition(":")
    return {"percent": round(t.sampling * 100, 4), "service_name": t.service_name, "host": host, "port": int(port),
            "type": "STATIC" if _is_ip(host) else "STRICT_DNS", "strip_upstream": not t.forward_to_providers}


def context(cfg: GatewayConfig, *, source: str, addresses: list[str],
            portal: str | None = None) -> dict[str, Any]:
    clusters = [c for m in cfg.models for c in _model_clusters(cfg, m)]
    model_routes = []
    maps = status_maps()
    for name, m in cfg.model_table().items():
        policy = _route_policy(cfg, m)
        d = cfg.direct_deployment(m)
        spoken = cfg.provider(d.provider).protocol if d is not None else None
        # its streams framed otherwise than SSE: by its protocol (Bedrock Converse) or by the provider (InvokeModel)
        reframed = d is not None and cfg.provider(d.provider).reframes_streams
        typed = reframed or (d is not None and REGISTRY.get(spoken or "").stream_content_type != SSE_CONTENT_TYPE)
        for caller in REGISTRY if d is not None else ():
            if not caller.body_routes:  # no client speaks it (Bedrock Converse): no route of its own
                continue
            lua = (f"status/{caller.name}" + ("/typed" if typed else "")) if caller.name != spoken or reframed else None
            model_routes.append({"name": f"direct/{caller.name}/{name}", "header": direct_route(name, caller.name),
                                 "cluster": f"direct/{m.name}", "direct": True,
                                 "lua": lua if lua in maps else None, **policy})
        model_routes.append({"name": f"model/{name}", "header": name, "cluster": f"model/{m.name}",
                             "direct": False, "lua": None, **policy})

    def shaped(codec: Codec, err: UserFacingError) -> str:
        return json.dumps(codec.error_body(err), separators=(",", ":")).replace("'", "''")

    api_routes = [
        {"name": f"no-body{p}", "match": _flow(m),
         "body": shaped(codec, BadRequest("a JSON request body is required"))}
        for p, (codec, m) in REGISTRY.body_routes().items()
    ]
    shapes = _shapes()
    not_found_routes = []
    for shape in shapes:
        not_found_routes.append({
            "name": f"not-found/{shape.codec.name}",
            "match": _flow({"prefix": "/", "headers": [shape.matchers[0]]}),
            "body": shaped(shape.codec, NotFound(
                "Unknown request URL. Check the path and the base URL "
                "(OpenAI SDKs: http://HOST/v1; Anthropic and Gemini SDKs: http://HOST)."
            )),
        })
    return {
        "source": source,
        "server": cfg.server,
        "tls_cert": cfg.server.tls_cert,
        "tls_key": cfg.server.tls_key,
        "message_timeout": f"{cfg.translator.message_timeout_ms / 1000:g}s",
        "router_mode": ROUTER_MODE,
        "router_request_attributes": ROUTER_REQUEST_ATTRIBUTES,
        "router_response_attributes": ROUTER_RESPONSE_ATTRIBUTES,
        "upstream_mode": UPSTREAM_MODE,
        "upstream_request_attributes": UPSTREAM_REQUEST_ATTRIBUTES,
        "shapes": shapes,
        "error_mappers": _error_mappers(),
        "model_routes": model_routes,
        "listing_routes": [{"name": f"list{p}", "match": _flow(m)} for p, m in REGISTRY.listing_routes().items()],
        "api_routes": api_routes,
        "not_found_routes": not_found_routes,
        # only the snippets a route names (no route to another protocol: no Lua filter at all)
        "status_lua": {k: _flow(v) for k, v in maps.items() if any(r["lua"] == k for r in model_routes)},
        "translator_endpoints": [_endpoint(a) for a in addresses],
        "upstream_clusters": clusters,
        "portal": _portal(portal or cfg.server.portal_upstream),
        "tracing": _tracing(cfg),
        "access_log": ({"path": cfg.access_log.path, "format": _flow(cfg.access_log.fields)}
                       if cfg.access_log.enabled else None),
    }


def render(
    cfg: GatewayConfig,
    *,
    source: str,
    addresses: list[str],
    template: Path = TEMPLATE,
    portal: str | None = None,
) -> str:
    """``portal`` (host:port) overrides ``server.portal_upstream``: ``tokengate run`` passes the portal it starts."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML
    )
    text = env.get_template(template.name).render(
        **context(cfg, source=source, addresses=addresses, portal=portal)
    )
    return text
