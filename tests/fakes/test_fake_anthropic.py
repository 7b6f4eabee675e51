"""The official anthropic SDK parses everything the fake sends for Messages."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage

MODEL = "claude-haiku-4-5"
SYSTEM: list[Any] = [{"type": "text", "text": "be brief"}]
MESSAGES: list[Any] = [{"role": "user", "content": "hello there"}]
CACHED = Usage(input=10, output=7, cache_read=5, cache_write=2, reasoning=3)
WEATHER = ToolCall("get_weather", {"city": "Paris", "days": [1, 2]})
TIME = ToolCall("get_time", {"tz": "Europe/Paris"}, id="toolu_fixed")

# reply, expected text, expected (input, output, cache_read, cache_write) tokens
TEXT_CASES = [
    (None, "echo: hello there", (7, 3, 0, 0)),
    (Reply(text="Hi, how can I help?"), "Hi, how can I help?", (7, 5, 0, 0)),
    (Reply(text="cached", usage=CACHED), "cached", (10, 10, 5, 2)),
]
TEXT_IDS = ["echo", "scripted-text", "usage-semantics"]


def _usage(message: anthropic.types.Message) -> tuple[int, int, int | None, int | None]:
    u = message.usage
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
    )


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_create_text_and_usage(
    fake: FakeProvider,
    anthropic_client: anthropic.Anthropic,
    reply: Reply | None,
    text: str,
    usage: Any,
) -> None:
    """A non-streaming message parses with its text, stop reason and usage."""
    if reply is not None:
        fake.push(reply)
    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, messages=MESSAGES)
    content = [(b.type, getattr(b, "text", None)) for b in message.content]
    assert ([("text", text)], "end_turn", usage) == (content, message.stop_reason, _usage(message))


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_stream_accumulates_text_and_usage(
    fake: FakeProvider,
    anthropic_client: anthropic.Anthropic,
    reply: Reply | None,
    text: str,
    usage: Any,
) -> None:
    """The SDK's stream helper accumulates the text and the final usage."""
    if reply is not None:
        fake.push(reply)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, system=SYSTEM, messages=MESSAGES) as stream:
        streamed = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert (text, text, "end_turn", usage) == (
        streamed,
        message.content[0].text,  # type: ignore[union-attr]
        message.stop_reason,
        _usage(message),
    )


def test_stream_event_order(fake: FakeProvider, anthropic_client: anthropic.Anthropic) -> None:
    """Raw events come in the order the real API sends them, ping after the first block."""
    fake.push(Reply(text="one two", reasoning="hmm", tool_calls=[WEATHER]))
    stream = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None) or getattr(e, "index", None)) for e in stream]
    expected = [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        *[("content_block_delta", "input_json_delta")] * 12,
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert expected == kinds


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_use_and_thinking_blocks(fake: FakeProvider, anthropic_client: anthropic.Anthropic, stream: bool) -> None:
    """Thinking, text and tool_use blocks parse with whole inputs, streamed or not."""
    fake.push(Reply(text="Checking.", reasoning="need tools", tool_calls=[WEATHER, TIME]))
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
    if stream:
        with anthropic_client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(**kwargs)
    blocks = [b.model_dump(exclude={"signature", "id"}, exclude_none=True) for b in message.content]
    assert [
        {"type": "thinking", "thinking": "need tools"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "name": WEATHER.name, "input": WEATHER.args},
        {"type": "tool_use", "name": TIME.name, "input": TIME.args},
    ] == blocks
    thinking, _, first, second = message.content
    assert (True, True, "toolu_fixed", "tool_use") == (
        bool(thinking.signature),  # type: ignore[union-attr]
        first.id.startswith("toolu_"),  # type: ignore[union-attr]
        second.id,  # type: ignore[union-attr]
        message.stop_reason,
    )


def test_beta_messages_path(fake: FakeProvider, anthropic_client: anthropic.Anthropic) -> None:
    """/v1/messages?beta=true (older SDKs' beta namespace) answers like /v1/messages."""
    message = anthropic_client.beta.messages.create(
        model=MODEL, max_tokens=10, messages=MESSAGES, extra_query={"beta": "true"}
    )
    request = fake.requests[-1]
    assert ("echo: hello there", "/v1/messages", {"beta": "true"}) == (
        message.content[0].text,  # type: ignore[union-attr]
        request.path,
        dict(request.query),
    )


def test_count_tokens(anthropic_client: anthropic.Anthropic) -> None:
    """count_tokens answers prompt words plus the fixed overhead."""
    count = anthropic_client.messages.count_tokens(model=MODEL, system=SYSTEM, messages=MESSAGES)
    assert 7 == count.input_tokens


def test_models_list_in_anthropic_shape(anthropic_client: anthropic.Anthropic) -> None:
    """GET /v1/models with anthropic-version answers in Anthropic's shape."""
    models = anthropic_client.models.list()
    assert ["demo-echo", "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"] == [m.id for m in models]


ERROR_CASES = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.APIStatusError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (504, anthropic.InternalServerError, "timeout_error"),
    (529, anthropic.InternalServerError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "exc_type", "type_"), ERROR_CASES, ids=[str(c[0]) for c in ERROR_CASES])
def test_errors_raise_the_sdk_exception(
    fake: FakeProvider,
    anthropic_client: anthropic.Anthropic,
    status: int,
    exc_type: type[anthropic.APIStatusError],
    type_: str,
) -> None:
    """Scripted errors raise the SDK's class with status, type, message and request id."""
    fake.push(Reply(error=ErrorReply(status, f"failed with {status}", retry_after=3)))
    with pytest.raises(exc_type) as info:
        anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    exc = info.value
    body = {
        "type": "error",
        "error": {"type": type_, "message": f"failed with {status}"},
        "request_id": exc.request_id,
    }
    actual = (exc.status_code, exc.body, exc.response.headers["retry-after"])
    assert (status, body, "3") == actual
    assert exc.request_id is not None and exc.request_id.startswith("req_")
