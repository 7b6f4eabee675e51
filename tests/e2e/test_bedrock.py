"""AWS Bedrock through the running gateway: every client SDK against a Bedrock provider of the Converse API
signed with SigV4 (static keys; temporary keys with a session token), one with a Bedrock API key (bearer), a
per-attempt route (a failover model, signed by the upstream filter rather than the router), and Anthropic's
Messages through InvokeModel (direct and per attempt: an Anthropic caller's answer passes through, unwrapped
from Bedrock's event stream). The fake recomputes each signature with botocore and speaks Bedrock's event
streams (``fakes.bedrock``).

Test ids read ``<client>-><style>``. A stack of its own: the shared config stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors

from fakes import ErrorReply, Reply, ToolCall, Usage
from fakes import bedrock as fake_bedrock
from fakes.codec import signature as fake_signature
from tests.e2e.test_matrix import (
    BASIC,
    BASIC_SEEN,
    END,
    MID_STREAM,
    MID_STREAM_EXC,
    PNG_B64,
    RATE_LIMITED,
    TOOL_STOP,
    WEATHER,
    Ask,
    Caller,
    check_error,
)
from tests.harness import GatewayUnderTest, own_stack

CLIENTS = ("openai", "openai-responses", "anthropic", "gemini")
STATIC, TEMPORARY = list(fake_bedrock.KEYS)
ENV = {"TG_TEST_AWS_ID": STATIC, "TG_TEST_AWS_SECRET": fake_bedrock.KEYS[STATIC][0],
       "TG_TEST_AWS_TMP_ID": TEMPORARY, "TG_TEST_AWS_TMP_SECRET": fake_bedrock.KEYS[TEMPORARY][0],
       "TG_TEST_AWS_TMP_TOKEN": fake_bedrock.KEYS[TEMPORARY][1] or "", "TG_TEST_AWS_WRONG": "not/the/secret",
       "TG_TEST_BEDROCK_API_KEY": fake_bedrock.API_KEY}
PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"  # a cross-region inference profile
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0"
# style -> (the gateway's model, the model id Bedrock gets, the credential the fake must see)
STYLES = {
    "sigv4": ("bedrock-sigv4", PROFILE, STATIC),
    "session": ("bedrock-session", ARN, TEMPORARY),
    "api-key": ("bedrock-api-key", "amazon.nova-lite-v1:0", "bearer"),
    "failover": ("bedrock-failover", PROFILE, STATIC),  # a per-attempt route: the upstream filter signs
    "invoke": ("bedrock-claude", PROFILE, STATIC),  # InvokeModel with Anthropic's body
    "invoke-failover": ("bedrock-claude-failover", PROFILE, STATIC),
}
CASES = [pytest.param(c, s, id=f"{c}->{s}") for c in CLIENTS for s in STYLES]
SIGV4 = [pytest.param(c, id=c) for c in CLIENTS]
API = [pytest.param(c, m, id=f"{c}->{m}") for c in CLIENTS for m in ("bedrock-sigv4", "bedrock-claude")]
PRICE = {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}
CACHED = Usage(input=100, cache_read=40, cache_write=20, output=30)
CACHED_SEEN = {
    "openai": {"prompt_tokens": 160, "cached_tokens": 40, "cache_write_tokens": 20, "completion_tokens": 30,
               "total_tokens": 190},
    "openai-responses": {"input_tokens": 160, "cached_tokens": 40, "output_tokens": 30, "total_tokens": 190},
    "anthropic": {"input_tokens": 100, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 20,
                  "output_tokens": 30},
    "gemini": {"prompt_token_count": 160, "cached_content_token_count": 40, "candidates_token_count": 30,
               "total_token_count": 190},
}
FORBIDDEN: dict[str, tuple[type[Exception], int, str]] = {
    "openai": (openai.PermissionDeniedError, 403, "permission_error"),
    "openai-responses": (openai.PermissionDeniedError, 403, "permission_error"),
    "anthropic": (anthropic.PermissionDeniedError, 403, "permission_error"),
    "gemini": (genai_errors.ClientError, 403, "PERMISSION_DENIED"),
}


def bedrock_providers(cfg: dict[str, Any]) -> None:
    """Bedrock providers on the fake: Converse signed with static keys, with temporary keys, with an API key and
    with a wrong secret; InvokeModel signed; their models (two of them per attempt: a failover below)."""
    os.environ.update(ENV)
    base = cfg["providers"][1]["base_url"]  # the fake's root (its Anthropic provider)

    def signed(key: str, secret: str, token: str | None = None) -> dict[str, Any]:
        aws: dict[str, Any] = {"region": fake_bedrock.REGION, "access_key_id": {"env": key},
                               "secret_access_key": {"env": secret}}
        if token:
            aws["session_token"] = {"env": token}
        return aws

    cfg["providers"] += [
        {"name": "bedrock-keys", "protocol": "bedrock-converse", "base_url": base,
         "aws": signed("TG_TEST_AWS_ID", "TG_TEST_AWS_SECRET")},
        {"name": "bedrock-session", "protocol": "bedrock-converse", "base_url": base,
         "aws": signed("TG_TEST_AWS_TMP_ID", "TG_TEST_AWS_TMP_SECRET", "TG_TEST_AWS_TMP_TOKEN")},
        {"name": "bedrock-api-key", "protocol": "bedrock-converse", "base_url": base,
         "api_key": {"env": "TG_TEST_BEDROCK_API_KEY"}},
        {"name": "bedrock-wrong", "protocol": "bedrock-converse", "base_url": base,
         "aws": signed("TG_TEST_AWS_ID", "TG_TEST_AWS_WRONG")},
        {"name": "bedrock-invoke", "protocol": "anthropic", "base_url": base,
         "aws": signed("TG_TEST_AWS_ID", "TG_TEST_AWS_SECRET")},
    ]
    cfg["deployments"] += [
        {"name": "br-keys", "provider": "bedrock-keys", "model": PROFILE},
        {"name": "br-session", "provider": "bedrock-session", "model": ARN},
        {"name": "br-api-key", "provider": "bedrock-api-key", "model": "amazon.nova-lite-v1:0"},
        {"name": "br-wrong", "provider": "bedrock-wrong", "model": PROFILE},
        {"name": "br-invoke", "provider": "bedrock-invoke", "model": PROFILE},
    ]
    cfg["models"] += [
        {"name": "bedrock-sigv4", "deployments": ["br-keys"], "price": PRICE},
        {"name": "bedrock-session", "deployments": ["br-session"], "price": PRICE},
        {"name": "bedrock-api-key", "deployments": ["br-api-key"], "price": PRICE},
        {"name": "bedrock-failover", "deployments": ["br-keys", {"deployment": "oai", "priority": 1}],
         "price": PRICE},
        {"name": "bedrock-wrong-key", "deployments": ["br-wrong"], "price": PRICE},
        {"name": "bedrock-claude", "deployments": ["br-invoke"], "price": PRICE},
        {"name": "bedrock-claude-failover", "deployments": ["br-invoke", {"deployment": "ant", "priority": 1}],
         "price": PRICE},
    ]


@pytest.fixture(scope="module")
def bedrock_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    with own_stack(tmp_path_factory.mktemp("bedrock"), bedrock_providers, workers=1) as gw:
        gw.key = gw.new_key("bedrock", name="e2e-bedrock")
        yield gw


@pytest.fixture
def gw(bedrock_gw: GatewayUnderTest) -> GatewayUnderTest:
    bedrock_gw.fake.reset()
    return bedrock_gw


@pytest.fixture
def caller(request: pytest.FixtureRequest, gw: GatewayUnderTest) -> Iterator[Caller]:
    c = Caller(request.node.callspec.params["client"], gw)
    yield c
    c.close()


def check_sent(gw: GatewayUnderTest, style: str, *, stream: bool) -> dict[str, Any]:
    """The request Bedrock got: the model id escaped in the path, the operation, the credential (a SigV4
    signature the fake accepted, or the API key), no model or stream field in the body."""
    _, model_id, credential = STYLES[style]
    sent = gw.fake.requests[-1]
    prefix, escaped, op = sent.path.split("/")[1:]
    api = "invoke" if style.startswith("invoke") else "converse"
    streamed = {"converse": "converse-stream", "invoke": "invoke-with-response-stream"}[api]
    assert ("model", model_id, streamed if stream else api) == (prefix, unquote(escaped), op)
    assert "/" not in escaped and ":" not in escaped  # escaped whole, as AWS's SDKs send it
    auth = sent.headers["authorization"]
    if credential == "bearer":
        assert f"Bearer {fake_bedrock.API_KEY}" == auth
    else:
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={credential}/")
        assert (credential == TEMPORARY) == ("x-amz-security-token" in sent.headers)
    body: dict[str, Any] = sent.json()
    assert "model" not in body and "stream" not in body
    if api == "invoke":
        assert fake_bedrock.ANTHROPIC_VERSION == body["anthropic_version"]
    return body


def turn_texts(body: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Each turn's role and texts, in Converse's blocks or Anthropic's (a string, or text blocks)."""
    def texts(content: Any) -> list[str]:
        return [content] if isinstance(content, str) else [b["text"] for b in content if "text" in b]
    return [(m["role"], texts(m["content"])) for m in body["messages"]]


STYLE = {"bedrock-sigv4": "sigv4", "bedrock-claude": "invoke"}


@pytest.mark.parametrize(("client", "style"), CASES)
def test_text(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """A text answer and its usage, in the client's shape; Bedrock got its path and a credential it accepted."""
    gw.fake.push(Reply(text="Bonjour !", usage=BASIC))
    got = caller.ask(STYLES[style][0], Ask("Say hello in French"))
    assert ("Bonjour !", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    assert [("user", ["Say hello in French"])] == turn_texts(check_sent(gw, style, stream=False))


@pytest.mark.parametrize(("client", "style"), CASES)
def test_stream_text(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """ConverseStream's event-stream frames reach the client as its own stream, whole, with usage."""
    gw.fake.push(Reply(text="one two three four", usage=BASIC))
    got = caller.ask(STYLES[style][0], Ask("Count to four", stream=True))
    assert ("one two three four", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    check_sent(gw, style, stream=True)


@pytest.mark.parametrize(("client", "model"), API)
def test_stream_tool_call(gw: GatewayUnderTest, caller: Caller, client: str, model: str) -> None:
    """A streamed tool call comes back whole with the tool stop; the tool went up as a toolSpec (Converse) or
    Anthropic's tool (InvokeModel)."""
    gw.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    got = caller.ask(model, Ask("Weather in Paris?", tools=(WEATHER,), stream=True))
    assert ([("get_weather", {"city": "Paris"})], TOOL_STOP[client]) == (got.calls, got.stop)
    body = check_sent(gw, STYLE[model], stream=True)
    tools = ([(t["toolSpec"]["name"], t["toolSpec"]["inputSchema"]["json"]) for t in body["toolConfig"]["tools"]]
             if "toolConfig" in body else [(t["name"], t["input_schema"]) for t in body["tools"]])
    assert [("get_weather", WEATHER["parameters"])] == tools


@pytest.mark.parametrize(("client", "model"), API)
def test_image(gw: GatewayUnderTest, caller: Caller, client: str, model: str) -> None:
    """A base64 PNG goes up as Converse's image block (format and the same bytes), or Anthropic's."""
    gw.fake.push(Reply(text="A single pixel.", usage=BASIC))
    got = caller.ask(model, Ask("What is in this image?", image=True))
    assert ("A single pixel.", END[client]) == (got.text, got.stop)
    [turn] = check_sent(gw, STYLE[model], stream=False)["messages"]
    expected = ({"image": {"format": "png", "source": {"bytes": PNG_B64}}} if model == "bedrock-sigv4" else
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}})
    assert [expected] == [b for b in turn["content"] if "image" in b or b.get("type") == "image"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "model"), API)
def test_cache_usage(gw: GatewayUnderTest, caller: Caller, client: str, model: str, stream: bool) -> None:
    """Bedrock's cacheRead/cacheWrite tokens reach the client in its own usage semantics, and the metering
    event records the disjoint buckets."""
    since = gw.last_stream_id()
    gw.fake.push(Reply(text="Cached answer.", usage=CACHED))
    got = caller.ask(model, Ask("Use the cache", stream=stream))
    assert CACHED_SEEN[client].items() <= got.usage.items()
    [event] = gw.wait_metering(since)
    assert {"input": 100, "cache_read": 40, "cache_write": 20, "output": 30} == event["usage"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "model"), API)
def test_upstream_error(gw: GatewayUnderTest, caller: Caller, client: str, model: str, stream: bool) -> None:
    """Bedrock's 429 ThrottlingException reaches the client as its own rate-limit error, message kept."""
    gw.fake.push(Reply(error=ErrorReply(429, "Too many requests, please wait before trying again."), times=None))
    exc_type, status, kind = RATE_LIMITED[client]
    with pytest.raises(exc_type) as info:
        caller.ask(model, Ask("hi", stream=stream))
    check_error(client, info.value, status, kind, "Too many requests, please wait")


@pytest.mark.parametrize(("client", "model"), API)
def test_in_stream_exception(gw: GatewayUnderTest, caller: Caller, client: str, model: str) -> None:
    """An exception frame after some events (serviceUnavailableException) is the client's in-band error: its SDK
    raises, with the overloaded error the client's protocol spells; the request is metered as unfinished."""
    gw.fake.push(Reply(text="one two three four five six", usage=BASIC,
                       error=ErrorReply(503, "Bedrock is unavailable right now"), error_after=3))
    since = gw.last_stream_id()
    with pytest.raises(MID_STREAM_EXC[client]) as info:
        caller.ask(model, Ask("Count to six", stream=True))
    exc: Any = info.value
    assert "Bedrock is unavailable right now" in str(exc)
    kind = MID_STREAM[(client, "anthropic")]  # overloaded, as each client spells it
    if client == "gemini":
        assert kind == exc.status
    elif client == "anthropic":
        assert kind == exc.body["error"]["type"]
    elif client == "openai-responses":
        assert kind == exc.code
    else:
        assert kind == (exc.body or {}).get("type")
    [event] = gw.wait_metering(since)
    assert event["complete"] is False


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client", SIGV4)
def test_wrong_signature_is_the_clients_403(gw: GatewayUnderTest, caller: Caller, client: str, stream: bool) -> None:
    """A provider configured with a wrong secret: Bedrock's 403 InvalidSignatureException reaches the client as
    its own permission error, AWS's message kept."""
    exc_type, status, kind = FORBIDDEN[client]
    with pytest.raises(exc_type) as info:
        caller.ask("bedrock-wrong-key", Ask("hi", stream=stream))
    check_error(client, info.value, status, kind, "The request signature we calculated does not match")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_invoke_model_keeps_an_anthropic_callers_caching_and_thinking(gw: GatewayUnderTest, stream: bool) -> None:
    """InvokeModel passes an Anthropic caller's body through (cache_control and the thinking setting intact, with
    anthropic_version, without model and stream) and its answer back as Anthropic's own: the thinking block and its
    signature as Bedrock sent them, cache usage."""
    gw.fake.push(Reply(text="42.", reasoning="Six times seven.", usage=Usage(input=10, cache_read=2000, output=5)))
    client = anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0)
    kw: dict[str, Any] = {
        "model": "bedrock-claude", "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "system": [{"type": "text", "text": "A long, cached system prompt.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "What is six times seven?"}]}
    try:
        if stream:
            with client.messages.stream(**kw) as s:
                m = s.get_final_message()
        else:
            m = client.messages.create(**kw)
    finally:
        client.close()
    [thinking, text] = m.content
    assert (thinking.type, thinking.thinking, text.text) == ("thinking", "Six times seven.", "42.")  # type: ignore[union-attr]
    assert fake_signature("Six times seven.") == thinking.signature  # type: ignore[union-attr]
    assert (2000, 10) == (m.usage.cache_read_input_tokens, m.usage.input_tokens)
    assert ("bedrock-claude" if stream else PROFILE) == m.model  # a passed-through stream names the client's model
    body = check_sent(gw, "invoke", stream=stream)
    assert {"type": "ephemeral"} == body["system"][0]["cache_control"]
    assert {"type": "enabled", "budget_tokens": 2048} == body["thinking"]


@pytest.mark.parametrize("client", ["anthropic", "gemini"])
def test_token_count_of_an_invoke_model_deployment_is_bedrocks_count_tokens(gw: GatewayUnderTest, caller: Caller,
                                                                             client: str) -> None:
    """A count asked of an InvokeModel deployment goes to Bedrock's CountTokens (the InvokeModel body it would
    count, base64 in input.invokeModel.body) and comes back as the client's own count."""
    import base64
    import json

    n, _ = caller.count("bedrock-claude", "one two three four")
    sent = gw.fake.requests[-1]
    assert f"/model/{PROFILE.replace(':', '%3A')}/count-tokens" == sent.path
    inner = json.loads(base64.b64decode(sent.json()["input"]["invokeModel"]["body"]))
    assert (fake_bedrock.ANTHROPIC_VERSION, "model" in inner) == (inner["anthropic_version"], False)
    assert 4 + 3 == n  # the fake's count: prompt words + its overhead
