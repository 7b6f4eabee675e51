"""The official openai SDK parses everything the fake sends for Chat Completions."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage

MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
]
CACHED = Usage(input=10, output=7, cache_read=5, cache_write=2, reasoning=3)
WEATHER = ToolCall("get_weather", {"city": "Paris", "days": [1, 2]})
TIME = ToolCall("get_time", {"tz": "Europe/Paris"}, id="call_fixed")

# reply, expected text, expected (prompt, completion, cached, reasoning) tokens
TEXT_CASES = [
    (None, "echo: hello there", (7, 3, 0, 0)),
    (Reply(text="Hi, how can I help?"), "Hi, how can I help?", (7, 5, 0, 0)),
    (Reply(text="cached", usage=CACHED), "cached", (17, 10, 5, 3)),
]
TEXT_IDS = ["echo", "scripted-text", "usage-semantics"]


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_complete_text_and_usage(
    fake: FakeProvider, openai_client: openai.OpenAI, reply: Reply | None, text: str, usage: Any
) -> None:
    """A non-streaming answer parses with its text, finish reason and usage."""
    if reply is not None:
        fake.push(reply)
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    u = completion.usage
    assert u is not None and u.prompt_tokens_details and u.completion_tokens_details
    actual = (
        completion.choices[0].message.content,
        completion.choices[0].finish_reason,
        (u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens),
        u.completion_tokens_details.reasoning_tokens,
        u.total_tokens,
    )
    assert (text, "stop", usage[:3], usage[3], usage[0] + usage[1]) == actual


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_stream_text_and_usage_chunk(
    fake: FakeProvider, openai_client: openai.OpenAI, reply: Reply | None, text: str, usage: Any
) -> None:
    """A stream accumulates to the text; only the final choiceless chunk carries usage."""
    if reply is not None:
        fake.push(reply)
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content, last = chunks
    u = last.usage
    assert u is not None and u.prompt_tokens_details
    actual = (
        "".join(c.choices[0].delta.content or "" for c in content),
        [c.usage for c in content] == [None] * len(content),
        content[-1].choices[0].finish_reason,
        last.choices,
        (u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens),
        len(content),
    )
    word_chunks = len(text.split())  # plus the role chunk and the finish chunk
    assert (text, True, "stop", [], usage[:3], word_chunks + 2) == actual


def test_stream_without_include_usage_has_no_usage(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """Without stream_options.include_usage no chunk has a usage key or lacks choices."""
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    actual = [("usage" in c.model_fields_set, len(c.choices)) for c in chunks]
    assert [(False, 1)] * len(chunks) == actual


@pytest.mark.parametrize("tool_calls", [[WEATHER], [WEATHER, TIME]], ids=["one-call", "parallel-calls"])
def test_complete_tool_calls(fake: FakeProvider, openai_client: openai.OpenAI, tool_calls: list[ToolCall]) -> None:
    """Tool calls parse with ids, names and JSON arguments; content is null."""
    fake.push(Reply(tool_calls=tool_calls))
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    choice = completion.choices[0]
    calls = choice.message.tool_calls or []
    actual = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
    assert [(t.name, t.args) for t in tool_calls] == actual
    assert (None, "tool_calls") == (choice.message.content, choice.finish_reason)


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (Reply(tool_calls=[WEATHER, TIME]), None),
        (Reply(text="Let me check.", tool_calls=[WEATHER, TIME]), "Let me check."),
    ],
    ids=["tools-only", "text-then-tools"],
)
def test_stream_tool_call_fragments_accumulate(
    fake: FakeProvider, openai_client: openai.OpenAI, reply: Reply, text: str | None
) -> None:
    """The SDK's stream helper accumulates fragmented arguments into whole tool calls."""
    fake.push(reply)
    with openai_client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        completion = stream.get_final_completion()
    message = completion.choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    assert (text, [(WEATHER.name, WEATHER.args), (TIME.name, TIME.args)]) == (
        message.content,
        calls,
    )
    assert "call_fixed" == (message.tool_calls or [])[1].id


def test_stream_reasoning_content_precedes_text(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """Reasoning streams as reasoning_content deltas before the content deltas."""
    fake.push(Reply(text="42", reasoning="think it through"))
    chunks = list(openai_client.chat.completions.create(model="o3", messages=MESSAGES, stream=True))
    deltas = [c.choices[0].delta.model_dump(exclude_none=True) for c in chunks]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert ("think it through", "42") == (reasoning, "".join(d.get("content", "") for d in deltas))


ERROR_CASES = [
    (ErrorReply(400, "bad param", code="unsupported_parameter"), openai.BadRequestError,
     "invalid_request_error", "unsupported_parameter"),
    (ErrorReply(401, "bad key"), openai.AuthenticationError, "invalid_request_error",
     "invalid_api_key"),
    (ErrorReply(403, "region"), openai.PermissionDeniedError, "permission_error", None),
    (ErrorReply(404, "no such model", code="model_not_found"), openai.NotFoundError,
     "invalid_request_error", "model_not_found"),
    (ErrorReply(429, "slow down", retry_after=7), openai.RateLimitError, "rate_limit_error",
     "rate_limit_exceeded"),
    (ErrorReply(429, "no money", type="insufficient_quota", code="insufficient_quota"),
     openai.RateLimitError, "insufficient_quota", "insufficient_quota"),
    (ErrorReply(500, "boom"), openai.InternalServerError, "server_error", None),
    (ErrorReply(503, "overloaded"), openai.InternalServerError, "server_error", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "exc_type", "type_", "code"),
    ERROR_CASES,
    ids=["400", "401", "403", "404", "429", "429-quota", "500", "503"],
)
def test_errors_raise_the_sdk_exception(
    fake: FakeProvider,
    openai_client: openai.OpenAI,
    error: ErrorReply,
    exc_type: type[openai.APIStatusError],
    type_: str,
    code: str | None,
) -> None:
    """Scripted errors raise the SDK's class with status, message, type and code."""
    fake.push(Reply(error=error))
    with pytest.raises(exc_type) as info:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    exc = info.value
    retry_after = None if error.retry_after is None else "7"
    actual = (
        exc.status_code,
        exc.body,
        exc.type,
        exc.code,
        exc.response.headers.get("retry-after"),
    )
    body = {"message": error.message, "type": type_, "param": None, "code": code}
    assert (error.status, body, type_, code, retry_after) == actual
    assert exc.request_id is not None and exc.request_id.startswith("req_")


def test_models_list(openai_client: openai.OpenAI) -> None:
    """GET /v1/models lists the fake's models in OpenAI's shape."""
    assert ["demo-echo", "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"] == [
        m.id for m in openai_client.models.list()
    ]
