"""Traces and the access log (docs/observability.md): a real OTLP/gRPC receiver (tests/otlp.py) gets one
trace per request — Envoy's spans and the translator's — and Envoy's access log carries what the
translator knows of the request; with tracing off nothing reaches the receiver at all."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fakes.script import ErrorReply, Reply, Usage
from tests import otlp
from tests.harness import PRICES, GatewayUnderTest, own_stack

FAILOVER = "obs-failover"  # a per-attempt route: Anthropic first, OpenAI when that attempt fails
USAGE = Usage(input=21, output=7)
ROUTER = "async envoy.service.ext_proc.v3.ExternalProcessor.Process egress"  # Envoy's span of an ext_proc call


def _tweak(addr: str, *, enabled: bool) -> Callable[[dict[str, Any]], None]:
    def tweak(cfg: dict[str, Any]) -> None:
        cfg["tracing"] = {"enabled": enabled, "otlp_endpoint": addr, "sampling": 1.0}
        cfg["access_log"] = {"enabled": enabled}  # off: the translators log each request themselves
        cfg["models"].append({"name": FAILOVER, "price": PRICES["gpt-test"], "deployments": [
            {"deployment": "ant", "priority": 0}, {"deployment": "oai", "priority": 1}]})
    return tweak


@contextlib.contextmanager
def _stack(workdir: Path, *, enabled: bool) -> Iterator[tuple[GatewayUnderTest, otlp.Receiver]]:
    with pytest.MonkeyPatch.context() as mp, otlp.running() as (rx, addr):
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the translators' batches every 100 ms (default 5 s)
        with own_stack(workdir, _tweak(addr, enabled=enabled), workers=1, log_level="info") as gw:
            gw.key = gw.new_key("obs", name="obs")
            # Envoy's tracer flushes every 5 s by default: every 100 ms here (an admin runtime override).
            httpx.post(f"{gw.admin}/runtime_modify?tracing.opentelemetry.flush_interval_ms=100"
                       "&tracing.opentelemetry.min_flush_spans=1").raise_for_status()
            yield gw, rx


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayUnderTest, otlp.Receiver]]:
    with _stack(tmp_path_factory.mktemp("traced"), enabled=True) as both:
        yield both


def _traceparent() -> tuple[str, str, str]:
    """A caller's own trace: (trace id, its span id, the traceparent header)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _by_name(spans: list[otlp.Span], name: str) -> list[otlp.Span]:
    return [s for s in spans if s.name == name]


def _one(spans: list[otlp.Span], name: str) -> otlp.Span:
    [span] = _by_name(spans, name)
    return span


def _router(spans: list[otlp.Span]) -> otlp.Span:
    """The translator's span of the router-level filter's stream."""
    [router] = [s for s in spans if s.service == "tokengate-translator" and s.name != "tokengate.attempt"
                and "tokengate.protocol" in s.attributes]
    return router


def _check_tree(spans: list[otlp.Span], caller_span: str) -> otlp.Span:
    """One trace: Envoy's ingress span continues the caller's, the translator's router span is a child of
    Envoy's ext_proc call, which is a child of the ingress span; the router span."""
    ingress = _one(spans, "ingress")
    assert (ingress.service, ingress.parent_id) == ("tokengate", caller_span)
    router = _router(spans)
    assert router.parent_id in {c.span_id for c in _by_name(spans, ROUTER) if c.parent_id == ingress.span_id}
    for phase in ("tokengate.admission", "tokengate.response", "tokengate.metering"):
        assert [s.parent_id for s in _by_name(spans, phase)] == [router.span_id], phase
    return router


def _access_log(gw: GatewayUnderTest, trace_id: str) -> dict[str, Any]:
    """The request's line in Envoy's access log (Envoy's stdout), found by its trace id."""
    deadline = time.monotonic() + 5
    while True:
        lines = Path(gw.stack.workdir, "logs", "envoy.log").read_text().splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{") and trace_id in line]
        if found or time.monotonic() > deadline:
            [entry] = found
            return entry
        time.sleep(0.1)


def test_same_protocol_request_is_one_trace_with_genai_attributes(
        traced: tuple[GatewayUnderTest, otlp.Receiver]) -> None:
    """OpenAI caller, OpenAI deployment: the caller's trace continued through Envoy and the translator."""
    gw, rx = traced
    trace_id, caller_span, tp = _traceparent()
    gw.fake.push(Reply(text="hello there", usage=USAGE, model="gpt-test"))
    client = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"traceparent": tp})
    spans = rx.wait_trace(trace_id, "ingress", "chat gpt-test", "tokengate.metering", "router direct/gpt-test egress")
    router = _check_tree(spans, caller_span)
    assert router.name == "chat gpt-test"
    a = router.attributes
    assert {k: a[k] for k in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
                              "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "tokengate.deployment",
                              "tokengate.attempts", "http.response.status_code", "tokengate.account")} == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-test", "gen_ai.response.model": "gpt-test",
        "gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 7, "tokengate.deployment": "oai",
        "tokengate.attempts": 1, "http.response.status_code": 200, "tokengate.account": "obs"}
    assert a["gen_ai.provider.name"] and a["tokengate.cost_usd"] > 0 and router.status_code != 2
    assert _one(spans, "tokengate.response").attributes["tokengate.translated"] is False
    upstream = _one(spans, "router direct/gpt-test egress")  # Envoy's span of the one attempt
    assert upstream.attributes["http.status_code"] == "200"
    [sent] = gw.fake.requests
    assert "traceparent" not in sent.headers and "tracestate" not in sent.headers  # not forwarded to providers


def test_cross_protocol_request_names_both_protocols(traced: tuple[GatewayUnderTest, otlp.Receiver]) -> None:
    """An Anthropic caller of an OpenAI deployment: the response span says it was translated."""
    gw, rx = traced
    trace_id, caller_span, tp = _traceparent()
    gw.fake.push(Reply(text="hello there", usage=USAGE, model="gpt-test"))
    client = anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0)
    client.messages.create(model="gpt-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                           extra_headers={"traceparent": tp})
    spans = rx.wait_trace(trace_id, "ingress", "chat gpt-test", "tokengate.metering")
    router = _check_tree(spans, caller_span)
    assert {k: router.attributes[k] for k in ("tokengate.protocol", "tokengate.upstream_protocol",
                                              "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")} == {
        "tokengate.protocol": "anthropic", "tokengate.upstream_protocol": "openai",
        "gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 7}
    assert _one(spans, "tokengate.response").attributes["tokengate.translated"] is True


def test_failover_has_a_span_per_attempt(traced: tuple[GatewayUnderTest, otlp.Receiver]) -> None:
    """A per-attempt route whose first attempt (Anthropic) answers 503: Envoy's span per attempt with its
    status, the translator's attempt span per attempt with its deployment, the router span counting both."""
    gw, rx = traced
    trace_id, caller_span, tp = _traceparent()
    gw.fake.push(Reply(error=ErrorReply(503, "overloaded"), model="claude-test"),
                 Reply(text="from the second", usage=USAGE, model="gpt-test"))
    client = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
    client.chat.completions.create(model=FAILOVER, messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"traceparent": tp})
    egress = f"router model/{FAILOVER} egress"
    spans = rx.wait_trace(trace_id, "ingress", f"chat {FAILOVER}", "tokengate.metering", egress, egress,
                          "tokengate.attempt", "tokengate.attempt")
    router = _check_tree(spans, caller_span)
    assert (router.attributes["tokengate.attempts"], router.attributes["tokengate.deployment"]) == (2, "oai")
    assert sorted(s.attributes["http.status_code"] for s in _by_name(spans, egress)) == ["200", "503"]
    attempts = {s.attributes["tokengate.deployment"]: s for s in _by_name(spans, "tokengate.attempt")}
    assert set(attempts) == {"ant", "oai"}
    ant, oai = attempts["ant"], attempts["oai"]
    assert (ant.attributes["tokengate.translated"], oai.attributes["tokengate.translated"]) == (True, False)
    assert (ant.attributes["http.response.status_code"], ant.status_code) == (503, 2)  # the retry's reason
    # each attempt's span is a child of Envoy's span of the upstream filter's ext_proc call for that attempt,
    # itself a child of the ingress span (as Envoy's span of each attempt is)
    calls = {s.span_id: s.parent_id for s in _by_name(spans, ROUTER)}
    ingress = _one(spans, "ingress").span_id
    assert {calls[a.parent_id] for a in (ant, oai)} == {s.parent_id for s in _by_name(spans, egress)} == {ingress}
    assert not any("traceparent" in r.headers for r in gw.fake.requests)


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication"), (404, "not_found"), (429, "rate_limit")],
                         ids=["bad-key", "unknown-model", "upstream-429"])
def test_error_request_is_a_failed_trace(traced: tuple[GatewayUnderTest, otlp.Receiver], status: int,
                                         kind: str) -> None:
    """A request answered with an error still makes one trace; its router span is failed with error.type."""
    gw, rx = traced
    trace_id, caller_span, tp = _traceparent()
    key, model = gw.key, "gpt-test"
    if status == 401:
        key = "sk-tokengate-not-a-key"
    elif status == 404:
        model = "no-such-model"
    else:
        gw.fake.push(Reply(error=ErrorReply(429, "slow down"), model="gpt-test", times=None))
    r = httpx.post(f"{gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}", "traceparent": tp},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    gw.fake.reset()
    assert r.status_code == status
    spans = rx.wait_trace(trace_id, "ingress", ROUTER)
    deadline = time.monotonic() + 10
    while not [s for s in spans if s.attributes.get("error.type") == kind] and time.monotonic() < deadline:
        time.sleep(0.05)
        spans = rx.trace(trace_id)
    ingress = _one(spans, "ingress")
    assert (ingress.parent_id, ingress.attributes["http.status_code"]) == (caller_span, str(status))
    router = _router(spans)
    assert (router.attributes["error.type"], router.status_code) == (kind, 2)
    if status == 429:  # the upstream's 429s were retried: one Envoy span per attempt, each a 429
        attempts = [s for s in spans if s.name.startswith("router ")]
        assert len(attempts) == 3 and {s.attributes["http.status_code"] for s in attempts} == {"429"}
        assert router.attributes["tokengate.attempts"] == 3
    line = _access_log(gw, trace_id)
    assert (line["status"], line["tokengate"].get("error")) == (status, None if status == 429 else kind)


def test_access_log_line_has_the_translators_facts_and_never_the_key(
        traced: tuple[GatewayUnderTest, otlp.Receiver]) -> None:
    """Envoy's JSON access log: account, key id, model, deployment, tokens, cost, TTFT under ``tokengate`` (only
    what is known: no null fields there); not the key."""
    gw, _ = traced
    trace_id, _, tp = _traceparent()
    gw.fake.push(Reply(text="one two three", usage=USAGE, model="gpt-test"))
    client = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, extra_headers={"traceparent": tp})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"
    line = _access_log(gw, trace_id)
    facts = line["tokengate"]
    price = PRICES["gpt-test"]
    assert {k: line[k] for k in ("status", "method", "path")} == {
        "status": 200, "method": "POST", "path": "/v1/chat/completions"}
    assert {k: facts[k] for k in facts if k not in ("cost_usd", "key_id", "ttft_ms", "event_id")} == {
        "account": "obs", "model": "gpt-test", "protocol": "openai", "deployment": "oai", "attempts": 1,
        "stream": True, "input_tokens": 21, "output_tokens": 7, "cache_read_tokens": 0, "reasoning_tokens": 0,
        "upstream_protocol": "openai"}  # OpenAI reports no cache writes: absent
    assert facts["cost_usd"] == pytest.approx((21 * price["input"] + 7 * price["output"]) / 1e6)
    assert facts["key_id"] and facts["key_id"] != gw.key and facts["ttft_ms"] > 0 and line["request_id"]
    assert gw.key not in Path(gw.stack.workdir, "logs", "envoy.log").read_text()
    # the translator's own per-request line is folded into it: not written at info (the stack's level)
    assert facts["event_id"] not in _translator_log(gw)


def _translator_log(gw: GatewayUnderTest) -> str:
    return Path(gw.stack.workdir, "logs", "translator-0.log").read_text()


def test_tracing_off_sends_nothing(tmp_path: Path) -> None:
    """tracing.enabled false (the default) with a collector configured: not one export, from Envoy or
    the translators, for requests that even carry a traceparent. (And with the access log off, the
    translators write their own line per request at info.)"""
    with _stack(tmp_path, enabled=False) as (gw, rx):
        _, _, tp = _traceparent()
        client = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
        for model in ("gpt-test", FAILOVER):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"traceparent": tp})
        config = httpx.get(f"{gw.admin}/config_dump").text
        assert "otel_collector" not in config and "random_sampling" not in config  # no tracer, no collector
        time.sleep(1.5)  # 15 times the flush intervals set above: anything traced would have arrived
        assert (rx.exports, rx.spans) == (0, [])
        requests = [json.loads(x) for x in _translator_log(gw).splitlines() if '"event": "request"' in x]
        assert [r["model"] for r in requests] == ["gpt-test", FAILOVER]
