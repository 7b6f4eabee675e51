"""Google Vertex AI through the running gateway: every client SDK against a Gemini model (publisher google, a
regional endpoint's location) and a Claude model (publisher anthropic, the global location) on Vertex, the
fake checking what Google checks (``fakes.vertex``: the path, the bearer token it issued from a service
account's signed assertion, Vertex's bodies).

The translators get their tokens from a throwaway service-account key whose ``token_uri`` is the fake's
token endpoint; the fake's tokens live ``TOKEN_LIFETIME_S`` seconds, so they are refreshed in the background
all through this module, and one test checks that no request fails across several refreshes.

Test ids read ``<client>-><target>``. A stack of its own: the shared config stays as it is.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from fakes import ErrorReply, FakeProvider, Reply, ToolCall
from fakes import vertex as fake_vertex
from tests.e2e.test_matrix import (
    BASIC,
    BASIC_SEEN,
    END,
    PNG,
    PNG_B64,
    RATE_LIMITED,
    TOOL_STOP,
    WEATHER,
    Ask,
    Caller,
    check_error,
    upstream_images,
    upstream_turn_texts,
)
from tests.harness import GatewayUnderTest, own_stack

CLIENTS = ("openai", "openai-responses", "anthropic", "gemini")
TARGETS = ("gemini", "claude")
MODEL = {"gemini": "vx-gemini", "claude": "vx-claude"}
UPSTREAM_MODEL = {"gemini": "gemini-2.5-flash", "claude": "claude-sonnet-4-5@20250929"}
PROTOCOL = {"gemini": "gemini", "claude": "anthropic"}
PREFIX = {"gemini": f"/v1/projects/{fake_vertex.PROJECT}/locations/us-east5/publishers/google/models/",
          "claude": f"/v1/projects/{fake_vertex.PROJECT}/locations/global/publishers/anthropic/models/"}
TOKEN_LIFETIME_S = 6  # refreshed every 3 s: many times over the module
STATIC_TOKEN_ENV = "TG_TEST_VERTEX_TOKEN"
CASES = [pytest.param(c, t, id=f"{c}->{t}") for c in CLIENTS for t in TARGETS]


def vertex_providers(fake: FakeProvider, cfg: dict[str, Any], workdir: Path) -> None:
    """Vertex providers on the fake: a Gemini and a Claude one sharing a throwaway service-account key whose
    token endpoint is the fake's, and one with a static token the fake never issued."""
    fake.vertex.token_lifetime_s = TOKEN_LIFETIME_S
    key = workdir / "service-account.json"
    key.write_text(json.dumps(fake.vertex.new_service_account(f"{fake.base_url}/token")))
    os.environ[STATIC_TOKEN_ENV] = "ya29.never-issued"
    base = fake.base_url
    cfg["providers"] += [
        {"name": "vertex-gemini", "protocol": "gemini", "base_url": base,
         "vertex": {"project": fake_vertex.PROJECT, "location": "us-east5", "credentials_file": str(key)}},
        {"name": "vertex-claude", "protocol": "anthropic", "base_url": base,
         "vertex": {"project": fake_vertex.PROJECT, "credentials_file": str(key)}},
        {"name": "vertex-stale", "protocol": "gemini", "base_url": base, "api_key": {"env": STATIC_TOKEN_ENV},
         "vertex": {"project": fake_vertex.PROJECT, "location": "us-east5"}},
    ]
    cfg["deployments"] += [
        {"name": "vx-gem", "provider": "vertex-gemini", "model": UPSTREAM_MODEL["gemini"]},
        {"name": "vx-claude", "provider": "vertex-claude", "model": UPSTREAM_MODEL["claude"]},
        {"name": "vx-stale", "provider": "vertex-stale", "model": UPSTREAM_MODEL["gemini"]},
    ]
    price = {"input": 3, "output": 15}
    cfg["models"] += [{"name": name, "deployments": [dep], "price": price}
                      for name, dep in (("vx-gemini", "vx-gem"), ("vx-claude", "vx-claude"), ("vx-stale", "vx-stale"))]


@pytest.fixture(scope="module")
def vertex_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    with own_stack(tmp_path_factory.mktemp("vertex"), workers=1, prepare=vertex_providers) as gw:
        gw.key = gw.new_key("vertex", name="e2e-vertex")
        yield gw


@pytest.fixture
def gw(vertex_gw: GatewayUnderTest) -> GatewayUnderTest:
    vertex_gw.fake.reset()
    return vertex_gw


@pytest.fixture
def caller(request: pytest.FixtureRequest, gw: GatewayUnderTest) -> Iterator[Caller]:
    c = Caller(request.node.callspec.params["client"], gw)
    yield c
    c.close()


def check_sent(gw: GatewayUnderTest, target: str, stream: bool) -> dict[str, Any]:
    """The request Vertex got: its path for the publisher and method, a token the fake issued, no API key,
    and for Claude Vertex's body (no model, anthropic_version)."""
    sent = gw.fake.requests[-1]
    method = {("gemini", False): ":generateContent", ("gemini", True): ":streamGenerateContent",
              ("claude", False): ":rawPredict", ("claude", True): ":streamRawPredict"}[(target, stream)]
    assert PREFIX[target] + UPSTREAM_MODEL[target] + method == sent.path
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-")
    assert not {"x-api-key", "x-goog-api-key"} & set(sent.headers)
    body: dict[str, Any] = sent.json()
    if target == "claude":
        assert ("vertex-2023-10-16", False) == (body["anthropic_version"], "model" in body)
    return body


@pytest.mark.parametrize(("client", "target"), CASES)
def test_text(gw: GatewayUnderTest, caller: Caller, client: str, target: str) -> None:
    """A text answer and its usage in the client's shape; Vertex got its path, token and body."""
    gw.fake.push(Reply(text="Bonjour !", usage=BASIC))
    got = caller.ask(MODEL[target], Ask("Say hello in French"))
    assert ("Bonjour !", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    assert ["Say hello in French"] == upstream_turn_texts(PROTOCOL[target], check_sent(gw, target, False))


@pytest.mark.parametrize(("client", "target"), CASES)
def test_stream_text(gw: GatewayUnderTest, caller: Caller, client: str, target: str) -> None:
    """A streamed answer arrives whole, with usage (Gemini's stream asked as SSE, Claude's at streamRawPredict)."""
    gw.fake.push(Reply(text="one two three four", usage=BASIC))
    got = caller.ask(MODEL[target], Ask("Count to four", stream=True))
    assert ("one two three four", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    check_sent(gw, target, True)
    if target == "gemini":
        assert "sse" == gw.fake.requests[-1].query.get("alt")


@pytest.mark.parametrize(("client", "target"), CASES)
def test_stream_tool_call(gw: GatewayUnderTest, caller: Caller, client: str, target: str) -> None:
    """A streamed tool call comes back whole with the tool stop."""
    gw.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    got = caller.ask(MODEL[target], Ask("Weather in Paris?", tools=(WEATHER,), stream=True))
    assert ([("get_weather", {"city": "Paris"})], TOOL_STOP[client]) == (got.calls, got.stop)
    check_sent(gw, target, True)


@pytest.mark.parametrize(("client", "target"), CASES)
def test_image(gw: GatewayUnderTest, caller: Caller, client: str, target: str) -> None:
    """A base64 PNG reaches Vertex in the publisher's own image form, bytes intact."""
    gw.fake.push(Reply(text="A single pixel.", usage=BASIC))
    got = caller.ask(MODEL[target], Ask("What is in this image?", image=True))
    assert "A single pixel." == got.text
    [(mime, data)] = upstream_images(PROTOCOL[target], check_sent(gw, target, False))
    assert "image/png" == mime
    if target == "gemini":  # standard or URL-safe base64
        assert PNG == base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_"))
    else:
        assert PNG_B64 == data


@pytest.mark.parametrize(("client", "target"), CASES)
def test_upstream_error(gw: GatewayUnderTest, caller: Caller, client: str, target: str) -> None:
    """Vertex's 429 (Google's shape, before a Claude model too) reaches the client as its own rate-limit error."""
    gw.fake.push(Reply(error=ErrorReply(429, "Quota exceeded for aiplatform.googleapis.com/"
                                             "online_prediction_requests_per_base_model"), times=None))
    exc_type, status, kind = RATE_LIMITED[client]
    with pytest.raises(exc_type) as info:
        caller.ask(MODEL[target], Ask("hi"))
    check_error(client, info.value, status, kind, "Quota exceeded")


@pytest.mark.parametrize("target", TARGETS)
def test_token_count(gw: GatewayUnderTest, target: str) -> None:
    """Token counts go to Vertex's own count methods (countTokens, count-tokens:rawPredict)."""
    c = Caller("anthropic", gw)
    try:
        n, _ = c.count(MODEL[target], "one two three")
    finally:
        c.close()
    assert n is not None and n > 0
    sent = gw.fake.requests[-1]
    if target == "gemini":
        assert PREFIX["gemini"] + "gemini-2.5-flash:countTokens" == sent.path
    else:
        assert (PREFIX["claude"] + "count-tokens:rawPredict", UPSTREAM_MODEL["claude"]) == (
            sent.path, sent.json()["model"])


def test_tokens_are_refreshed_with_no_failed_request(gw: GatewayUnderTest) -> None:
    """Requests keep coming until the tokens (six seconds) were renewed twice and requests carried more than
    one of them: every request succeeds, each with a token the fake still honoured."""
    c = Caller("anthropic", gw)
    issued, tokens, deadline = gw.fake.vertex.issued, set(), time.monotonic() + 120
    try:
        while gw.fake.vertex.issued - issued < 2 or len(tokens) < 2:
            assert time.monotonic() < deadline, "no refresh seen"
            for target in TARGETS:
                got = c.ask(MODEL[target], Ask("hi"))
                assert got.text.startswith("echo:")
                tokens.add(gw.fake.requests[-1].headers["authorization"])
            time.sleep(0.05)
    finally:
        c.close()


def test_a_token_vertex_refuses_is_an_authentication_error(gw: GatewayUnderTest) -> None:
    """A static access token the fake never issued: Vertex's 401 UNAUTHENTICATED, as the client's own error."""
    c = Caller("anthropic", gw)
    try:
        with pytest.raises(anthropic.AuthenticationError) as info:
            c.ask("vx-stale", Ask("hi"))
    finally:
        c.close()
    assert "invalid authentication credentials" in str(info.value)
    assert "Bearer ya29.never-issued" == gw.fake.requests[-1].headers["authorization"]
