"""Anthropic Messages requests translated for OpenAI and Gemini upstreams."""

from __future__ import annotations

from typing import Any

import pytest

from core.protocols import Protocol
from translator.errors import BadRequest
from translator.protocols.convert import translate_request

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI
PNG = "iVBORw0KGgo="


def tr(upstream: Protocol, body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return translate_request(
        ANT,
        upstream,
        {"model": "claude", "max_tokens": 100, **body},
        upstream_model="up",
        stream=stream,
    )


HISTORY = [
    {"role": "user", "content": "Look"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Calling"},
            {"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {"q": 1}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "is_error": True,
                "content": [
                    {"type": "text", "text": "camera offline"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {"type": "text", "text": "Try again"},
        ],
    },
]


def test_history_to_openai() -> None:
    """tool_result -> tool message first (error as JSON), its image and text follow as user."""
    body = tr(OAI, {"system": "Sys", "messages": HISTORY}, stream=True)
    expected = {
        "model": "up",
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": "Look"},
            {
                "role": "assistant",
                "content": "Calling",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "shot", "arguments": '{"q":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": '{"error":"camera offline"}'},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "text", "text": "Try again"},
                ],
            },
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 100,
    }
    assert expected == body


def test_history_to_gemini() -> None:
    """is_error -> response.error; the result's image sits beside the functionResponse."""
    body = tr(GEM, {"system": [{"type": "text", "text": "Sys"}], "messages": HISTORY})
    expected = [
        {"role": "user", "parts": [{"text": "Look"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Calling"},
                {
                    "functionCall": {"name": "shot", "args": {"q": 1}},
                    "thoughtSignature": "skip_thought_signature_validator",
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "shot", "response": {"error": "camera offline"}}},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"text": "Try again"},
            ],
        },
    ]
    assert expected == body["contents"]
    assert {"parts": [{"text": "Sys"}]} == body["systemInstruction"]


def test_thinking_round_trips_to_anthropic_byte_exact() -> None:
    """Signed thinking blocks are replayed unchanged to an Anthropic upstream."""
    assert HISTORY[1] == tr(ANT, {"messages": HISTORY})["messages"][1]


@pytest.mark.parametrize(
    ("thinking", "oai", "gem"),
    [
        (
            {"type": "enabled", "budget_tokens": 2048},
            "medium",
            {"thinkingBudget": 2048, "includeThoughts": True},
        ),
        (
            {"type": "enabled", "budget_tokens": 10000},
            "xhigh",
            {"thinkingBudget": 10000, "includeThoughts": True},
        ),
        ({"type": "disabled"}, None, None),
    ],
    ids=["medium", "xhigh", "disabled"],
)
def test_thinking_maps_to_effort_and_budget(thinking: Any, oai: Any, gem: Any) -> None:
    """Anthropic thinking -> OpenAI reasoning_effort thresholds and Gemini thinkingBudget."""
    req = {"messages": [{"role": "user", "content": "x"}], "thinking": thinking}
    assert oai == tr(OAI, req).get("reasoning_effort")
    assert gem == tr(GEM, req).get("generationConfig", {}).get("thinkingConfig")


def test_sampling_parameters() -> None:
    """top_k is dropped for OpenAI and kept for Gemini; stop sequences map."""
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "top_k": 5,
        "temperature": 0.3,
        "stop_sequences": ["a", "b", "c", "d", "e"],
        "metadata": {"user_id": "u1"},
    }
    oai = tr(OAI, req)
    assert (None, 0.3, ["a", "b", "c", "d"], "u1") == (
        oai.get("top_k"),
        oai["temperature"],
        oai["stop"],
        oai["user"],
    )
    assert {
        "maxOutputTokens": 100,
        "temperature": 0.3,
        "topK": 5,
        "stopSequences": ["a", "b", "c", "d", "e"],
    } == tr(GEM, req)["generationConfig"]


@pytest.mark.parametrize(
    ("choice", "oai", "gem"),
    [
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", {"mode": "AUTO"}),
        ({"type": "any"}, "required", {"mode": "ANY"}),
        (
            {"type": "tool", "name": "shot"},
            {"type": "function", "function": {"name": "shot"}},
            {"mode": "ANY", "allowedFunctionNames": ["shot"]},
        ),
        ({"type": "none"}, "none", {"mode": "NONE"}),
    ],
    ids=["auto-serial", "any", "tool", "none"],
)
def test_tool_choice(choice: Any, oai: Any, gem: Any) -> None:
    """Anthropic tool_choice -> OpenAI tool_choice and Gemini functionCallingConfig."""
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": choice,
        "tools": [{"name": "shot", "input_schema": {"type": "object"}}],
    }
    body = tr(OAI, req)
    assert oai == body["tool_choice"]
    assert (False if choice.get("disable_parallel_tool_use") else None) == body.get(
        "parallel_tool_calls"
    )
    assert {"functionCallingConfig": gem} == tr(GEM, req)["toolConfig"]


def test_long_tool_name_is_shortened_for_openai_consistently() -> None:
    """A 70-character name becomes one valid 64-char name in tools, history and choice."""
    name = "n" * 70
    req = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": name, "input": {}}],
            },
        ],
        "tools": [{"name": name, "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": name},
    }
    body = tr(OAI, req)
    short = body["tools"][0]["function"]["name"]
    assert len(short) <= 64
    assert [short, short] == [
        body["messages"][1]["tool_calls"][0]["function"]["name"],
        body["tool_choice"]["function"]["name"],
    ]


def test_server_tools_are_refused() -> None:
    """Anthropic server tools have no peer equivalent: 400."""
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    with pytest.raises(BadRequest, match="server tool"):
        tr(OAI, req)


def test_structured_output_to_openai_and_gemini() -> None:
    """output_config.format -> OpenAI json_schema and Gemini responseSchema."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    assert {
        "type": "json_schema",
        "json_schema": {"name": "structured_output", "schema": schema},
    } == tr(OAI, req)["response_format"]
    assert "application/json" == tr(GEM, req)["generationConfig"]["responseMimeType"]
