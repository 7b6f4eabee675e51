"""Failover, load balancing and ejection through real Envoy, each attempt translated for its deployment."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fakes import ErrorReply, FakeProvider, Reply, Usage
from tests.e2e.test_ext_proc_counts import WHOLE, Cost, ext_proc_cost
from tests.harness import UPSTREAM_SECRETS, GatewayUnderTest, gateway_config, write_config
from tokengate.devstack import Stack
from tokengate.procs import free_port

PER_TRY_S = 1.0
EJECTION_S = 2.0
PRICE = {"input": 1, "output": 2}


class Pair:
    """The primary fake (which the tests break) and the secondary fake (which must answer)."""

    def __init__(self, gw: GatewayUnderTest, secondary: FakeProvider) -> None:
        self.gw, self.primary, self.secondary = gw, gw.fake, secondary


def routing_config(primary: int, secondary: int, workdir: Path) -> dict[str, Any]:
    cfg = gateway_config(primary, workdir)
    refused = free_port()  # nothing listens here
    cfg["providers"] += [
        {"name": "b-openai", "protocol": "openai", "base_url": f"http://127.0.0.1:{secondary}/v1",
         "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
        {"name": "b-anthropic", "protocol": "anthropic", "base_url": f"http://127.0.0.1:{secondary}",
         "api_key": {"env": "TG_TEST_ANTHROPIC_KEY"}},
        {"name": "b-responses", "protocol": "openai-responses", "base_url": f"http://127.0.0.1:{secondary}/v1",
         "api_key": {"env": "TG_TEST_RESPONSES_KEY"}},
        {"name": "dead", "protocol": "openai", "base_url": f"http://127.0.0.1:{refused}/v1"},
    ]
    cfg["deployments"] += [
        {"name": "b-oai", "provider": "b-openai", "model": "backup-gpt"},
        {"name": "b-ant", "provider": "b-anthropic", "model": "backup-claude"},
        {"name": "b-resp", "provider": "b-responses", "model": "backup-resp"},
        {"name": "dead-oai", "provider": "dead", "model": "never"},
        {"name": "oai-heavy", "provider": "fake-openai", "model": "heavy"},
        {"name": "oai-light", "provider": "fake-openai", "model": "light"},
    ]
    cfg["models"] = [
        # primary Anthropic, failover to an OpenAI deployment (another protocol)
        {"name": "fo-claude", "price": PRICE, "deployments": [{"deployment": "ant"}, {"deployment": "b-oai", "priority": 1}]},
        # primary OpenAI, failover to Anthropic
        {"name": "fo-gpt", "price": PRICE, "deployments": [{"deployment": "oai"}, {"deployment": "b-ant", "priority": 1}]},
        # primary refuses connections
        {"name": "fo-dead", "price": PRICE, "deployments": [{"deployment": "dead-oai"}, {"deployment": "b-ant", "priority": 1}]},
        {"name": "split", "price": PRICE, "deployments": [{"deployment": "oai-heavy", "weight": 3},
                                                           {"deployment": "oai-light", "weight": 1}]},
        # primary Anthropic, failover to a Responses API deployment
        {"name": "fo-resp", "price": PRICE, "deployments": [{"deployment": "ant"}, {"deployment": "b-resp", "priority": 1}]},
    ]
    cfg["routing"] = {"per_try_timeout_s": PER_TRY_S, "retries": 2, "backoff_base_ms": 10, "backoff_max_ms": 50,
                      "retry_after_max_s": 2, "eject_after_failures": 3, "ejection_s": EJECTION_S}
    # The failover cases break fo-claude's primary over and over: keep it from being ejected there.
    cfg["models"][0]["routing"] = {**cfg["routing"], "eject_after_failures": 1000}
    cfg["models"][-1]["routing"] = {**cfg["routing"], "eject_after_failures": 1000}
    return cfg


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("routing")
    with FakeProvider.running() as primary, FakeProvider.running() as secondary:
        cfg = routing_config(primary.port, secondary.port, workdir)
        stack = Stack(write_config(cfg, workdir / "gateway.yaml"), workdir=workdir, workers=2,
                      redis_port=free_port(), log_level="warning")
        stack.start()
        try:
            gw = GatewayUnderTest(stack, primary, "", cfg)
            gw.key = gw.new_key("routing", fund_usd=100)
            yield Pair(gw, secondary)
        finally:
            stack.stop()


@pytest.fixture(autouse=True)
def _fresh(pair: Pair) -> None:
    pair.primary.reset()
    pair.secondary.reset()


def ask(gw: GatewayUnderTest, client: str, model: str) -> tuple[str, httpx.Headers]:
    """One call with the client's official SDK; the answer text and the response headers."""
    if client == "openai":
        with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0) as c:
            raw = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
            return raw.parse().choices[0].message.content or "", raw.headers
    if client == "openai-responses":
        with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0) as c:
            raw3 = c.responses.with_raw_response.create(model=model, input="hi")
            return raw3.parse().output_text, raw3.headers
    if client == "anthropic":
        with anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0) as a:
            raw2 = a.messages.with_raw_response.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            return "".join(b.text for b in raw2.parse().content if b.type == "text"), raw2.headers
    r = httpx.post(f"{gw.http}/v1beta/models/{model}:generateContent", headers={"x-goog-api-key": gw.key},
                   json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=30)
    r.raise_for_status()
    return r.json()["candidates"][0]["content"]["parts"][0]["text"], r.headers


FAILURES = {
    "500": Reply(error=ErrorReply(500, "boom"), times=None),
    "429-retry-after": Reply(error=ErrorReply(429, "slow down", retry_after=1), times=None),
    "529": Reply(error=ErrorReply(529, "Overloaded"), times=None),
    "reset-before-headers": Reply(disconnect_after=-1, times=None),
    "no-first-byte": Reply(text="late", delay_first_byte=PER_TRY_S + 1.5, times=None),
}


@pytest.mark.parametrize("client", ["openai", "anthropic", "gemini", "openai-responses"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failing_primary_fails_over_to_a_deployment_of_another_protocol(pair: Pair, client: str, failure: str) -> None:
    """The Anthropic primary fails; the OpenAI secondary answers, translated, in the caller's protocol."""
    pair.primary.push(FAILURES[failure])
    pair.secondary.push(Reply(text="from the backup", usage=Usage(input=5, output=3)))
    since = pair.gw.last_stream_id()
    text, headers = ask(pair.gw, client, "fo-claude")
    assert ("from the backup", "b-oai") == (text, headers["x-tokengate-deployment"])
    assert pair.primary.requests, "the primary was tried first"
    [sent] = pair.secondary.requests
    assert ("/v1/chat/completions", "backup-gpt") == (sent.path, sent.json()["model"])
    assert f"Bearer {UPSTREAM_SECRETS['TG_TEST_OPENAI_KEY']}" == sent.headers.get("authorization"), dict(sent.headers)
    assert pair.gw.key not in str(dict(sent.headers)) + sent.body.decode()
    for attempt in (*pair.primary.requests, sent):  # the routing header chose the route and stays behind
        assert "x-tokengate-model" not in {h.lower() for h in attempt.headers}, dict(attempt.headers)
    ours = sent.headers.get("x-request-id")  # an earlier test's event may land late
    events = [e for e in pair.gw.metering_events(since) if e["request_id"] == ours]
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
        events = [e for e in pair.gw.metering_events(since) if e["request_id"] == ours]
    [event] = events
    assert ("b-oai", 200) == (event["deployment"], event["status"])
    assert event["attempts"] >= 2


@pytest.mark.parametrize("client", ["openai", "anthropic", "gemini", "openai-responses"])
def test_a_failing_primary_fails_over_to_a_responses_deployment(pair: Pair, client: str) -> None:
    """An Anthropic primary overloaded, the Responses API deployment answers every client: the attempt goes to
    /v1/responses with its model name (a Responses client's body only renamed, passed through)."""
    pair.primary.push(Reply(error=ErrorReply(529, "Overloaded"), times=None))
    pair.secondary.push(Reply(text="from the Responses backup"))
    text, headers = ask(pair.gw, client, "fo-resp")
    assert ("from the Responses backup", "b-resp") == (text, headers["x-tokengate-deployment"])
    [sent] = pair.secondary.requests
    assert ("/v1/responses", "backup-resp") == (sent.path, sent.json()["model"])
    assert f"Bearer {UPSTREAM_SECRETS['TG_TEST_RESPONSES_KEY']}" == sent.headers.get("authorization")
    if client == "openai-responses":
        assert {"model": "backup-resp", "input": "hi"} == sent.json()


def test_connection_refused_fails_over(pair: Pair) -> None:
    """A deployment nobody listens for is skipped for the next priority (here Anthropic)."""
    pair.secondary.push(Reply(text="served anyway"))
    text, headers = ask(pair.gw, "openai", "fo-dead")
    assert ("served anyway", "b-ant") == (text, headers["x-tokengate-deployment"])
    assert "/v1/messages" == pair.secondary.requests[-1].path


def test_weighted_split_follows_the_weights(pair: Pair) -> None:
    """1,000 requests over weights 3:1 land within 5 points of 75% / 25%."""
    body = {"model": "split", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=pair.gw.http, headers={"authorization": f"Bearer {pair.gw.key}"}) as c:
        for _ in range(1000):
            c.post("/v1/chat/completions", json=body).raise_for_status()
    counts = collections.Counter(r.json()["model"] for r in pair.primary.requests)
    assert 1000 == sum(counts.values())
    assert abs(counts["heavy"] / 1000 - 0.75) <= 0.05, counts


def test_a_deployment_failing_repeatedly_is_ejected_and_comes_back(pair: Pair) -> None:
    """After 3 consecutive failures the primary gets no traffic until its ejection time has passed."""
    pair.primary.push(Reply(error=ErrorReply(500, "down"), times=3))
    for _ in range(3):
        pair.secondary.push(Reply(text="backup"))
    for _ in range(3):  # each fails over: the primary collects its 3 failures
        assert "backup" == ask(pair.gw, "openai", "fo-gpt")[0]
    time.sleep(1.2)  # outlier detection runs every second
    tried = len(pair.primary.requests)
    pair.secondary.push(Reply(text="backup"))
    assert ("backup", "b-ant") == (ask(pair.gw, "openai", "fo-gpt")[0], ask_headers_deployment(pair))
    assert tried == len(pair.primary.requests), "an ejected deployment gets no attempt"
    time.sleep(EJECTION_S + 1.5)
    text, headers = ask(pair.gw, "openai", "fo-gpt")
    assert ("oai", len(pair.primary.requests)) == (headers["x-tokengate-deployment"], tried + 1)


def ask_headers_deployment(pair: Pair) -> str:
    pair.secondary.push(Reply(text="backup"))
    return ask(pair.gw, "openai", "fo-gpt")[1]["x-tokengate-deployment"]


def test_failure_after_the_first_byte_is_not_retried_and_billed_once(pair: Pair) -> None:
    """A stream cut after it started reaches the client broken (never as a clean end), is not
    retried on another deployment, and is billed once for what was observed."""
    pair.primary.push(Reply(text="a b c d e f g h", usage=Usage(input=40, output=8), disconnect_after=4,
                            delay_between=0.1))
    since = pair.gw.last_stream_id()
    got = ""
    with openai.OpenAI(base_url=f"{pair.gw.http}/v1", api_key=pair.gw.key, max_retries=0) as c, \
            pytest.raises(openai.APIError):
        for chunk in c.chat.completions.create(model="fo-gpt", messages=[{"role": "user", "content": "x"}],
                                               stream=True):  # type: ignore[arg-type]
            got += "".join(ch.delta.content or "" for ch in chunk.choices)
    assert got, "some text arrived before the cut"
    assert [] == pair.secondary.requests
    ours = pair.primary.requests[-1].headers.get("x-request-id")  # an earlier test's event may land late
    deadline = time.monotonic() + 5
    while not (events := [e for e in pair.gw.metering_events(since) if e["request_id"] == ours]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [event] = events
    assert (False, 1) == (event["complete"], event["attempts"])
    assert event["cost_nano"] > 0


@pytest.mark.parametrize(("model", "upstream"), [
    ("fo-gpt", Cost(1, WHOLE, 1, 2)),     # same protocol, the model renamed: the attempt's headers and body
    ("fo-claude", Cost(1, 3, 1, 3)),  # another protocol: headers, the body translated, the response headers
], ids=["same-protocol", "cross-protocol"])
def test_a_per_attempt_route_opens_one_upstream_stream_per_attempt(pair: Pair, model: str, upstream: Cost) -> None:
    """Models with several providers keep the per-attempt filter: one more stream for each attempt."""
    pair.primary.push(Reply(text="hi"))
    status, cost = ext_proc_cost(pair.gw, lambda: httpx.post(
        f"{pair.gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {pair.gw.key}"},
        json={"model": model, "messages": [{"role": "user", "content": "x"}]}, timeout=30))
    assert (200, upstream) == (status, cost)


def test_a_failover_adds_an_upstream_stream(pair: Pair) -> None:
    """A failed first attempt and a second one to the backup: two upstream-filter streams."""
    pair.primary.push(Reply(error=ErrorReply(500, "boom"), times=None))
    pair.secondary.push(Reply(text="from the backup"))
    status, cost = ext_proc_cost(pair.gw, lambda: httpx.post(
        f"{pair.gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {pair.gw.key}"},
        json={"model": "fo-gpt", "messages": [{"role": "user", "content": "x"}]}, timeout=30))
    assert (200, 1) == (status, cost.router_streams)
    assert cost.upstream_streams >= 2
