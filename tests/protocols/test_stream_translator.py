"""Stream translator behaviour beyond the golden transcripts."""

from __future__ import annotations

import json
from typing import Any

from core.protocols import Protocol
from translator.protocols.convert import client_tool_names, response_translator, translate_request

from . import sdk

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI


def oai_sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "g"}
    out = b"".join(b"data: " + json.dumps({**base, **c}).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def tool(i: int, args: str, name: str | None = None) -> dict[str, Any]:
    frag: dict[str, Any] = {"index": i, "function": {"arguments": args}}
    if name:
        frag.update(id=f"call_{i}", type="function")
        frag["function"]["name"] = name
    return delta({"tool_calls": [frag]})


USAGE = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def test_usage_chunk_only_when_the_openai_client_asked() -> None:
    """include_usage=False drops the usage chunk but usage is still metered."""
    body = oai_sse(delta({"content": "hi"}), delta({}, "stop"), USAGE)
    out, t = sdk.translate_stream(OAI, OAI, [body], include_usage=False)
    chunks = sdk.openai_chunks(out)
    assert [None] * len(chunks) == [c.usage for c in chunks]
    assert (5, 3, "end") == (t.usage.input, t.usage.output, t.finish)


def test_flush_is_idempotent_and_feed_after_close_is_silent() -> None:
    """A second flush and a late feed emit nothing."""
    t = response_translator(ANT, OAI, stream=True, client_model="m", include_usage=True)
    t.feed(oai_sse(delta({"content": "a"}), delta({}, "stop"), done=False))
    assert t.flush().endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert (b"", b"") == (t.flush(), t.feed(b"data: {}\n\n"))


def test_tool_that_starts_before_the_previous_has_arguments_is_buffered_for_anthropic() -> None:
    """Ids/names first, arguments later (interleaved): both calls arrive whole and in order."""
    body = oai_sse(
        tool(0, "", "a"),
        tool(1, "", "b"),
        tool(0, '{"x":1}'),
        tool(1, '{"y":2}'),
        delta({}, "tool_calls"),
        USAGE,
    )
    for pieces in ([body], [body[i : i + 7] for i in range(0, len(body), 7)]):
        out, _ = sdk.translate_stream(ANT, OAI, pieces)
        msg = sdk.anthropic_message(out)
        assert [("a", {"x": 1}), ("b", {"y": 2})] == [
            (b.name, b.input) for b in msg.content if b.type == "tool_use"
        ]
        out, _ = sdk.translate_stream(GEM, OAI, pieces)
        assert [("a", {"x": 1}), ("b", {"y": 2})] == sdk.accumulate_gemini(sdk.gemini_chunks(out))[
            "calls"
        ]


def test_shortened_tool_names_are_restored_in_the_response() -> None:
    """A name too long for OpenAI is shortened upstream and mapped back for the client."""
    name = "x" * 70
    body = {
        "model": "c",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "go"}],
        "tools": [{"name": name, "input_schema": {"type": "object"}}],
    }
    short = translate_request(ANT, OAI, body, upstream_model="u", stream=True)["tools"][0][
        "function"
    ]["name"]
    stream = oai_sse(tool(0, "{}", short), delta({}, "tool_calls"), USAGE)
    out, _ = sdk.translate_stream(ANT, OAI, [stream], tool_names=client_tool_names(ANT, body))
    assert [name] == [b.name for b in sdk.anthropic_message(out).content if b.type == "tool_use"]
    whole = {
        "id": "1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": short, "arguments": "{}"},
                        }
                    ],
                },
            }
        ],
    }
    t = response_translator(
        ANT,
        OAI,
        stream=False,
        client_model="m",
        include_usage=False,
        tool_names=client_tool_names(ANT, body),
    )
    t.feed(json.dumps(whole).encode())
    assert name == json.loads(t.flush())["content"][0]["name"]


def test_reasoning_stream_to_openai_is_reasoning_content_not_content() -> None:
    """Thinking deltas never leak into the answer text (reference P25)."""
    gem = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"hm","thought":true}]}}]}\n\n'
        b'data: {"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}'
        b"\n\n"
    )
    out, _ = sdk.translate_stream(OAI, GEM, [gem])
    acc = sdk.accumulate_openai(sdk.openai_chunks(out))
    assert ("ok", "hm", "stop") == (acc["text"], acc["reasoning"], acc["finish"])
