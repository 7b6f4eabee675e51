"""The OpenAI protocol end to end: the official SDK -> Envoy -> translator -> fake OpenAI."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from fakes import ErrorReply, Reply, ToolCall, Usage
from tests.harness import MAX_REQUEST_BYTES, UPSTREAM_SECRETS, GatewayUnderTest

MESSAGES = [{"role": "user", "content": "Hello there"}]


_clients: list[openai.OpenAI] = []


def client(gw: GatewayUnderTest, key: str | None = None) -> openai.OpenAI:
    c = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key or gw.key, max_retries=0)
    _clients.append(c)
    return c


@pytest.fixture(autouse=True, scope="module")
def _close_clients() -> Iterator[None]:
    yield
    for c in _clients:
        c.close()


def test_chat_completion_reaches_the_provider_with_its_credential(gateway: GatewayUnderTest) -> None:
    """A non-streaming call is answered, and upstream sees the provider key, never the client's."""
    gateway.fake.push(Reply(text="Hi from upstream", usage=Usage(input=7, output=4)))
    since = gateway.last_stream_id()
    resp = client(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert "Hi from upstream" == resp.choices[0].message.content
    assert (7, 4) == (resp.usage.prompt_tokens, resp.usage.completion_tokens)  # type: ignore[union-attr]
    sent = gateway.fake.requests[-1]
    assert "/v1/chat/completions" == sent.path
    assert f"Bearer {UPSTREAM_SECRETS['TG_TEST_OPENAI_KEY']}" == sent.headers["authorization"]
    assert gateway.key not in str(dict(sent.headers)) + sent.body.decode()
    [event] = gateway.wait_metering(since)
    assert {"input": 7, "output": 4} == {k: event["usage"][k] for k in ("input", "output")}
    assert ("gpt-test", "oai", 200, True) == (event["model"], event["deployment"], event["status"], event["complete"])


def test_same_protocol_body_is_passed_through_byte_for_byte(gateway: GatewayUnderTest) -> None:
    """Same protocol and same model name: the upstream gets the client's exact bytes."""
    raw = b'{"model": "gpt-test",  "messages": [{"role": "user", "content": "exact"}], "temperature": 0.5}'
    httpx.post(f"{gateway.http}/v1/chat/completions", content=raw,
               headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    assert raw == gateway.fake.requests[-1].body


def test_model_alias_is_renamed_for_the_deployment(gateway: GatewayUnderTest) -> None:
    """The client's model name is replaced by the deployment's upstream model name."""
    resp = client(gateway).chat.completions.create(model="gpt-latest", messages=MESSAGES)  # type: ignore[arg-type]
    assert "gpt-test-2025-01-01" == gateway.fake.requests[-1].json()["model"]
    assert resp.choices[0].message.content


def test_stream_without_include_usage_hides_the_usage_chunk(gateway: GatewayUnderTest) -> None:
    """Usage is asked of the upstream, metered, and its extra chunk removed for the client."""
    gateway.fake.push(Reply(text="one two three four", usage=Usage(input=3, output=4)))
    since = gateway.last_stream_id()
    stream = client(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    assert "one two three four" == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.choices for c in chunks), "no usage-only chunk reaches a client that did not ask"
    assert {"include_usage": True} == gateway.fake.requests[-1].json()["stream_options"]
    [event] = gateway.wait_metering(since)
    assert (3, 4, True) == (event["usage"]["input"], event["usage"]["output"], event["complete"])


def test_stream_with_include_usage_keeps_the_usage_chunk(gateway: GatewayUnderTest) -> None:
    """A client that asked for usage gets the final usage chunk, unchanged."""
    gateway.fake.push(Reply(text="a b", usage=Usage(input=11, output=2, cache_read=5)))
    stream = client(gateway).chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True})  # type: ignore[arg-type]
    chunks = list(stream)
    last = chunks[-1]
    assert [] == last.choices
    assert (16, 2, 5) == (last.usage.prompt_tokens, last.usage.completion_tokens,  # type: ignore[union-attr]
                          last.usage.prompt_tokens_details.cached_tokens)  # type: ignore[union-attr]


def test_tool_calls_pass_through_streamed_and_not(gateway: GatewayUnderTest) -> None:
    """Tool calls reach the SDK whole, and streamed arguments accumulate to the same JSON."""
    call = ToolCall("get_weather", {"city": "Paris", "unit": "C"}, id="call_abc")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    gateway.fake.push(Reply(tool_calls=[call]), Reply(tool_calls=[call]))
    c = client(gateway)
    resp = c.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    tc = resp.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert ("call_abc", "get_weather", {"city": "Paris", "unit": "C"}) == (tc.id, tc.function.name, json.loads(tc.function.arguments))
    assert "tool_calls" == resp.choices[0].finish_reason
    args = ""
    finish = None
    for chunk in c.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=tools, stream=True):  # type: ignore[arg-type]
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or []:
                args += d.function.arguments or ""  # type: ignore[union-attr]
            finish = choice.finish_reason or finish
    assert ({"city": "Paris", "unit": "C"}, "tool_calls") == (json.loads(args), finish)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "No API key provided"),
        ("sk-not-ours", "Incorrect API key"),
        ("sk-tg-test-" + "x" * 40, "Incorrect API key"),
    ],
    ids=["missing", "foreign", "unknown"],
)
def test_bad_keys_get_401_in_openai_shape(gateway: GatewayUnderTest, key: str, message: str) -> None:
    """A missing or unknown key is a 401 AuthenticationError, and nothing goes upstream."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    resp = httpx.post(f"{gateway.http}/v1/chat/completions", headers=headers,
                      json={"model": "gpt-test", "messages": MESSAGES})
    assert 401 == resp.status_code
    assert message in resp.json()["error"]["message"]
    assert "invalid_api_key" == resp.json()["error"]["code"]
    assert [] == gateway.fake.requests


def test_revoked_and_expired_keys_get_401(gateway: GatewayUnderTest) -> None:
    """Revoked and expired keys are refused by the SDK's AuthenticationError."""
    import time

    expired = gateway.new_key("test", name="old", expires_at=int(time.time()) - 1)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        client(gateway, expired).chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    revoked = gateway.new_key("test", name="gone")
    from core import store

    with gateway.redis() as r:
        r.hset(store.key_record("test", store.digest(revoked)), "revoked", "1")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client(gateway, revoked).chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]


def test_unknown_path_is_404(gateway: GatewayUnderTest) -> None:
    """A path tokengate does not serve is a 404 NotFoundError naming the base URL rule."""
    with pytest.raises(openai.NotFoundError, match="base URL"):
        client(gateway).post("/embeddingz", body={}, cast_to=httpx.Response)


def test_unknown_model_is_404_model_not_found(gateway: GatewayUnderTest) -> None:
    """An unknown model is a 404 with code model_not_found."""
    with pytest.raises(openai.NotFoundError) as exc:
        client(gateway).chat.completions.create(model="gpt-nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert "model_not_found" == exc.value.code
    assert [] == gateway.fake.requests


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "no 'model'"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "x": ' + b"[" * 300 + b"]" * 300
         + b"}", 400, "nested more than 128"),
        (b'{"model": "gpt-test", "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}', 413, ""),
    ],
    ids=["malformed", "not-an-object", "no-model", "too-deep", "deeper-than-we-can-write", "too-large"],
)
def test_bad_bodies_get_a_clear_openai_error(gateway: GatewayUnderTest, body: bytes, status: int, fragment: str) -> None:
    """Malformed, deep or oversized bodies get 400/413 in OpenAI's error shape."""
    resp = httpx.post(f"{gateway.http}/v1/chat/completions", content=body,
                      headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    assert status == resp.status_code
    err = resp.json()["error"]
    assert fragment in err["message"]
    assert {"message", "type", "param", "code"} == set(err)


@pytest.mark.parametrize(
    ("error", "exc_type"),
    [
        (ErrorReply(429, "Rate limit reached for gpt-test", type="requests", code="rate_limit_exceeded", retry_after=1), openai.RateLimitError),
        (ErrorReply(500, "The server had an error"), openai.InternalServerError),
        (ErrorReply(400, "Unsupported parameter: 'foo'", code="unsupported_parameter"), openai.BadRequestError),
    ],
    ids=["429", "500", "400"],
)
def test_upstream_errors_pass_through_with_their_status(gateway: GatewayUnderTest, error: ErrorReply, exc_type: type[Exception]) -> None:
    """Upstream errors keep status, message and retry-after, and are metered as failures."""
    gateway.fake.push(Reply(error=error, times=None))  # every attempt, retries included
    since = gateway.last_stream_id()
    with pytest.raises(exc_type) as exc:
        client(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert error.message in str(exc.value)
    if error.retry_after:
        assert "1" == exc.value.response.headers["retry-after"]  # type: ignore[attr-defined]
    [event] = gateway.wait_metering(since)
    assert error.status == event["status"]


def test_models_list_shows_configured_models(gateway: GatewayUnderTest) -> None:
    """GET /v1/models lists every configured model in OpenAI's shape."""
    ids = [m.id for m in client(gateway).models.list()]
    assert ["gpt-test", "gpt-alias", "gpt-latest", "claude-test", "gemini-test", "claude-down", "gpt-resp-test",
            "embed-oai-test", "embed-gem-test", "embed-gem-renamed"] == ids  # aliases and embedding models too
    assert "claude-test" == client(gateway).models.retrieve("claude-test").id


def test_tls_listener_serves_the_sdk(gateway: GatewayUnderTest) -> None:
    """The TLS listener answers the SDK with the generated certificate."""
    with httpx.Client(verify=ssl.create_default_context(cafile=gateway.tls_cert)) as http:
        c = openai.OpenAI(base_url=f"{gateway.https}/v1", api_key=gateway.key, max_retries=0, http_client=http)
        resp = c.chat.completions.create(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert "echo: Hello there" == resp.choices[0].message.content


def test_a_body_over_the_limit_writes_no_metering_event(gateway: GatewayUnderTest) -> None:
    """Envoy's 413 comes before authentication: no account to charge, so no event (none dead-lettered)."""
    since = gateway.last_stream_id()
    with gateway.redis() as r:
        dead_before = r.xlen("tg:metering:dead")
    body = b'{"model": "gpt-test", "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}'
    resp = httpx.post(f"{gateway.http}/v1/chat/completions", content=body,
                      headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    time.sleep(0.5)  # absence: an event would be written within the writer's 10 ms linger
    with gateway.redis() as r:
        dead_after = r.xlen("tg:metering:dead")
    ours = [e for e in gateway.metering_events(since) if e["status"] == 413 or not e["account"]]  # not a late one
    assert (413, [], dead_before) == (resp.status_code, ours, dead_after)


def test_an_unreachable_provider_of_another_protocol_is_an_error_in_the_callers_shape(
    gateway: GatewayUnderTest,
) -> None:
    """Envoy's own reply on a direct route to an Anthropic provider nobody serves reaches an OpenAI caller
    as an OpenAI error (not Anthropic's shape, which the request's upstream headers would pick)."""
    resp = httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {gateway.key}"},
                      json={"model": "claude-down", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    err = resp.json()["error"]
    assert (503, True) == (resp.status_code, {"message", "type", "param", "code"} <= set(err)), resp.text


def test_only_the_protocols_headers_reach_the_provider(gateway: GatewayUnderTest) -> None:
    """Cookies, client addresses, tracing, SDK and encoding headers stay at the gateway; content type and
    user agent go on (a compressed answer could not be read for usage)."""
    gateway.fake.push(Reply(text="x"))
    sent_headers = {"authorization": f"Bearer {gateway.key}", "cookie": "session=abc", "x-forwarded-for": "10.1.2.3",
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "accept-encoding": "gzip", "openai-organization": "org-x", "user-agent": "probe/1.0"}
    httpx.post(f"{gateway.http}/v1/chat/completions", headers=sent_headers,
               json={"model": "gpt-test", "messages": MESSAGES}).raise_for_status()
    [req] = gateway.fake.requests
    got = {k.lower() for k in req.headers}
    assert set() == got & {"cookie", "x-forwarded-for", "x-envoy-external-address", "traceparent", "accept-encoding",
                           "openai-organization"}
    assert ("probe/1.0", "application/json") == (req.headers.get("user-agent"), req.headers.get("content-type"))


def test_envoys_413_on_the_anthropic_path_is_in_anthropics_shape_without_the_version_header(
    gateway: GatewayUnderTest,
) -> None:
    """The error shape of Envoy's own replies follows the path too, not only the anthropic-version header."""
    body = b'{"model": "claude-test", "max_tokens": 5, "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}'
    resp = httpx.post(f"{gateway.http}/v1/messages", content=body,
                      headers={"x-api-key": gateway.key, "content-type": "application/json"})
    doc = resp.json()
    assert (413, "error", "request_too_large") == (resp.status_code, doc["type"], doc["error"]["type"])


@pytest.mark.parametrize(("path", "check"), [
    ("/v1/chat/completions", lambda d: d["error"]["type"] == "invalid_request_error"),
    ("/v1/messages", lambda d: (d["type"], d["error"]["type"]) == ("error", "request_too_large")),
    ("/v1beta/models/gemini-test:generateContent", lambda d: d["error"]["code"] == 431),
])
def test_oversized_headers_get_a_431_in_the_paths_protocol_shape(
        gateway: GatewayUnderTest, path: str, check: Any) -> None:
    """A 100 KB header is refused with 431 in the shape of the protocol the path speaks, never an empty text/plain."""
    resp = httpx.post(f"{gateway.http}{path}", json={"model": "gpt-test"},
                      headers={"authorization": f"Bearer {gateway.key}", "x-big": "x" * 100_000})
    assert (431, "application/json") == (resp.status_code, resp.headers.get("content-type")), resp.text
    assert check(resp.json()), resp.text
