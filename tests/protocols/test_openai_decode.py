"""OpenAI Chat Completions requests translated for Anthropic and Gemini upstreams."""

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
        OAI, upstream, {"model": "gpt", **body}, upstream_model="up", stream=stream
    )


TOOL_HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get", "arguments": '{"c":"Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get", "arguments": '{"c":"Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": '{"temp": 21}'},
    {"role": "user", "content": "Thanks"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get",
            "parameters": {
                "type": "object",
                "properties": {"c": {"type": "string"}},
                "required": ["c"],
                "additionalProperties": False,
            },
        },
    }
]


def test_tool_history_to_anthropic() -> None:
    """System+developer are hoisted in order; calls and results pair in adjacent turns."""
    body = tr(ANT, {"messages": TOOL_HISTORY, "tools": TOOLS})
    expected = {
        "model": "up",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get", "input": {"c": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get", "input": {"c": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "18C"}],
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": '{"temp": 21}'}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [{"name": "get", "input_schema": TOOLS[0]["function"]["parameters"]}],
        "max_tokens": 8192,
    }
    assert expected == body


def test_tool_history_to_gemini() -> None:
    """Results become one user turn of functionResponses named after their calls."""
    body = tr(GEM, {"messages": TOOL_HISTORY, "tools": TOOLS})
    expected = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get", "args": {"c": "Paris"}},
                        "thoughtSignature": "skip_thought_signature_validator",
                    },
                    {"functionCall": {"name": "get", "args": {"c": "Rome"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get", "response": {"output": "18C"}}},
                    {"functionResponse": {"name": "get", "response": {"temp": 21}}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"c": {"type": "STRING"}},
                            "required": ["c"],
                        },
                    }
                ]
            }
        ],
    }
    assert expected == body


CHOICES = [
    ("auto", "auto", {"type": "auto"}, {"mode": "AUTO"}),
    ("none", "none", {"type": "none"}, {"mode": "NONE"}),
    ("required", "required", {"type": "any"}, {"mode": "ANY"}),
    (
        "named",
        {"type": "function", "function": {"name": "get"}},
        {"type": "tool", "name": "get"},
        {"mode": "ANY", "allowedFunctionNames": ["get"]},
    ),
    (
        "allowed-auto",
        {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "auto",
                "tools": [{"type": "function", "function": {"name": "get"}}],
            },
        },
        {"type": "auto"},
        {"mode": "VALIDATED", "allowedFunctionNames": ["get"]},
    ),
]


@pytest.mark.parametrize(
    ("choice", "ant", "gem"), [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES]
)
def test_tool_choice_maps_per_table(choice: Any, ant: Any, gem: Any) -> None:
    """tool_choice follows reference §1.4 for both upstreams."""
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    assert ant == tr(ANT, body)["tool_choice"]
    assert {"functionCallingConfig": gem} == tr(GEM, body)["toolConfig"]


def test_parallel_tool_calls_false_disables_parallel_use_on_anthropic() -> None:
    """parallel_tool_calls=false becomes disable_parallel_tool_use on an auto choice."""
    body = tr(
        ANT,
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": TOOLS,
            "parallel_tool_calls": False,
        },
    )
    assert {"type": "auto", "disable_parallel_tool_use": True} == body["tool_choice"]


IMAGES = [
    (
        "png-data-url",
        f"data:image/png;base64,{PNG}",
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ),
    (
        "https-url",
        "https://x.test/cat.jpg",
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
        None,
    ),
    (
        "gs-uri",
        "gs://bucket/cat.png",
        {"type": "image", "source": {"type": "url", "url": "gs://bucket/cat.png"}},
        {"fileData": {"fileUri": "gs://bucket/cat.png", "mimeType": "image/png"}},
    ),
]


@pytest.mark.parametrize(("url", "ant", "gem"), [c[1:] for c in IMAGES], ids=[c[0] for c in IMAGES])
def test_images_map_or_are_refused(url: str, ant: Any, gem: Any) -> None:
    """Images go as base64 or URL; a URL Gemini cannot fetch is a clear 400."""
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    assert [ant] == tr(ANT, {"messages": msgs})["messages"][0]["content"]
    if gem is None:
        with pytest.raises(BadRequest, match="inline as base64"):
            tr(GEM, {"messages": msgs})
    else:
        assert [gem] == tr(GEM, {"messages": msgs})["contents"][0]["parts"]


def test_reasoning_effort_to_anthropic_thinking_strips_sampling() -> None:
    """reasoning_effort high -> 4096-token budget; temperature and top_p are dropped."""
    body = tr(
        ANT,
        {
            "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "high",
            "temperature": 0.2,
            "top_p": 0.5,
            "max_completion_tokens": 2000,
        },
    )
    assert {"type": "enabled", "budget_tokens": 4096} == body["thinking"]
    assert (5120, None, None) == (body["max_tokens"], body.get("temperature"), body.get("top_p"))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-flash", {"thinkingBudget": 2048, "includeThoughts": True}),
        ("gemini-3-pro", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
    ],
    ids=["budget", "level"],
)
def test_reasoning_effort_to_gemini_thinking_config(model: str, expected: Any) -> None:
    """Gemini 2.5 gets a budget, Gemini 3 a thinking level."""
    body = translate_request(
        OAI,
        GEM,
        {
            "model": "g",
            "reasoning_effort": "medium",
            "messages": [{"role": "user", "content": "x"}],
        },
        upstream_model=model,
        stream=False,
    )
    assert expected == body["generationConfig"]["thinkingConfig"]


def test_sampling_and_limits() -> None:
    """Temperature clamps to 1 for Anthropic; max_completion_tokens wins; stops map."""
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 1.5,
        "top_p": 0.9,
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "stop": ["END", " "],
        "seed": 7,
    }
    ant = tr(ANT, req)
    assert (1.0, None, 20, ["END"]) == (
        ant["temperature"],
        ant.get("top_p"),
        ant["max_tokens"],
        ant["stop_sequences"],
    )
    assert {
        "maxOutputTokens": 20,
        "temperature": 1.5,
        "topP": 0.9,
        "seed": 7,
        "stopSequences": ["END", " "],
    } == tr(GEM, req)["generationConfig"]


def test_json_schema_output() -> None:
    """json_schema -> Anthropic output_config, Gemini responseMimeType + cleaned schema."""
    schema = {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
        "additionalProperties": False,
    }
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": schema, "strict": True},
        },
    }
    assert {"format": {"type": "json_schema", "schema": schema}} == tr(ANT, req)["output_config"]
    assert {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"a": {"type": "INTEGER", "nullable": True}},
        },
    } == tr(GEM, req)["generationConfig"]


def test_trailing_assistant_is_kept_as_prefill() -> None:
    """A trailing assistant message is forwarded (Anthropic continues it: documented)."""
    msgs = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi"}]
    assert {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]} == tr(
        ANT, {"messages": msgs}
    )["messages"][-1]


def test_consecutive_user_turns_merge_and_empty_text_is_dropped() -> None:
    """Two user turns become one; empty strings never make empty blocks."""
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
    ]
    assert [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ] == tr(ANT, {"messages": msgs})["messages"]


REFUSED = [
    ("n>1", {"n": 2}, "n > 1"),
    (
        "bad-arguments",
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{oops"},
                        }
                    ],
                }
            ]
        },
        "JSON object",
    ),
    (
        "file-id",
        {
            "messages": [
                {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}
            ]
        },
        "inline file_data",
    ),
    ("function-role", {"messages": [{"role": "function", "name": "f", "content": "x"}]}, "role"),
]


@pytest.mark.parametrize(("extra", "match"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_unconvertible_requests_are_400(extra: dict[str, Any], match: str) -> None:
    """What cannot be converted is refused with a BadRequest naming the problem."""
    body = {"messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(BadRequest, match=match):
        tr(ANT, body)


def test_audio_is_refused_for_anthropic_and_inline_for_gemini() -> None:
    """input_audio has no Anthropic form (400) and becomes inlineData for Gemini."""
    msgs = [
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}],
        }
    ]
    with pytest.raises(BadRequest, match="audio/wav"):
        tr(ANT, {"messages": msgs})
    assert [{"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}] == tr(
        GEM, {"messages": msgs}
    )["contents"][0]["parts"]


def test_pdf_file_part_becomes_document_and_inline_data() -> None:
    """An inline PDF file part becomes an Anthropic document and Gemini inlineData."""
    msgs = [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                }
            ],
        }
    ]
    assert [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        }
    ] == tr(ANT, {"messages": msgs})["messages"][0]["content"]
    assert [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}] == tr(
        GEM, {"messages": msgs}
    )["contents"][0]["parts"]
