"""Anthropic and Gemini callers reaching a model of their own protocol (passthrough)."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from fakes import ErrorReply, Reply, Usage
from tests.harness import UPSTREAM_SECRETS, GatewayUnderTest


@pytest.fixture
def ant(gateway: GatewayUnderTest) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.http, api_key=gateway.key, max_retries=0) as c:
        yield c


@pytest.fixture
def gem(gateway: GatewayUnderTest) -> Iterator[genai.Client]:
    c = genai.Client(api_key=gateway.key, http_options=types.HttpOptions(
        base_url=gateway.http, retry_options=types.HttpRetryOptions(attempts=1)))
    yield c
    c.close()


def test_anthropic_message_is_answered_and_metered(gateway: GatewayUnderTest, ant: anthropic.Anthropic) -> None:
    """messages.create reaches the Anthropic deployment with its key and version header."""
    gateway.fake.push(Reply(text="Bonjour", usage=Usage(input=10, output=3, cache_read=6)))
    since = gateway.last_stream_id()
    msg = ant.messages.create(model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert ("Bonjour", 10, 6) == (msg.content[0].text, msg.usage.input_tokens, msg.usage.cache_read_input_tokens)  # type: ignore[union-attr]
    sent = gateway.fake.requests[-1]
    assert ("/v1/messages", UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"]) == (sent.path, sent.headers["x-api-key"])
    assert ant.default_headers["anthropic-version"] == sent.headers["anthropic-version"]  # the caller's, kept
    assert "authorization" not in sent.headers
    [event] = gateway.wait_metering(since)
    assert {"input": 10, "cache_read": 6, "output": 3} == {k: event["usage"][k] for k in ("input", "cache_read", "output")}


def test_anthropic_stream_accumulates(gateway: GatewayUnderTest, ant: anthropic.Anthropic) -> None:
    """The SDK's stream helper accumulates the passed-through events into the final message."""
    gateway.fake.push(Reply(text="one two three", usage=Usage(input=4, output=3)))
    with ant.messages.stream(model="claude-test", max_tokens=50,
                             messages=[{"role": "user", "content": "count"}]) as s:
        final = s.get_final_message()
    assert ("one two three", "end_turn", 3) == (final.content[0].text, final.stop_reason, final.usage.output_tokens)  # type: ignore[union-attr]


def test_anthropic_errors_come_in_anthropic_shape(gateway: GatewayUnderTest, ant: anthropic.Anthropic) -> None:
    """Gateway errors (unknown model, bad key) and upstream errors are Anthropic-shaped."""
    with pytest.raises(anthropic.NotFoundError) as exc:
        ant.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "not_found_error" == exc.value.body["error"]["type"]  # type: ignore[index]
    with anthropic.Anthropic(base_url=gateway.http, api_key="sk-wrong", max_retries=0) as bad, \
            pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    gateway.fake.push(Reply(error=ErrorReply(529, "Overloaded"), times=None))
    with pytest.raises(anthropic.APIStatusError) as exc2:
        ant.messages.create(model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert 529 == exc2.value.status_code


def test_anthropic_models_list_in_anthropic_shape(gateway: GatewayUnderTest, ant: anthropic.Anthropic) -> None:
    """GET /v1/models from the Anthropic SDK answers in Anthropic's page shape."""
    assert "claude-test" in [m.id for m in ant.models.list()]


@pytest.mark.parametrize("key_in", ["header", "query"])
def test_gemini_generate_content(gateway: GatewayUnderTest, gem: genai.Client, key_in: str) -> None:
    """generateContent works with x-goog-api-key (SDK) and ?key= (REST)."""
    gateway.fake.push(Reply(text="Hallo", usage=Usage(input=6, output=2, reasoning=3)))
    if key_in == "header":
        resp = gem.models.generate_content(model="gemini-test", contents="hi")
        text, total = resp.text, resp.usage_metadata.total_token_count  # type: ignore[union-attr]
    else:
        r = httpx.post(f"{gateway.http}/v1beta/models/gemini-test:generateContent?key={gateway.key}",
                       json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        text = r.json()["candidates"][0]["content"]["parts"][0]["text"]
        total = r.json()["usageMetadata"]["totalTokenCount"]
    assert ("Hallo", 11) == (text, total)
    sent = gateway.fake.requests[-1]
    assert "/v1beta/models/gemini-test:generateContent" == sent.path
    assert UPSTREAM_SECRETS["TG_TEST_GEMINI_KEY"] == sent.headers["x-goog-api-key"]
    assert "key" not in sent.query


def test_gemini_stream_and_errors(gateway: GatewayUnderTest, gem: genai.Client) -> None:
    """streamGenerateContent (SSE) streams through; an unknown model is a 404 ClientError."""
    gateway.fake.push(Reply(text="a b c"))
    text = "".join(c.text or "" for c in gem.models.generate_content_stream(model="gemini-test", contents="x"))
    assert "a b c" == text
    assert "alt=sse" in gateway.fake.requests[-1].target
    with pytest.raises(genai_errors.ClientError) as exc:
        gem.models.generate_content(model="gemini-nope", contents="x")
    assert (404, "NOT_FOUND") == (exc.value.code, exc.value.status)
