"""The official openai SDK parses everything the fake sends for the Responses API (``client.responses``),
every stream event validated strictly against the SDK's types."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage
from fakes.responses import encrypted

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
CACHED = Usage(input=10, output=7, cache_read=5, cache_write=2, reasoning=3)
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+a\n*** End Patch\n"
TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "strict": False,
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
]


def _raw_events(fake: FakeProvider, body: dict[str, Any]) -> list[Any]:
    r = httpx.post(fake.base_url + "/v1/responses", json={**body, "stream": True}, timeout=10)
    assert r.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in r.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            event = EVENTS.validate_json(lines["data"])
            assert lines["event"] == event.type
            out.append(event)
    return out


def test_whole_answer_with_every_item_kind(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """Reasoning (encrypted when include asks), text, a function call and a custom call, with the usage's
    semantics (input includes cached and written, output includes reasoning); the body validates strictly."""
    fake.push(Reply(text="Two calls.", reasoning="Plan it.", usage=CACHED,
                    tool_calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("apply_patch", {"input": PATCH})]))
    r = openai_client.responses.create(model="m", input="hi", tools=TOOLS, include=["reasoning.encrypted_content"])
    Response.model_validate(r.model_dump())
    assert ["reasoning", "message", "function_call", "custom_tool_call"] == [o.type for o in r.output]
    rs, _, fn, custom = r.output
    assert rs.type == "reasoning" and fn.type == "function_call" and custom.type == "custom_tool_call"
    assert (encrypted("Plan it."), "Plan it.") == (rs.encrypted_content, rs.summary[0].text)
    assert ("Two calls.", {"city": "Oslo"}, PATCH) == (r.output_text, json.loads(fn.arguments), custom.input)
    u = r.usage
    assert u is not None
    assert (17, 5, 2, 10, 3, 27) == (u.input_tokens, u.input_tokens_details.cached_tokens,
                                     u.input_tokens_details.cache_write_tokens, u.output_tokens,
                                     u.output_tokens_details.reasoning_tokens, u.total_tokens)


def test_stream_events_accumulate_in_the_sdk(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """The typed events, numbered from 0, accumulate in responses.stream to the same answer."""
    reply = Reply(text="Two calls.", reasoning="Plan it.",
                  tool_calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("apply_patch", {"input": PATCH})])
    fake.push(reply, reply)
    events = _raw_events(fake, {"model": "m", "input": "hi", "tools": TOOLS})
    assert list(range(len(events))) == [e.sequence_number for e in events]
    assert ("response.created", "response.completed") == (events[0].type, events[-1].type)
    with openai_client.responses.stream(model="m", input="hi", tools=TOOLS) as s:
        final = s.get_final_response()
    assert ["reasoning", "message", "function_call", "custom_tool_call"] == [o.type for o in final.output]
    assert ("Two calls.", PATCH) == (final.output_text, final.output[3].input)  # type: ignore[union-attr]


def test_an_incomplete_reason_as_finish_reason(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """finish_reason max_output_tokens: status incomplete, whole and streamed (response.incomplete last)."""
    fake.push(Reply(text="cut", finish_reason="max_output_tokens", times=2))
    r = openai_client.responses.create(model="m", input="hi")
    assert ("incomplete", "max_output_tokens") == (r.status, r.incomplete_details and r.incomplete_details.reason)
    assert "response.incomplete" == _raw_events(fake, {"model": "m", "input": "hi"})[-1].type


def test_http_error_in_openai_shape(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """A scripted error is Chat Completions' error body with its status."""
    fake.push(Reply(error=ErrorReply(429, "slow down")))
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.responses.create(model="m", input="hi")
    assert {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"} \
        == info.value.body


def test_in_band_error_is_response_failed(fake: FakeProvider) -> None:
    """An error after some events is response.failed, numbered after them, naming the stream's response."""
    fake.push(Reply(text="one two three", error=ErrorReply(429, "later"), error_after=4))
    events = _raw_events(fake, {"model": "m", "input": "hi"})
    last = events[-1]
    assert ("response.failed", 4, events[0].response.id) == (last.type, last.sequence_number, last.response.id)
    assert last.response.error is not None
    assert ("rate_limit_exceeded", "later") == (last.response.error.code, last.response.error.message)


def test_requests_are_recorded_and_echoed(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """The echo answers the last user text (instructions and items read), and the request is recorded."""
    r = openai_client.responses.create(model="m", instructions="be brief", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": "second"}])
    assert "echo: second" == r.output_text
    assert ("/v1/responses", "be brief") == (fake.requests[-1].path, fake.requests[-1].json()["instructions"])


def test_a_request_without_input_is_a_400(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """What the real API refuses, the fake refuses in its shape."""
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.post("/responses", body={"model": "m"}, cast_to=object)
    assert "Missing required parameter: 'input'." == info.value.body["message"]  # type: ignore[index]
