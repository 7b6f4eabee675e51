"""The official google-genai SDK parses everything the fake sends for generateContent."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage

MODEL = "gemini-2.5-flash"
CONFIG = types.GenerateContentConfig(system_instruction="be brief")
CONTENTS = "hello there"
CACHED = Usage(input=10, output=7, cache_read=5, cache_write=2, reasoning=3)
WEATHER = ToolCall("get_weather", {"city": "Paris", "days": [1, 2]})
TIME = ToolCall("get_time", {"tz": "Europe/Paris"})

# reply, expected text, expected (prompt, candidates, cached, thoughts, total) tokens
TEXT_CASES = [
    (None, "echo: hello there", (7, 3, None, None, 10)),
    (Reply(text="Hi, how can I help?"), "Hi, how can I help?", (7, 5, None, None, 12)),
    (Reply(text="cached", usage=CACHED), "cached", (17, 7, 5, 3, 27)),
]
TEXT_IDS = ["echo", "scripted-text", "usage-semantics"]


def _usage(response: types.GenerateContentResponse) -> tuple[Any, ...]:
    u = response.usage_metadata
    assert u is not None
    return (
        u.prompt_token_count,
        u.candidates_token_count,
        u.cached_content_token_count,
        u.thoughts_token_count,
        u.total_token_count,
    )


def _finish(response: types.GenerateContentResponse) -> Any:
    assert response.candidates
    return response.candidates[0].finish_reason


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_generate_text_and_usage(
    fake: FakeProvider, gemini_client: genai.Client, reply: Reply | None, text: str, usage: Any
) -> None:
    """A generateContent answer parses with its text, finish reason and usage."""
    if reply is not None:
        fake.push(reply)
    response = gemini_client.models.generate_content(model=MODEL, contents=CONTENTS, config=CONFIG)
    expected = (text, types.FinishReason.STOP, usage)
    assert expected == (response.text, _finish(response), _usage(response))


@pytest.mark.parametrize(("reply", "text", "usage"), TEXT_CASES, ids=TEXT_IDS)
def test_stream_running_usage_and_final_finish(
    fake: FakeProvider, gemini_client: genai.Client, reply: Reply | None, text: str, usage: Any
) -> None:
    """SSE chunks accumulate to the text; usage grows; only the last has finishReason."""
    if reply is not None:
        fake.push(reply)
    chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents=CONTENTS, config=CONFIG))
    candidates = [_usage(c)[1] for c in chunks]
    finishes = [_finish(c) for c in chunks]
    actual = (
        "".join(c.text or "" for c in chunks),
        _usage(chunks[-1]),
        candidates == sorted(candidates),
        finishes,
        fake.requests[-1].query,
    )
    expected_finishes = [None] * (len(chunks) - 1) + [types.FinishReason.STOP]
    assert (text, usage, True, expected_finishes, {"alt": "sse"}) == actual


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_function_calls_and_thoughts(fake: FakeProvider, gemini_client: genai.Client, stream: bool) -> None:
    """functionCall parts arrive whole; thoughts are thought parts; finish is STOP."""
    fake.push(Reply(reasoning="need tools", tool_calls=[WEATHER, TIME]))
    if stream:
        chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents=CONTENTS))
        parts = [p for c in chunks for p in c.candidates[0].content.parts]  # type: ignore[index,union-attr]
        calls = [fc for c in chunks for fc in c.function_calls or []]
        finish = _finish(chunks[-1])
    else:
        response = gemini_client.models.generate_content(model=MODEL, contents=CONTENTS)
        parts = response.candidates[0].content.parts  # type: ignore[index,union-attr,assignment]
        calls = response.function_calls or []
        finish = _finish(response)
    thoughts = "".join(p.text or "" for p in parts if p.thought)
    signed = [bool(p.thought_signature) for p in parts if p.function_call]
    actual = ([(c.name, c.args) for c in calls], thoughts, signed, finish)
    expected_calls = [(WEATHER.name, WEATHER.args), (TIME.name, TIME.args)]
    assert (expected_calls, "need tools", [True, False], types.FinishReason.STOP) == actual


def test_count_tokens(gemini_client: genai.Client) -> None:
    """countTokens answers prompt words plus the fixed overhead."""
    count = gemini_client.models.count_tokens(model=MODEL, contents="one two three four")
    assert 7 == count.total_tokens


def test_json_array_stream_without_alt_sse(fake: FakeProvider) -> None:
    """Without alt=sse the chunks stream as one JSON array of GenerateContentResponse."""
    url = f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    response = httpx.post(url, json=body)
    chunks = orjson.loads(response.content)
    parsed = [types.GenerateContentResponse.model_validate(c) for c in chunks]
    actual = (
        response.headers["content-type"],
        "".join(p.text or "" for p in parsed),
        _finish(parsed[-1]),
    )
    assert ("application/json; charset=UTF-8", "echo: hello there", "STOP") == actual


ERROR_CASES = [
    (400, errors.ClientError, "INVALID_ARGUMENT"),
    (401, errors.ClientError, "UNAUTHENTICATED"),
    (403, errors.ClientError, "PERMISSION_DENIED"),
    (404, errors.ClientError, "NOT_FOUND"),
    (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
    (500, errors.ServerError, "INTERNAL"),
    (503, errors.ServerError, "UNAVAILABLE"),
    (504, errors.ServerError, "DEADLINE_EXCEEDED"),
]


@pytest.mark.parametrize(("status", "exc_type", "rpc_status"), ERROR_CASES, ids=[str(c[0]) for c in ERROR_CASES])
def test_errors_raise_the_sdk_exception(
    fake: FakeProvider,
    gemini_client: genai.Client,
    status: int,
    exc_type: type[errors.APIError],
    rpc_status: str,
) -> None:
    """Scripted errors raise ClientError / ServerError with code, status and message."""
    fake.push(Reply(error=ErrorReply(status, f"failed with {status}")))
    with pytest.raises(exc_type) as info:
        gemini_client.models.generate_content(model=MODEL, contents=CONTENTS)
    exc = info.value
    assert (status, rpc_status, f"failed with {status}") == (exc.code, exc.status, exc.message)
