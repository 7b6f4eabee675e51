"""Non-stream responses between every pair, judged by the SDK response types, and every
stop reason of every protocol mapped per reference §2.2."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google.genai import types as gtypes

from core.protocols import Protocol
from core.usage import Usage
from translator.protocols.anthropic import usage as anthropic_usage
from translator.protocols.convert import response_translator
from translator.protocols.gemini import usage as gemini_usage
from translator.protocols.openai import usage as openai_usage

OAI, ANT, GEM, RESP = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI, Protocol.OPENAI_RESPONSES
BED = Protocol.BEDROCK_CONVERSE

UPSTREAM: dict[Protocol, dict[str, Any]] = {
    OAI: {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking ✓",
                    "reasoning_content": "think",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get", "arguments": '{"c":"Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 12,
            "total_tokens": 42,
            "prompt_tokens_details": {"cached_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    },
    ANT: {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "think", "signature": "s"},
            {"type": "text", "text": "Checking "},
            {"type": "text", "text": "✓"},
            {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"c": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "cache_read_input_tokens": 10,
            "output_tokens": 12,
            "output_tokens_details": {"thinking_tokens": 2},
        },
    },
    GEM: {
        "responseId": "r1",
        "modelVersion": "gemini",
        "candidates": [
            {
                "index": 0,
                "finishReason": "STOP",
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "think", "thought": True},
                        {"text": "Checking ✓"},
                        {"functionCall": {"name": "get", "args": {"c": "Oslo"}}},
                    ],
                },
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 30,
            "cachedContentTokenCount": 10,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 2,
            "totalTokenCount": 42,
        },
    },
    RESP: {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking ✓", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get",
             "arguments": '{"c":"Oslo"}', "status": "completed"},
        ],
        "usage": {
            "input_tokens": 30,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 12,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 42,
        },
    },
    BED: {  # ConverseResponse: no id, no reasoning count apart from the output
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
            {"text": "Checking "},
            {"text": "✓"},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get", "input": {"c": "Oslo"}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 20, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 10},
        "metrics": {"latencyMs": 100},
    },
}
USAGE = Usage(input=20, cache_read=10, output=10, reasoning=2)
USAGE_OF = {BED: Usage(input=20, cache_read=10, output=12)}  # Converse counts reasoning in the output


def translate(client: Protocol, upstream: Protocol, body: dict[str, Any]) -> tuple[Any, Any]:
    t = response_translator(
        client,
        upstream,
        stream=False,
        client_model="client-model",
        include_usage=False,
        created=1700000000,
    )
    raw = json.dumps(body).encode()
    assert b"" == t.feed(raw[:7]) + t.feed(raw[7:])
    out = json.loads(t.flush())
    assert b"" == t.flush()
    return out, t


@pytest.mark.parametrize("upstream", list(Protocol), ids=lambda p: f"from-{p.value}")
def test_openai_client_response(upstream: Protocol) -> None:
    """A ChatCompletion with text, reasoning kept apart, one tool call and usage."""
    out, t = translate(OAI, upstream, UPSTREAM[upstream])
    c = openai.types.chat.ChatCompletion.model_validate(out)
    msg = c.choices[0].message
    assert ("Checking ✓", "tool_calls", "client-model") == (
        msg.content,
        c.choices[0].finish_reason,
        c.model,
    )
    assert [("get", {"c": "Oslo"})] == [
        (tc.function.name, json.loads(tc.function.arguments))
        for tc in msg.tool_calls or []
        if tc.type == "function"
    ]
    assert "think" == out["choices"][0]["message"]["reasoning_content"]
    usage = USAGE_OF.get(upstream, USAGE)
    assert (usage, openai_usage.write(usage)) == (
        t.usage,
        c.usage.model_dump(exclude_none=True) if c.usage else None,
    )


@pytest.mark.parametrize("upstream", list(Protocol), ids=lambda p: f"from-{p.value}")
def test_anthropic_client_response(upstream: Protocol) -> None:
    """A Message with thinking, text, tool_use in order, tool_use stop and usage."""
    out, t = translate(ANT, upstream, UPSTREAM[upstream])
    m = anthropic.types.Message.model_validate(out)
    kinds = [b.type for b in m.content]
    assert ["thinking", "text", "tool_use"] == [
        k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k
    ]
    assert "Checking ✓" == "".join(b.text for b in m.content if b.type == "text")
    assert [("get", {"c": "Oslo"})] == [
        (b.name, b.input) for b in m.content if b.type == "tool_use"
    ]
    assert ("tool_use", anthropic_usage.write(USAGE_OF.get(upstream, USAGE))) == (
        m.stop_reason,
        m.usage.model_dump(exclude_none=True),
    )
    assert m.id.startswith("msg_")


@pytest.mark.parametrize("upstream", list(Protocol), ids=lambda p: f"from-{p.value}")
def test_gemini_client_response(upstream: Protocol) -> None:
    """A GenerateContentResponse with thought, text, a functionCall with an id, STOP."""
    out, t = translate(GEM, upstream, UPSTREAM[upstream])
    r = gtypes.GenerateContentResponse._from_response(response=out, kwargs={})
    assert "Checking ✓" == r.text
    calls = r.function_calls or []
    assert [("get", {"c": "Oslo"})] == [(fc.name, fc.args) for fc in calls]
    assert all(fc.id for fc in calls)
    cand = (r.candidates or [])[0]
    assert gtypes.FinishReason.STOP == cand.finish_reason
    assert gemini_usage.write(USAGE_OF.get(upstream, USAGE)) == out["usageMetadata"]


STOPS: dict[Protocol, list[tuple[str, str, str, str]]] = {
    # native -> (OpenAI, Anthropic, Gemini)
    ANT: [
        ("end_turn", "stop", "end_turn", "STOP"),
        ("stop_sequence", "stop", "stop_sequence", "STOP"),
        ("pause_turn", "stop", "pause_turn", "STOP"),
        ("max_tokens", "length", "max_tokens", "MAX_TOKENS"),
        ("model_context_window_exceeded", "length", "model_context_window_exceeded", "MAX_TOKENS"),
        ("tool_use", "tool_calls", "tool_use", "STOP"),
        ("refusal", "content_filter", "refusal", "SAFETY"),
    ],
    OAI: [
        ("stop", "stop", "end_turn", "STOP"),
        ("length", "length", "max_tokens", "MAX_TOKENS"),
        ("tool_calls", "tool_calls", "tool_use", "STOP"),
        ("function_call", "function_call", "tool_use", "STOP"),
        ("content_filter", "content_filter", "refusal", "SAFETY"),
    ],
    GEM: [
        ("STOP", "stop", "end_turn", "STOP"),
        ("FINISH_REASON_UNSPECIFIED", "stop", "end_turn", "FINISH_REASON_UNSPECIFIED"),
        ("MAX_TOKENS", "length", "max_tokens", "MAX_TOKENS"),
        *[
            (v, "content_filter", "refusal", v)
            for v in (
                "SAFETY",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "IMAGE_SAFETY",
                "IMAGE_PROHIBITED_CONTENT",
                "RECITATION",
                "IMAGE_RECITATION",
            )
        ],
        *[(v, "content_filter", "end_turn", v) for v in ("LANGUAGE", "OTHER", "IMAGE_OTHER")],
        *[
            (v, "stop", "end_turn", v)
            for v in (
                "MALFORMED_FUNCTION_CALL",
                "UNEXPECTED_TOOL_CALL",
                "TOO_MANY_TOOL_CALLS",
                "NO_IMAGE",
            )
        ],
    ],
    BED: [
        ("end_turn", "stop", "end_turn", "STOP"),
        ("stop_sequence", "stop", "stop_sequence", "STOP"),
        ("max_tokens", "length", "max_tokens", "MAX_TOKENS"),
        ("model_context_window_exceeded", "length", "model_context_window_exceeded", "MAX_TOKENS"),
        ("tool_use", "tool_calls", "tool_use", "STOP"),
        ("guardrail_intervened", "content_filter", "refusal", "SAFETY"),
        ("content_filtered", "content_filter", "refusal", "SAFETY"),
        ("malformed_model_output", "content_filter", "end_turn", "OTHER"),
        ("malformed_tool_use", "stop", "end_turn", "MALFORMED_FUNCTION_CALL"),
    ],
    RESP: [
        ("completed", "stop", "end_turn", "STOP"),
        ("max_output_tokens", "length", "max_tokens", "MAX_TOKENS"),
        ("content_filter", "content_filter", "refusal", "SAFETY"),
    ],
}
STOP_CASES = [(up, row) for up, rows in STOPS.items() for row in rows]


def _with_stop(upstream: Protocol, native: str, tool: bool = False) -> dict[str, Any]:
    if upstream is OAI:
        msg: dict[str, Any] = {"role": "assistant", "content": "x"}
        if tool:
            msg["tool_calls"] = [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
        return {"id": "1", "choices": [{"index": 0, "message": msg, "finish_reason": native}]}
    if upstream is RESP:  # native: the status, or the reason an incomplete answer gives
        output: list[Any] = [{"type": "message", "content": [{"type": "output_text", "text": "x"}]}]
        if tool:
            output.append({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"})
        if native == "completed":
            return {"id": "1", "status": "completed", "output": output}
        return {"id": "1", "status": "incomplete", "incomplete_details": {"reason": native}, "output": output}
    if upstream is BED:
        blocks: list[Any] = [{"text": "x"}] + ([{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}] if tool else [])
        return {"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": native}
    if upstream is ANT:
        content: list[Any] = [{"type": "text", "text": "x"}]
        if tool:
            content.append({"type": "tool_use", "id": "t", "name": "f", "input": {}})
        return {"id": "1", "content": content, "stop_reason": native}
    parts: list[Any] = [{"text": "x"}] + (
        [{"functionCall": {"name": "f", "args": {}}}] if tool else []
    )
    return {"candidates": [{"content": {"parts": parts}, "finishReason": native}]}


def _finish(client: Protocol, out: dict[str, Any]) -> str:
    if client is OAI:
        return str(out["choices"][0]["finish_reason"])
    if client is ANT:
        return str(out["stop_reason"])
    return str(out["candidates"][0]["finishReason"])


@pytest.mark.parametrize(
    ("upstream", "row"), STOP_CASES, ids=[f"{up.value}-{row[0]}" for up, row in STOP_CASES]
)
def test_every_stop_reason_maps_per_table(upstream: Protocol, row: tuple[str, ...]) -> None:
    """Each native stop reason maps to the table's value (and to itself, same protocol)."""
    native, *want = row
    for client, expected in zip((OAI, ANT, GEM), want, strict=True):
        expected = native if client is upstream else expected
        assert expected == _finish(
            client, translate(client, upstream, _with_stop(upstream, native))[0]
        )


@pytest.mark.parametrize(
    ("upstream", "native", "oai", "ant"),
    [
        (GEM, "STOP", "tool_calls", "tool_use"),
        (OAI, "stop", "tool_calls", "tool_use"),
        (GEM, "MAX_TOKENS", "length", "max_tokens"),
        (ANT, "max_tokens", "length", "max_tokens"),
    ],
    ids=["gemini-stop", "openai-stop", "gemini-length", "anthropic-length"],
)
def test_tool_calls_force_tool_stop_but_length_wins(
    upstream: Protocol, native: str, oai: str, ant: str
) -> None:
    """A response with tool calls stops with the tool reason, unless it hit the length limit."""
    body = _with_stop(upstream, native, tool=True)
    assert [oai, ant] == [_finish(c, translate(c, upstream, body)[0]) for c in (OAI, ANT)]


def test_blocked_prompt_is_a_content_filter_stop() -> None:
    """Gemini promptFeedback.blockReason without candidates -> content_filter, no content."""
    out, _ = translate(OAI, GEM, {"promptFeedback": {"blockReason": "SAFETY"}})
    assert ("content_filter", None) == (
        out["choices"][0]["finish_reason"],
        out["choices"][0]["message"]["content"],
    )


def test_openai_refusal_becomes_anthropic_refusal() -> None:
    """message.refusal -> text block with stop_reason refusal."""
    body = {
        "id": "1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't"},
            }
        ],
    }
    out, _ = translate(ANT, OAI, body)
    assert ([{"type": "text", "text": "I can't"}], "refusal") == (
        out["content"],
        out["stop_reason"],
    )


def test_invalid_upstream_body_raises_upstream_error() -> None:
    """A non-JSON 200 body is an UpstreamError (502), not a made-up response."""
    from translator.errors import UpstreamError

    t = response_translator(OAI, ANT, stream=False, client_model="m", include_usage=False)
    t.feed(b"<html>")
    with pytest.raises(UpstreamError):
        t.flush()
