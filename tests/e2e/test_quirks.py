"""Provider quirks through the running gateway (real Envoy, translators, Redis): the official OpenAI and
Anthropic SDKs against fakes that refuse what the real providers refuse (``fakes.quirks``): a Mistral
(its ``extra_forbidden`` 422s, its 9-character tool-call ids, usage on a stream's last chunk), a DeepSeek
(its thinking mode's ``reasoning_content``, its ``max_tokens`` range, no ``developer`` role) and a server
that reports no usage in streams. The providers are configured by preset (their quirks come with it);
the same provider with ``quirks: []`` (or without the one quirk, or the cap) shows the fake refusing
what the quirk handles.

A stack of its own: the shared config stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from fakes import FakeProvider, Reply, ToolCall, Usage
from tests.harness import GatewayUnderTest, own_stack

KEY_ENV = "TG_TEST_OPENAI_KEY"
PRICE = {"input": 1, "output": 2}
# An OpenAI SDK's tool loop as Codex or an agent framework sends it: a developer message, OpenAI-shaped
# tool-call ids, a strict tool, the reasoning an earlier answer carried.
OAI_MESSAGES: list[Any] = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "reasoning_content": "The tool knows.",
     "tool_calls": [{"id": "call_Hk3kQ0L9wZbGm1x2Yp", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_Hk3kQ0L9wZbGm1x2Yp", "content": "Sunny, 21C"},
]
OAI_TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]
ANT_TOOLS: list[Any] = [{"name": "get_weather", "description": "The weather in a city.",
                         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# Claude Code's second request of a tool loop: its thinking and tool_use sent back, the result.
ANT_MESSAGES: list[Any] = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The tool knows.", "signature": ""},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"city": "Paris"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "Sunny, 21C"}]},
]


def _quirks_providers(fake: FakeProvider, cfg: dict[str, Any], workdir: Path) -> None:
    base = f"http://127.0.0.1:{fake.port}"
    key = {"env": KEY_ENV}
    cfg["providers"] += [
        {"name": "mistral", "preset": "mistral", "base_url": f"{base}/mistral/v1", "api_key": key},
        {"name": "mistral-raw", "preset": "mistral", "base_url": f"{base}/mistral/v1", "api_key": key,
         "quirks": []},
        {"name": "mistral-ids", "preset": "mistral", "base_url": f"{base}/mistral/v1", "api_key": key,
         "quirks": ["no_stream_options", "max_tokens_only", "no_reasoning_history", "no_developer_role"]},
        {"name": "deepseek", "preset": "deepseek", "base_url": f"{base}/deepseek", "api_key": key},
        {"name": "deepseek-uncapped", "preset": "deepseek", "base_url": f"{base}/deepseek", "api_key": key},
        {"name": "quiet", "protocol": "openai", "base_url": f"{base}/quiet/v1", "api_key": key,
         "quirks": ["no_stream_options"]},
    ]
    cfg["deployments"] += [
        {"name": "mistral-d", "provider": "mistral", "model": "mistral-large-latest"},
        {"name": "mistral-raw-d", "provider": "mistral-raw", "model": "mistral-large-latest"},
        {"name": "mistral-ids-d", "provider": "mistral-ids", "model": "mistral-large-latest"},
        {"name": "deepseek-d", "provider": "deepseek", "model": "deepseek-chat", "max_output_tokens": 8192},
        {"name": "deepseek-uncapped-d", "provider": "deepseek-uncapped", "model": "deepseek-chat"},
        {"name": "quiet-d", "provider": "quiet", "model": "quiet-model"},
    ]
    names = ("mistral", "mistral-raw", "mistral-ids", "deepseek", "deepseek-uncapped", "quiet")
    cfg["models"] += [{"name": name, "deployments": [f"{name}-d"], "price": PRICE} for name in names]


@pytest.fixture(scope="module")
def quirks_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    with own_stack(tmp_path_factory.mktemp("quirks"), workers=1, prepare=_quirks_providers) as gw:
        gw.key = gw.new_key("quirks", name="e2e-quirks")
        yield gw


@pytest.fixture
def gw(quirks_gw: GatewayUnderTest) -> GatewayUnderTest:
    quirks_gw.fake.reset()
    assert os.environ[KEY_ENV]
    return quirks_gw


@pytest.fixture
def oai(gw: GatewayUnderTest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0) as client:
        yield client


@pytest.fixture
def ant(gw: GatewayUnderTest) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0) as client:
        yield client


def _sent(gw: GatewayUnderTest) -> dict[str, Any]:
    (request,) = gw.fake.requests
    body: dict[str, Any] = request.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    msgs = body["messages"]
    calls = [c["id"] for m in msgs if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    return calls + [m["tool_call_id"] for m in msgs if m["role"] == "tool"]


def test_an_openai_tool_loop_reaches_mistral_as_mistral_takes_it(gw: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """OpenAI SDK, streamed with usage asked: Mistral gets 9-character ids (the same in call and result),
    system for developer, max_tokens, no stream_options and no reasoning history; the answer streams back
    with the usage Mistral put on its last chunk, metered as reported."""
    gw.fake.push(Reply(text="Sunny and warm.", usage=Usage(input=30, output=4)))
    since = gw.last_stream_id()
    chunks = list(oai.chat.completions.create(model="mistral", messages=OAI_MESSAGES, tools=OAI_TOOLS,
                                              max_completion_tokens=500, stream=True,
                                              stream_options={"include_usage": True}))
    assert "Sunny and warm." == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(30, 4)] == [(u.prompt_tokens, u.completion_tokens) for u in usage]
    body = _sent(gw)
    call, result = _ids(body)
    assert (call, len(call), call.isalnum()) == (result, 9, True)
    assert ("system", 500, None, None) == (body["messages"][0]["role"], body.get("max_tokens"),
                                           body.get("max_completion_tokens"), body.get("stream_options"))
    assert "reasoning_content" not in body["messages"][2]
    (event,) = gw.wait_metering(since)
    assert ({"input": 30, "output": 4}, False) == (event["usage"], event["usage_estimated"])


def test_without_its_quirks_mistral_refuses_the_same_request(gw: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """The control: the same provider with quirks: [] gets the body as the client sent it, and Mistral's
    422 extra_forbidden reaches the OpenAI SDK."""
    with pytest.raises(openai.UnprocessableEntityError) as err:
        list(oai.chat.completions.create(model="mistral-raw", messages=OAI_MESSAGES, tools=OAI_TOOLS,
                                         max_completion_tokens=500, stream=True))
    assert b"Extra inputs are not permitted" in err.value.response.read()  # Mistral's body, passed through


def test_without_its_quirks_mistral_refuses_a_foreign_tool_call_id(gw: GatewayUnderTest,
                                                                    ant: anthropic.Anthropic) -> None:
    """An Anthropic caller's toolu_ ids through a Mistral with every quirk but the id rule: Mistral's 400."""
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="mistral-ids", max_tokens=300, tools=ANT_TOOLS, messages=ANT_MESSAGES)
    assert "but must be a-z, A-Z, 0-9, with a length of 9" in str(err.value)


def test_an_anthropic_tool_loop_reaches_mistral_with_nine_character_ids(gw: GatewayUnderTest,
                                                                         ant: anthropic.Anthropic) -> None:
    """Anthropic SDK (streamed): the toolu_ id of the call and of its result become one 9-character id;
    Mistral's own 9-character call id comes back as the tool_use id."""
    gw.fake.push(Reply(tool_calls=(ToolCall("get_weather", {"city": "Lyon"}, id="aB3xK9mP2"),)))
    with ant.messages.stream(model="mistral", max_tokens=300, tools=ANT_TOOLS, messages=ANT_MESSAGES) as s:
        final = s.get_final_message()
    assert [("tool_use", "aB3xK9mP2", {"city": "Lyon"})] == [(b.type, b.id, b.input) for b in final.content
                                                              if b.type == "tool_use"]
    call, result = _ids(_sent(gw))
    assert (call, len(call), call.isalnum()) == (result, 9, True)


def test_claude_code_reaches_deepseek_capped_with_its_reasoning_sent_back(gw: GatewayUnderTest,
                                                                           ant: anthropic.Anthropic) -> None:
    """Claude Code's max_tokens 32000 is clamped to the deployment's 8192 (sent as max_tokens), its thinking
    goes back as reasoning_content on the tool-call turn, and DeepSeek's reasoning_content comes back as
    a thinking block, streamed."""
    gw.fake.push(Reply(text="It is sunny.", reasoning="The tool said sunny."))
    with ant.messages.stream(model="deepseek", max_tokens=32000, system="Answer briefly.", tools=ANT_TOOLS,
                             messages=ANT_MESSAGES) as s:
        final = s.get_final_message()
    assert [("thinking", "The tool said sunny."), ("text", "It is sunny.")] == [
        (b.type, b.thinking if b.type == "thinking" else getattr(b, "text", None)) for b in final.content]
    body = _sent(gw)
    assistant = next(m for m in body["messages"] if m["role"] == "assistant")
    assert (8192, "The tool knows.") == (body["max_tokens"], assistant["reasoning_content"])


def test_without_the_cap_deepseek_refuses_claude_codes_max_tokens(gw: GatewayUnderTest,
                                                                  ant: anthropic.Anthropic) -> None:
    """The control: the same provider, its deployment without max_output_tokens: DeepSeek's own 400, in
    Anthropic's error shape."""
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="deepseek-uncapped", max_tokens=32000, messages=[{"role": "user", "content": "hi"}],
                            timeout=60)  # the SDK refuses a large max_tokens unstreamed without a timeout
    assert "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]" in str(err.value)


def test_an_openai_caller_gets_deepseeks_reasoning_and_its_developer_message_as_system(
        gw: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """Same protocol: the developer message goes as system (DeepSeek refuses the role), the caller's
    reasoning_content stays on its tool-call turn, and the answer's reasoning_content reaches the SDK."""
    gw.fake.push(Reply(text="Sunny.", reasoning="Checked."))
    answer = oai.chat.completions.create(model="deepseek", messages=OAI_MESSAGES, max_completion_tokens=100)
    assert ("Sunny.", "Checked.") == (answer.choices[0].message.content,
                                      (answer.choices[0].message.model_extra or {}).get("reasoning_content"))
    body = _sent(gw)
    assert ("system", "The tool knows.", 100) == (body["messages"][0]["role"],
                                                  body["messages"][2]["reasoning_content"], body["max_tokens"])


def test_a_stream_without_usage_is_metered_as_an_estimate(gw: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """no_stream_options: the provider is not asked for a usage chunk and reports none, so the metering
    event takes the estimate path (the prompt from the request's size) and says so; the answer is whole,
    without a usage chunk."""
    gw.fake.push(Reply(text="Fine."))
    since = gw.last_stream_id()
    chunks = list(oai.chat.completions.create(model="quiet", messages=[{"role": "user", "content": "hi"}],
                                              stream=True, stream_options={"include_usage": True}))
    assert "Fine." == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [] == [c.usage for c in chunks if c.usage is not None]  # none reported, none made up
    assert "stream_options" not in _sent(gw)
    (event,) = gw.wait_metering(since)
    assert (True, True) == (event["usage_estimated"], event["usage"]["input"] > 0)
    assert "output" not in event["usage"]
