"""Provider quirks (docs/providers.md, "Quirks") and the per-deployment output cap, as an attempt's body
gets them: through ``attempt_body`` (translator/extproc/upstream.py) for a deployment built from a real
config, from a caller of the provider's own protocol and from one of another. Each case also sends the
same request to the same provider without the quirk, so a quirk that did nothing would fail.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.config import ConfigError, parse
from core.protocols import Protocol
from translator.endpoints import Kind
from translator.extproc.upstream import attempt_body, needs_body
from translator.protocols import REGISTRY
from translator.protocols.convert import response_translator
from translator.protocols.openai.quirks import id9
from translator.state import Target, targets

OPENAI, ANTHROPIC = REGISTRY.get("openai"), REGISTRY.get("anthropic")


def target(quirks: list[str] | None = None, *, protocol: str = "openai", cap: int | None = None) -> Target:
    """The deployment ``d`` of a provider with ``quirks`` (and an output cap ``cap``), as the gateway builds it."""
    provider: dict[str, Any] = {"name": "p", "protocol": protocol, "base_url": "https://api.example.com/v1"}
    if quirks is not None:
        provider["quirks"] = quirks
    deployment: dict[str, Any] = {"name": "d", "provider": "p", "model": "up-model"}
    if cap is not None:
        deployment["max_output_tokens"] = cap
    cfg = parse({"providers": [provider], "deployments": [deployment],
                 "models": [{"name": "m", "deployments": ["d"], "free": True}]}, "test")
    return targets(cfg, Path("."))["d"]


def sent(caller: Any, t: Target, body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    return attempt_body(caller, Kind.CHAT, stream, t, copy.deepcopy(body))


# --- same protocol: an OpenAI caller's own body -------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "get_weather", "strict": True,
                                         "parameters": {"type": "object", "properties": {},
                                                        "additionalProperties": False}}}
HISTORY = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": None, "reasoning_content": "I should call it.",
     "tool_calls": [{"id": "call_abc123XYZdef456", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_abc123XYZdef456", "content": "Sunny"},
]
OAI_BODY = {"model": "m", "messages": HISTORY, "tools": [TOOL], "max_completion_tokens": 32000,
            "stream": True, "stream_options": {"include_usage": True},
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": True, "schema": {}}}}


def _ids(body: dict[str, Any]) -> tuple[str, str]:
    return body["messages"][2]["tool_calls"][0]["id"], body["messages"][3]["tool_call_id"]


# quirk -> what it reads from the body sent, without it and with it
SAME_PROTOCOL = {
    "tool_call_id_9_alnum": (_ids, ("call_abc123XYZdef456",) * 2, (id9("call_abc123XYZdef456"),) * 2),
    "no_stream_options": (lambda b: "stream_options" in b, True, False),
    "max_tokens_only": (lambda b: (b.get("max_completion_tokens"), b.get("max_tokens")), (32000, None), (None, 32000)),
    "no_developer_role": (lambda b: b["messages"][0]["role"], "developer", "system"),
    "no_strict_tools": (lambda b: ("strict" in b["tools"][0]["function"],
                                   "strict" in b["response_format"]["json_schema"]), (True, True), (False, False)),
    "no_reasoning_history": (lambda b: "reasoning_content" in b["messages"][2], True, False),
}


@pytest.mark.parametrize("quirk", SAME_PROTOCOL, ids=SAME_PROTOCOL)
def test_a_quirk_changes_an_openai_callers_own_body(quirk: str) -> None:
    """An OpenAI caller to an OpenAI-compatible provider: the body is read (not passed through untouched)
    and changed as the quirk asks; without the quirk the same field goes as the caller sent it."""
    read, plain, quirked = SAME_PROTOCOL[quirk]
    assert not needs_body(OPENAI, "up-model", target(), Kind.CHAT)  # a plain provider skips the body
    assert needs_body(OPENAI, "up-model", target([quirk]), Kind.CHAT)
    assert (plain, quirked) == (read(sent(OPENAI, target(), OAI_BODY)), read(sent(OPENAI, target([quirk]), OAI_BODY)))


def test_the_tool_call_id_is_mapped_the_same_in_the_call_and_its_result() -> None:
    """Mistral's rule: exactly 9 of [a-zA-Z0-9]; the same id for the call and its result; a valid id kept."""
    a, b = _ids(sent(OPENAI, target(["tool_call_id_9_alnum"]), OAI_BODY))
    assert a == b and len(a) == 9 and a.isalnum() and a.isascii()
    assert id9("abcDEF123") == "abcDEF123"
    assert id9("call_1") != id9("call_2")


# --- another protocol: an Anthropic caller (Claude Code) ---------------------------------------------

ANT_BODY = {
    "model": "m", "max_tokens": 32000, "stream": True, "system": "Be brief.",
    "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}, "strict": True}],
    "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call it.", "signature": ""},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "Sunny"}]},
    ],
}


def test_reasoning_history_goes_back_as_reasoning_content_to_a_provider_that_wants_it() -> None:
    """DeepSeek's thinking mode refuses a tool-call turn without its reasoning_content: a translated history
    carries the thinking back there, and nowhere else."""
    plain = sent(ANTHROPIC, target(), ANT_BODY, stream=True)["messages"][2]
    quirked = sent(ANTHROPIC, target(["reasoning_content"]), ANT_BODY, stream=True)["messages"][2]
    assert "reasoning_content" not in plain
    assert "I should call it." == quirked["reasoning_content"]


def test_a_tool_call_turn_without_kept_thinking_still_has_reasoning_content() -> None:
    body: dict[str, Any] = copy.deepcopy(ANT_BODY)
    del body["messages"][1]["content"][0]
    assert "" == sent(ANTHROPIC, target(["reasoning_content"]), body, stream=True)["messages"][2]["reasoning_content"]


def test_an_anthropic_callers_request_to_mistral_gets_every_quirk() -> None:
    """Claude Code to Mistral: 9-character ids in call and result, max_tokens, no stream_options."""
    t = target(["tool_call_id_9_alnum", "no_stream_options", "max_tokens_only", "no_reasoning_history"])
    body = sent(ANTHROPIC, t, ANT_BODY, stream=True)
    call, result = body["messages"][2]["tool_calls"][0]["id"], body["messages"][3]["tool_call_id"]
    assert (call, len(call), call.isalnum()) == (result, 9, True)
    assert (32000, None, None) == (body.get("max_tokens"), body.get("max_completion_tokens"), body.get("stream_options"))


# --- the per-deployment output cap --------------------------------------------------------------------

CAPPED = [
    pytest.param("anthropic", "openai", ANT_BODY, lambda b: b["max_completion_tokens"], id="anthropic->openai"),
    pytest.param("openai", "openai", OAI_BODY, lambda b: b["max_completion_tokens"], id="openai->openai"),
    pytest.param("anthropic", "anthropic", ANT_BODY, lambda b: b["max_tokens"], id="anthropic->anthropic"),
    pytest.param("anthropic", "gemini", ANT_BODY, lambda b: b["generationConfig"]["maxOutputTokens"],
                 id="anthropic->gemini"),
    pytest.param("anthropic", "openai-responses", ANT_BODY, lambda b: b["max_output_tokens"],
                 id="anthropic->responses"),
]


@pytest.mark.parametrize(("caller", "upstream", "body", "read"), CAPPED)
def test_a_deployments_output_cap_lowers_a_larger_limit(caller: str, upstream: str, body: dict[str, Any],
                                                         read: Any) -> None:
    """Claude Code asks for 32000 output tokens; a deployment that allows 8192 gets 8192, not a 400."""
    c = REGISTRY.get(caller)
    assert 32000 == read(sent(c, target(protocol=upstream), body, stream=True))
    assert 8192 == read(sent(c, target(protocol=upstream, cap=8192), body, stream=True))
    assert 32000 == read(sent(c, target(protocol=upstream, cap=64000), body, stream=True))  # only ever lowered


def test_the_cap_keeps_an_anthropic_thinking_budget_below_max_tokens() -> None:
    body = {**ANT_BODY, "thinking": {"type": "enabled", "budget_tokens": 16000}}
    out = sent(ANTHROPIC, target(protocol="anthropic", cap=8192), body)
    assert (8192, 8191) == (out["max_tokens"], out["thinking"]["budget_tokens"])
    assert "thinking" not in sent(ANTHROPIC, target(protocol="anthropic", cap=1024), body)


def test_no_limit_stays_no_limit() -> None:
    body = {k: v for k, v in OAI_BODY.items() if k != "max_completion_tokens"}
    out = sent(OPENAI, target(cap=8192), body)
    assert (None, None) == (out.get("max_completion_tokens"), out.get("max_tokens"))


@pytest.mark.parametrize("codec", list(REGISTRY), ids=[c.name for c in REGISTRY])
def test_every_codec_caps_output_and_names_the_quirks_core_lists(codec: Any) -> None:
    """Protocol.quirks (what the config accepts) is what the codec acts on; each codec can cap output."""
    assert Protocol(codec.name).quirks == codec.quirks
    body = codec.encode_request(OPENAI.decode_request({**OAI_BODY, "stream": False}), "x", False)
    assert codec.output_cap(codec.limit_output(body, 100)) == 100


# --- answers: reasoning_content is read always, not as a quirk ----------------------------------------

ANSWER = {"id": "x", "object": "chat.completion", "created": 1, "model": "deepseek-reasoner",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "42", "reasoning_content": "Let me think."}}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
CHUNKS = [{"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Let me"}}]},
          {"choices": [{"index": 0, "delta": {"reasoning_content": " think."}}]},
          {"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}]
STREAM = b"".join(b"data: " + orjson.dumps({"id": "x", "object": "chat.completion.chunk", **c}) + b"\n\n"
                  for c in CHUNKS) + b"data: [DONE]\n\n"
# client -> where its protocol puts the reasoning (whole answer; a stream carries the same text)
REASONING = {
    "anthropic": lambda doc: [b["thinking"] for b in doc["content"] if b["type"] == "thinking"],
    "gemini": lambda doc: [p["text"] for p in doc["candidates"][0]["content"]["parts"] if p.get("thought")],
    "openai-responses": lambda doc: [s["text"] for i in doc["output"] if i["type"] == "reasoning"
                                     for s in i["summary"]],
}
STREAMED = {"anthropic": b'"thinking":" think."', "gemini": b'"thought":true', "openai-responses": b"reasoning"}


@pytest.mark.parametrize("client", REASONING, ids=REASONING)
def test_reasoning_content_reaches_every_client_as_its_reasoning(client: str) -> None:
    """A DeepSeek answer's reasoning_content: thinking blocks (Anthropic), thought parts (Gemini), reasoning
    items (Responses), whole and streamed; the decoders read it for every OpenAI-compatible provider."""
    whole = response_translator(client, "openai", stream=False, client_model="m", include_usage=False)
    doc = orjson.loads(whole.feed(orjson.dumps(ANSWER)) + whole.flush())
    assert ["Let me think."] == REASONING[client](doc)
    streamed = response_translator(client, "openai", stream=True, client_model="m", include_usage=False)
    out = streamed.feed(STREAM) + streamed.flush()
    assert STREAMED[client] in out and b"Let me" in out


# --- the config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "expected"), [
    ({"quirks": ["no_strict_tool"]}, "unknown quirk 'no_strict_tool' for protocol openai; did you mean "
                                     "'no_strict_tools'?"),
    ({"quirks": ["no_stream_options"], "protocol": "anthropic"}, "protocol anthropic has no quirks"),
], ids=["unknown", "other-protocol"])
def test_a_bad_quirk_is_a_config_error(provider: dict[str, Any], expected: str) -> None:
    doc = {"providers": [{"name": "p", "protocol": "openai", "base_url": "https://x.example/v1", **provider}],
           "deployments": [{"name": "d", "provider": "p", "model": "x"}],
           "models": [{"name": "m", "deployments": ["d"], "free": True}]}
    with pytest.raises(ConfigError, match="providers\\[0\\]: quirks: ") as err:
        parse(doc, "gw.yaml")
    assert expected in str(err.value)


@pytest.mark.parametrize(("entry", "expected"), [
    ({"preset": "mistral"}, {"tool_call_id_9_alnum", "no_stream_options", "max_tokens_only",
                             "no_reasoning_history", "no_developer_role"}),
    ({"preset": "mistral", "quirks": ["tool_call_id_9_alnum"]}, {"tool_call_id_9_alnum"}),
    ({"preset": "mistral", "quirks": []}, set()),
    ({"preset": "deepseek", "protocol": "anthropic", "base_url": "https://api.deepseek.com/anthropic"}, set()),
], ids=["preset", "overridden", "turned-off", "preset-under-another-protocol"])
def test_a_preset_fills_quirks_and_the_config_overrides_them(entry: dict[str, Any], expected: set[str]) -> None:
    doc = {"providers": [{"name": "p", "api_key": {"env": "X"}, **entry}],
           "deployments": [{"name": "d", "provider": "p", "model": "x", "max_output_tokens": 8192}],
           "models": [{"name": "m", "deployments": ["d"], "free": True}]}
    cfg = parse(doc, "gw.yaml")
    t = targets(cfg, Path("."))["d"]
    assert (expected, 8192) == (set(t.quirks), t.max_output)
