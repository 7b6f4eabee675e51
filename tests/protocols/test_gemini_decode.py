"""Gemini generateContent requests translated for OpenAI and Anthropic upstreams."""

from __future__ import annotations

from typing import Any

import pytest

from core.protocols import Protocol
from translator.errors import BadRequest
from translator.protocols.convert import translate_request
from translator.protocols.gemini import schema

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI


def tr(upstream: Protocol, body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return translate_request(GEM, upstream, body, upstream_model="up", stream=stream)


CALLS = {
    "contents": [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get", "args": {"c": "A"}}, "thoughtSignature": "sig=="},
                {"functionCall": {"name": "get", "args": {"c": "B"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get", "response": {"error": "no data"}}},
            ],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"c": {"type": "STRING", "nullable": True}},
                    },
                }
            ]
        }
    ],
}


def test_same_function_twice_pairs_results_in_order_for_openai() -> None:
    """Synthesized ids are stable, distinct, valid, and pair results in call order."""
    body = tr(OAI, CALLS)
    calls = body["messages"][1]["tool_calls"]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 2 and all(len(i) <= 40 for i in ids)
    assert ids == [m["tool_call_id"] for m in body["messages"][2:4]]
    assert ["sunny", '{"error":"no data"}'] == [m["content"] for m in body["messages"][2:4]]
    assert ids == [c["id"] for c in tr(OAI, CALLS)["messages"][1]["tool_calls"]]
    assert {"type": "object", "properties": {"c": {"type": ["string", "null"]}}} == body["tools"][
        0
    ]["function"]["parameters"]


def test_function_response_error_becomes_is_error_for_anthropic() -> None:
    """response.error -> tool_result is_error; ids match the tool_use blocks."""
    msgs = tr(ANT, CALLS)["messages"]
    uses = [b["id"] for b in msgs[1]["content"]]
    results = msgs[2]["content"]
    assert uses == [r["tool_use_id"] for r in results]
    assert [None, True] == [r.get("is_error") for r in results]


def test_unpaired_function_response_is_400() -> None:
    """A functionResponse without a preceding call cannot be paired: 400."""
    body = {
        "contents": [
            {"role": "user", "parts": [{"functionResponse": {"name": "x", "response": {}}}]}
        ]
    }
    with pytest.raises(BadRequest, match="no matching functionCall"):
        tr(OAI, body)


def test_snake_case_and_generation_config() -> None:
    """snake_case input is accepted; generationConfig maps to OpenAI fields."""
    body = tr(
        OAI,
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "system_instruction": {"parts": [{"text": "S"}]},
            "generation_config": {
                "max_output_tokens": 50,
                "temperature": 0.1,
                "top_k": 3,
                "stop_sequences": ["x"],
                "response_mime_type": "application/json",
                "thinking_config": {"thinking_budget": 0},
            },
        },
    )
    assert {
        "model": "up",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}],
        "max_completion_tokens": 50,
        "temperature": 0.1,
        "stop": ["x"],
        "response_format": {"type": "json_object"},
        "reasoning_effort": "none",
    } == body


@pytest.mark.parametrize(
    ("config", "oai", "ant"),
    [
        (
            {"mode": "ANY", "allowedFunctionNames": ["get"]},
            {"type": "function", "function": {"name": "get"}},
            {"type": "tool", "name": "get"},
        ),
        ({"mode": "ANY"}, "required", {"type": "any"}),
        ({"mode": "NONE"}, "none", {"type": "none"}),
        ({"mode": "AUTO"}, "auto", {"type": "auto"}),
    ],
    ids=["any-one", "any", "none", "auto"],
)
def test_function_calling_config(config: Any, oai: Any, ant: Any) -> None:
    """functionCallingConfig -> OpenAI and Anthropic tool_choice."""
    body = {**CALLS, "toolConfig": {"functionCallingConfig": config}}
    assert oai == tr(OAI, body)["tool_choice"]
    assert ant == tr(ANT, body)["tool_choice"]


def test_thinking_budget_to_anthropic_raises_max_tokens() -> None:
    """A thinking budget becomes Anthropic thinking; max_tokens stays above it."""
    body = tr(
        ANT,
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {
                "maxOutputTokens": 500,
                "thinkingConfig": {"thinkingBudget": 3000},
            },
        },
    )
    assert ({"type": "enabled", "budget_tokens": 3000}, 4024) == (
        body["thinking"],
        body["max_tokens"],
    )


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"generationConfig": {"candidateCount": 2}}, "candidateCount"),
        ({"cachedContent": "cachedContents/1"}, "cachedContent"),
        ({"tools": [{"googleSearch": {}}]}, "functionDeclarations"),
    ],
    ids=["candidates", "cached-content", "google-search"],
)
def test_unconvertible_requests_are_400(extra: dict[str, Any], match: str) -> None:
    """Gemini-only features are refused with a clear 400."""
    with pytest.raises(BadRequest, match=match):
        tr(ANT, {"contents": [{"role": "user", "parts": [{"text": "x"}]}], **extra})


def test_thought_signatures_round_trip_gemini_to_gemini() -> None:
    """Gemini's own signatures are replayed on the same parts."""
    assert CALLS["contents"] == tr(GEM, CALLS)["contents"][:2] + [
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get", "response": {"error": "no data"}}},
            ],
        }
    ]


SCHEMAS = [
    (
        "additional-and-schema",
        {
            "$schema": "x",
            "type": "object",
            "additionalProperties": False,
            "properties": {"a": {"type": "string", "title": "A"}},
        },
        {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
    ),
    (
        "ref",
        {
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/P"}},
            "$defs": {"P": {"type": "integer"}},
        },
        {"type": "OBJECT", "properties": {"p": {"type": "INTEGER"}}},
    ),
    (
        "anyof-null",
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
        {"type": "STRING", "nullable": True},
    ),
    ("const", {"const": "x"}, {"type": "STRING", "enum": ["x"]}),
    ("enum-empty", {"type": "string", "enum": ["", "a"]}, {"type": "STRING", "enum": ["a"]}),
    (
        "type-array",
        {"type": ["string", "integer"]},
        {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
    ),
    ("empty-props", {"type": "object", "properties": {}}, {"type": "OBJECT"}),
    ("format", {"type": "string", "format": "uri"}, {"type": "STRING"}),
    (
        "required-filtered",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]},
        {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
    ),
]


@pytest.mark.parametrize(
    ("source", "cleaned"), [s[1:] for s in SCHEMAS], ids=[s[0] for s in SCHEMAS]
)
def test_schema_is_cleaned_for_gemini(source: Any, cleaned: Any) -> None:
    """JSON Schema keywords Gemini rejects are rewritten or dropped (reference P3)."""
    assert cleaned == schema.to_gemini(source)


def test_recursive_schema_is_400() -> None:
    """A recursive $ref cannot be inlined: 400."""
    with pytest.raises(BadRequest, match="recursive"):
        schema.to_gemini(
            {"$ref": "#/$defs/N", "$defs": {"N": {"properties": {"next": {"$ref": "#/$defs/N"}}}}}
        )


@pytest.mark.parametrize(
    "data",
    ["iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk-M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
     "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk-M9QDwADhgGAWjR9awAAAABJRU5ErkJggg",
     "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="],
    ids=["url-safe", "url-safe-unpadded", "standard"],
)
def test_inline_data_goes_to_openai_and_anthropic_as_standard_base64(data: str) -> None:
    """google-genai sends bytes URL-safe; OpenAI and Anthropic get standard padded base64."""
    std = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    body = {"contents": [{"role": "user", "parts": [
        {"text": "what?"}, {"inline_data": {"mime_type": "image/png", "data": data}}]}]}
    oai = tr(OAI, body)["messages"][0]["content"][1]
    ant = tr(ANT, body)["messages"][0]["content"][1]
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{std}"}} == oai
    assert {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": std}} == ant
