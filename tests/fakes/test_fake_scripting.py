"""Scripting: which reply answers which request, raw bodies and events, the JSON form."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage

OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": OPENAI_BODY["messages"]}
GEMINI_BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def _ask(client: openai.OpenAI, model: str = "gpt-4o-mini") -> str | None:
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return completion.choices[0].message.content


def test_replies_are_consumed_first_in_first_out(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """Queued replies answer requests in order, then the echo takes over."""
    fake.push(Reply(text="first"), Reply(text="second"))
    assert ["first", "second", "echo: hi"] == [_ask(openai_client) for _ in range(3)]


def test_first_matching_reply_wins(
    fake: FakeProvider, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    """A reply restricted by model or path is skipped by requests it does not match."""
    fake.push(
        Reply(text="for claude", path_contains="/v1/messages"),
        Reply(text="for mini", model="gpt-4o-mini"),
        Reply(text="for anyone"),
    )
    message = anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    actual = [
        _ask(openai_client, "gpt-4o"),
        _ask(openai_client, "gpt-4o-mini"),
        message.content[0].text,  # type: ignore[union-attr]
        _ask(openai_client, "gpt-4o-mini"),
    ]
    assert ["for anyone", "for mini", "for claude", "echo: hi"] == actual
    assert [] == fake.pending


@pytest.mark.parametrize(
    ("times", "expected"),
    [(2, ["again", "again", "echo: hi"]), (None, ["again", "again", "again"])],
    ids=["twice", "forever"],
)
def test_times_repeats_a_reply(
    fake: FakeProvider, openai_client: openai.OpenAI, times: int | None, expected: list[str]
) -> None:
    """``times`` answers that many matching requests; None answers all of them."""
    fake.push(Reply(text="again", times=times))
    assert expected == [_ask(openai_client) for _ in range(3)]


def test_reset_forgets_replies_and_requests(fake: FakeProvider, openai_client: openai.OpenAI) -> None:
    """reset() empties the queue and the recording; clear() only the recording."""
    fake.push(Reply(text="a"), Reply(text="b"))
    _ask(openai_client)
    fake.clear()
    after_clear = (len(fake.requests), len(fake.pending))
    fake.reset()
    assert ((0, 1), (0, 0)) == (after_clear, (len(fake.requests), len(fake.pending)))


RAW_CASES = [
    (
        "/v1/chat/completions",
        OPENAI_BODY,
        Reply(body={"custom": True, "n": 1}),
        200,
        "application/json",
        b'{"custom":true,"n":1}',
    ),
    (
        "/v1/messages",
        ANTHROPIC_BODY,
        Reply(body=b"<html>bad gateway</html>", status=502, headers={"Content-Type": "text/html"}),
        502,
        "text/html",
        b"<html>bad gateway</html>",
    ),
    (
        "/v1/chat/completions",
        OPENAI_BODY,
        Reply(events=[b": keep-alive\n\n", {"choices": []}, "data: [DONE]\n\n"]),
        200,
        "text/event-stream; charset=utf-8",
        b': keep-alive\n\ndata: {"choices":[]}\n\ndata: [DONE]\n\n',
    ),
    (
        "/v1/messages",
        ANTHROPIC_BODY,
        Reply(events=[{"type": "ping"}]),
        200,
        "text/event-stream; charset=utf-8",
        b'event: ping\ndata: {"type":"ping"}\n\n',
    ),
    (
        "/v1beta/models/m:streamGenerateContent?alt=sse",
        GEMINI_BODY,
        Reply(events=[{"candidates": []}]),
        200,
        "text/event-stream",
        b'data: {"candidates":[]}\n\n',
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "reply", "status", "content_type", "expected"),
    RAW_CASES,
    ids=["json-body", "bytes-body", "openai-events", "anthropic-events", "gemini-events"],
)
def test_raw_body_and_events_are_sent_as_is(
    fake: FakeProvider,
    path: str,
    body: Any,
    reply: Reply,
    status: int,
    content_type: str,
    expected: bytes,
) -> None:
    """Raw bodies go out byte for byte; dict events are framed in the protocol's SSE form."""
    fake.push(reply)
    response = httpx.post(fake.base_url + path, json=body)
    actual = (response.status_code, response.headers["content-type"], response.content)
    assert (status, content_type, expected) == actual


@pytest.mark.parametrize(
    ("reply", "status", "body"),
    [
        (
            Reply(status=429),
            429,
            {"error": {"message": "fake upstream error", "type": "rate_limit_error",
                       "param": None, "code": "rate_limit_exceeded"}},
        ),
        (
            Reply(error=ErrorReply(400, "nope", type="invalid_request_error", code="bad")),
            400,
            {"error": {"message": "nope", "type": "invalid_request_error", "param": None,
                       "code": "bad"}},
        ),
    ],
    ids=["bare-status", "error-reply"],
)  # fmt: skip
def test_status_alone_renders_a_protocol_error(fake: FakeProvider, reply: Reply, status: int, body: Any) -> None:
    """A bare error status renders the protocol's error body with a default message."""
    fake.push(reply)
    response = httpx.post(fake.base_url + "/v1/chat/completions", json=OPENAI_BODY)
    assert (status, body) == (response.status_code, response.json())


JSON_FORM_CASES = [
    Reply(),
    Reply(text="hi", reasoning="hmm", finish_reason="length", model="m", times=None),
    Reply(
        tool_calls=(ToolCall("f", {"a": [1, {"b": None}]}, id="call_1"),),
        usage=Usage(input=1, output=2, cache_read=3, cache_write=4, reasoning=5),
    ),
    Reply(
        error=ErrorReply(429, "slow", type="t", code="c", retry_after=1.5),
        error_after=2,
        headers={"x-a": "b"},
    ),
    Reply(body={"raw": [1, 2]}, status=201, delay_first_byte=0.1, delay_between=0.2),
    Reply(body="text body", path_contains=":stream", disconnect_after=3),
    Reply(events=["data: x\n\n", {"type": "ping"}]),
]


@pytest.mark.parametrize(
    "reply",
    JSON_FORM_CASES,
    ids=["empty", "text", "tools-usage", "error", "json-body", "str-body", "events"],
)
def test_json_form_round_trips(reply: Reply) -> None:
    """Reply.from_json(reply.to_json()) gives the same reply, through real JSON."""
    assert reply == Reply.from_json(orjson.loads(orjson.dumps(reply.to_json())))


@pytest.mark.parametrize(
    "payload",
    [{"txt": "typo"}, {"tool_calls": [{"nam": "f"}]}, {"usage": {"inputs": 1}}],
    ids=["unknown-field", "bad-tool-call", "bad-usage"],
)
def test_json_form_rejects_unknown_fields(payload: dict[str, Any]) -> None:
    """The JSON form refuses fields a Reply does not have."""
    with pytest.raises(ValueError):
        Reply.from_json(payload)
