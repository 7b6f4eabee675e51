"""Reasoning round trips between protocols: an upstream's signed reasoning leaves in the client's
slot for an opaque token and comes back intact on the next turn (translator/protocols/carry.py).

Each case takes the answer a fake provider gives (``fakes``: signed the way the provider signs),
translates it for the client, lets the client's SDK (or gemini-cli's way of keeping history) build
the next turn from it, translates that turn back, and hands it to the fake's own check of the
history — the check the real provider makes, with its error message (``fakes.anthropic.check_history``,
``fakes.gemini.check_signatures``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from core.protocols import Protocol
from fakes.anthropic import AnthropicCodec, check_history
from fakes.codec import Answer, BadRequest, Call, Kind, signature
from fakes.gemini import SKIP_SIGNATURE, GeminiCodec, check_signatures
from fakes.openai import OpenAICodec
from fakes.script import ToolCall, Usage
from translator.protocols import carry
from translator.protocols.convert import response_translator, translate_request

from . import sdk

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI
THOUGHT = "The user wants the weather. I will call the tool."
WEATHER = {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QUESTION = "Weather in Paris?"
GEMINI_3 = "gemini-3-test"
FAKES = {OAI: OpenAICodec(), ANT: AnthropicCodec(), GEM: GeminiCodec()}


def upstream_answer(upstream: Protocol, stream: bool, *, model: str = "m") -> bytes:
    """The fake provider's answer with reasoning and a tool call, as the gateway reads it."""
    answer = Answer("", THOUGHT, (ToolCall("get_weather", {"city": "Paris"}, "toolu_1"),), Usage(5, 3), None)
    call = Call(Kind.GENERATE, model, stream=stream, sse=True)
    fake = FAKES[upstream]
    return b"".join(fake.stream(call, answer)) if stream else fake.complete(call, answer)


def translate(client: Protocol, upstream: Protocol, stream: bool, *, model: str = "m") -> bytes:
    t = response_translator(client, upstream, stream=stream, client_model="m", include_usage=True, created=1)
    return t.feed(upstream_answer(upstream, stream, model=model)) + t.flush()


def first_request(client: Protocol, think: bool = True) -> dict[str, Any]:
    if client is ANT:
        body: dict[str, Any] = {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": QUESTION}],
                                "tools": [{"name": "get_weather", "description": "Weather",
                                           "input_schema": WEATHER["parameters"]}]}
        if think:
            body["thinking"] = {"type": "adaptive"}
        return body
    if client is GEM:
        body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
                "tools": [{"functionDeclarations": [WEATHER]}]}
        if think:
            body["generationConfig"] = {"thinkingConfig": {"includeThoughts": True}}
        return body
    body = {"model": "m", "messages": [{"role": "user", "content": QUESTION}],
            "tools": [{"type": "function", "function": WEATHER}]}
    if think:
        body["reasoning_effort"] = "low"
    return body


def next_turn(client: Protocol, answer: bytes, stream: bool, style: str = "sdk") -> dict[str, Any]:
    """The client's second request: its first one, the answer as the client keeps it, the tool's result."""
    body = first_request(client)
    if client is ANT:
        msg = sdk.anthropic_message(answer) if stream else sdk.anthropic_client(answer, sse=False).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        content = [b.model_dump(exclude_none=True) for b in msg.content]
        call = next(b for b in content if b["type"] == "tool_use")
        body["messages"] += [{"role": "assistant", "content": content}, {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "18C"}]}]
    elif client is GEM:
        parts = gemini_parts(answer, stream, style)
        call = next(p for p in parts if "functionCall" in p or "function_call" in p)
        name = (call.get("functionCall") or call["function_call"])["name"]
        body["contents"] += [{"role": "model", "parts": parts}, {"role": "user", "parts": [
            {"functionResponse": {"name": name, "response": {"output": "18C"}}}]}]
    else:
        said: dict[str, Any] = (json.loads(answer)["choices"][0]["message"] if not stream
                                else _openai_message(sdk.accumulate_openai(sdk.openai_chunks(answer))))
        body["messages"] += [said, {"role": "tool", "tool_call_id": said["tool_calls"][0]["id"], "content": "18C"}]
    return body


def _openai_message(acc: dict[str, Any]) -> dict[str, Any]:
    calls = [{"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": t["arguments"]}}
             for t in acc["tools"]]
    return {"role": "assistant", "content": acc["text"] or None, "tool_calls": calls}


def gemini_parts(answer: bytes, stream: bool, style: str) -> list[dict[str, Any]]:
    """The model turn as a Gemini client keeps it: gemini-cli keeps the raw parts without the thoughts;
    google-genai keeps every part, its thought_signature bytes re-encoded URL-safe."""
    if style == "gemini-cli":
        chunks = [json.loads(line[6:]) for line in answer.decode().splitlines() if line.startswith("data: ")] \
            if stream else [json.loads(answer)]
        raw = [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])]
        return [p for p in raw if not p.get("thought")]
    responses = sdk.gemini_chunks(answer) if stream else [
        sdk.gemini_client(answer, sse=False).models.generate_content(model="m", contents="hi")]
    contents = [r.candidates[0].content for r in responses if r.candidates]
    parts = [p for c in contents if c is not None for p in c.parts or []]
    out = []
    for p in parts:
        d = p.model_dump(exclude_none=True)
        if p.thought_signature is not None:
            d["thought_signature"] = base64.urlsafe_b64encode(p.thought_signature).decode()
        out.append(d)
    return out


def upstream_body(client: Protocol, upstream: Protocol, body: dict[str, Any], model: str = "up") -> dict[str, Any]:
    return translate_request(client, upstream, body, upstream_model=model, stream=False)


STREAM = [False, True]
STREAM_IDS = ["whole", "stream"]


# --- Anthropic upstream: its thinking blocks must come back signed, byte-exact ----------------------


@pytest.mark.parametrize("style", ["gemini-cli", "google-genai"])
@pytest.mark.parametrize("stream", STREAM, ids=STREAM_IDS)
def test_anthropic_thinking_leaves_in_thought_signatures_and_comes_back_through_a_gemini_client(
        stream: bool, style: str) -> None:
    """An Anthropic thinking block reaches a Gemini client sealed in thoughtSignature (on the thought part
    and on the first function call) and is rebuilt, byte-exact and first, when the client sends the turn
    back — also when the client dropped its thought parts (gemini-cli) or re-encoded the bytes (google-genai)."""
    answer = translate(GEM, ANT, stream)
    parts = gemini_parts(answer, stream, "gemini-cli")
    [call] = parts  # what gemini-cli keeps: the call, its signature carrying the thinking
    assert {"a": [[THOUGHT, signature(THOUGHT)]]} == carry.unseal(call["thoughtSignature"])
    body = upstream_body(GEM, ANT, next_turn(GEM, answer, stream, style))
    assert {"type": "adaptive"} != body.get("thinking") and body["thinking"]["type"] == "enabled"
    assert [{"type": "thinking", "thinking": THOUGHT, "signature": signature(THOUGHT)},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}] \
        == body["messages"][1]["content"]
    check_history(body["messages"], body["thinking"], "")  # the provider accepts it


@pytest.mark.parametrize("stream", STREAM, ids=STREAM_IDS)
def test_anthropic_thinking_through_an_openai_client_turns_thinking_off_for_the_loop(stream: bool) -> None:
    """OpenAI Chat has no slot for a signature: a streamed answer's thinking cannot come back, so the tool
    loop it started is sent with thinking off (what Anthropic accepts); a whole answer's non-standard
    thinking_blocks, echoed, keep it on."""
    answer = translate(OAI, ANT, stream)
    body = upstream_body(OAI, ANT, next_turn(OAI, answer, stream))
    if stream:
        assert "thinking" not in body
        assert [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}] \
            == body["messages"][1]["content"]
    else:
        assert body["thinking"]["type"] == "enabled"
        assert "thinking" == body["messages"][1]["content"][0]["type"]
    check_history(body["messages"], body.get("thinking"), "")


def test_the_fake_anthropic_refuses_what_anthropic_refuses() -> None:
    """The rules the gateway is tested against: a tool loop without signed thinking, and an edited block."""
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}]
    with pytest.raises(BadRequest, match=r"^messages\.1\.content\.0\.type: Expected `thinking` or `redacted_thinking`,"
                                         r" but found `tool_use`\. When `thinking` is enabled"):
        check_history(msgs, {"type": "enabled", "budget_tokens": 1024}, "")
    check_history(msgs, None, "")
    msgs[1]["content"] = [{"type": "thinking", "thinking": "edited", "signature": signature("original")},
                          *msgs[1]["content"]]
    with pytest.raises(BadRequest, match=r"^messages\.1\.content\.0: Invalid `signature` in `thinking` block$"):
        check_history(msgs, {"type": "adaptive"}, "")


def test_redacted_thinking_comes_back_through_a_gemini_client() -> None:
    """A redacted_thinking block travels sealed on an empty thought part and on the call, and comes back."""
    data = signature("secret")
    up = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "tool_use",
          "content": [{"type": "redacted_thinking", "data": data},
                      {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
          "usage": {"input_tokens": 1, "output_tokens": 1}}
    t = response_translator(GEM, ANT, stream=False, client_model="m", include_usage=True, created=1)
    answer = t.feed(json.dumps(up).encode()) + t.flush()
    body = upstream_body(GEM, ANT, next_turn(GEM, answer, False, "gemini-cli"))
    assert {"type": "redacted_thinking", "data": data} == body["messages"][1]["content"][0]
    check_history(body["messages"], body["thinking"], "")


# --- Gemini 3 upstream: each step's first function call needs its thoughtSignature back -------------


@pytest.mark.parametrize("stream", STREAM, ids=STREAM_IDS)
def test_gemini_signatures_leave_in_an_anthropic_thinking_signature_and_come_back(stream: bool) -> None:
    """Gemini's call signature reaches an Anthropic client sealed in a thinking block's signature and is
    put back on the function call when the client sends the turn back (Claude Code echoes its blocks)."""
    answer = translate(ANT, GEM, stream, model=GEMINI_3)
    body = upstream_body(ANT, GEM, next_turn(ANT, answer, stream), model=GEMINI_3)
    model_turn = body["contents"][1]
    call = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert signature(THOUGHT) == call["thoughtSignature"]
    assert all(not carry.unseal(p.get("thoughtSignature")) for p in model_turn["parts"]), "no seal reaches Gemini"
    check_signatures(body["contents"])


@pytest.mark.parametrize("stream", STREAM, ids=STREAM_IDS)
def test_gemini_call_through_an_openai_client_gets_the_documented_bypass(stream: bool) -> None:
    """OpenAI Chat cannot carry the signature: the replayed call gets skip_thought_signature_validator."""
    answer = translate(OAI, GEM, stream, model=GEMINI_3)
    body = upstream_body(OAI, GEM, next_turn(OAI, answer, stream), model=GEMINI_3)
    assert SKIP_SIGNATURE == body["contents"][1]["parts"][0]["thoughtSignature"]
    check_signatures(body["contents"])


def test_the_fake_gemini_3_refuses_what_gemini_3_refuses() -> None:
    """The rules the gateway is tested against: a call without a signature in the current turn, a seal."""
    contents: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
    with pytest.raises(BadRequest, match=r"^Function call is missing a thought_signature in functionCall parts\..*"
                                         r"function call `default_api:f` , position 2\."):
        check_signatures(contents)
    contents[1]["parts"][0]["thoughtSignature"] = carry.seal({"a": []})
    with pytest.raises(BadRequest, match=r"^Corrupted thought signature\.$"):
        check_signatures(contents)


# --- upstreams without a signature: nothing to carry ------------------------------------------------


@pytest.mark.parametrize("client", [ANT, GEM])
@pytest.mark.parametrize("stream", STREAM, ids=STREAM_IDS)
def test_openai_reasoning_is_shown_and_never_replayed(client: Protocol, stream: bool) -> None:
    """OpenAI's reasoning_content reaches Anthropic and Gemini clients as unsigned reasoning, and is not
    sent back to OpenAI."""
    answer = translate(client, OAI, stream)
    body = upstream_body(client, OAI, next_turn(client, answer, stream, "google-genai"))
    assistant = body["messages"][1]
    assert "assistant" == assistant["role"] and "reasoning_content" not in assistant
    assert ["get_weather"] == [c["function"]["name"] for c in assistant["tool_calls"]]


# --- the seal --------------------------------------------------------------------------------------


def test_a_seal_is_base64_and_reads_back_from_either_alphabet() -> None:
    """Valid base64 (Gemini's thoughtSignature is bytes), read back standard or URL-safe, unpadded too;
    a provider's own signature is not a seal."""
    doc = {"a": [["x" * 50 + "?>", "sig"]], "c": {"0": "g"}}
    token = carry.seal(doc)
    base64.b64decode(token, validate=True)
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(token)).decode().rstrip("=")
    assert doc == carry.unseal(token) == carry.unseal(urlsafe)
    assert carry.unseal(signature("x")) is None
    assert carry.unseal("EqQBCkgIARABGAIiQL") is None
