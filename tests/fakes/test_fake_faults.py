"""Scripted faults as each SDK sees them: cut connections, in-band errors, delays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors

from fakes import ErrorReply, FakeProvider, Reply

TEXT = "one two three four five"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
Streamer = Callable[[openai.OpenAI, anthropic.Anthropic, genai.Client], Iterator[str]]


def _openai(o: openai.OpenAI, a: anthropic.Anthropic, g: genai.Client) -> Iterator[str]:
    for chunk in o.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        yield chunk.choices[0].delta.content or ""


def _anthropic(o: openai.OpenAI, a: anthropic.Anthropic, g: genai.Client) -> Iterator[str]:
    with a.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as stream:
        yield from stream.text_stream


def _gemini(o: openai.OpenAI, a: anthropic.Anthropic, g: genai.Client) -> Iterator[str]:
    for chunk in g.models.generate_content_stream(model="m", contents="hi"):
        yield chunk.text or ""


def _collect(
    streamer: Streamer, o: openai.OpenAI, a: anthropic.Anthropic, g: genai.Client
) -> tuple[str, BaseException | None]:
    received: list[str] = []
    try:
        for text in streamer(o, a, g):
            received.append(text)
    except Exception as exc:
        return "".join(received), exc
    return "".join(received), None


# pieces before the words: OpenAI role chunk; Anthropic message_start, block start, ping
DISCONNECT_CASES = [
    (_openai, 1 + 2, openai.APIConnectionError),
    (_anthropic, 3 + 2, anthropic.APIConnectionError),
    (_gemini, 0 + 2, httpx2.RemoteProtocolError),
]


@pytest.mark.parametrize(("streamer", "after", "exc_type"), DISCONNECT_CASES, ids=["openai", "anthropic", "gemini"])
def test_disconnect_after_cuts_the_stream(
    fake: FakeProvider,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    gemini_client: genai.Client,
    streamer: Streamer,
    after: int,
    exc_type: type[BaseException],
) -> None:
    """After N pieces the connection drops without the terminating chunk and the SDK raises."""
    fake.push(Reply(text=TEXT, disconnect_after=after))
    received, exc = _collect(streamer, openai_client, anthropic_client, gemini_client)
    assert ("one two", exc_type) == (received, type(exc))


def test_disconnect_after_everything_still_cuts_the_body(fake: FakeProvider) -> None:
    """With all pieces sent the body still lacks its terminating chunk."""
    fake.push(Reply(text=TEXT, disconnect_after=100))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with httpx.stream(
            "POST",
            fake.base_url + "/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": MESSAGES},
        ) as response:
            for chunk in response.iter_bytes():
                received += chunk
    assert received.endswith(b"data: [DONE]\n\n")


ERROR_AFTER_CASES = [
    (_openai, 1 + 2, openai.APIError, "mid-stream boom"),
    (_anthropic, 3 + 2, anthropic.APIStatusError, "mid-stream boom"),
    (_gemini, 0 + 2, errors.ServerError, "mid-stream boom"),
]


@pytest.mark.parametrize(
    ("streamer", "after", "exc_type", "message"),
    ERROR_AFTER_CASES,
    ids=["openai", "anthropic", "gemini"],
)
def test_error_after_sends_an_in_band_error(
    fake: FakeProvider,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    gemini_client: genai.Client,
    streamer: Streamer,
    after: int,
    exc_type: type[Exception],
    message: str,
) -> None:
    """With error_after the stream starts 200, then an error event makes the SDK raise."""
    fake.push(Reply(text=TEXT, error=ErrorReply(500, "mid-stream boom"), error_after=after))
    received, exc = _collect(streamer, openai_client, anthropic_client, gemini_client)
    assert ("one two", True, True) == (received, isinstance(exc, exc_type), message in str(exc))


def test_error_after_on_a_non_streaming_request_is_an_http_error(
    fake: FakeProvider, openai_client: openai.OpenAI
) -> None:
    """error_after only applies to streams; a plain request gets the HTTP error."""
    fake.push(Reply(error=ErrorReply(503, "busy"), error_after=2))
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert 503 == info.value.status_code


@pytest.mark.parametrize(
    ("reply", "minimum"),
    [
        (Reply(delay_first_byte=0.3), 0.3),
        (Reply(text=TEXT, delay_between=0.05), 0.05 * 7),  # 9 pieces: role, 5 words, finish, [DONE]
    ],
    ids=["first-byte", "between"],
)
def test_delays_hold(fake: FakeProvider, openai_client: openai.OpenAI, reply: Reply, minimum: float) -> None:
    """Scripted delays make the answer take at least that long (an upper bound would be a timing test)."""
    fake.push(reply)
    started = time.monotonic()
    chunks = list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    elapsed = time.monotonic() - started
    assert elapsed >= minimum
    assert len(chunks) > 0


def test_delay_between_spaces_the_pieces(fake: FakeProvider) -> None:
    """Each stream piece arrives on its own, delay_between after the previous one."""
    fake.push(Reply(text="a b c", delay_between=0.1))
    arrivals: list[float] = []
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    url = fake.base_url + "/v1beta/models/m:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=body) as response:
        for _ in response.iter_raw():
            arrivals.append(time.monotonic())
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert (3, [True, True]) == (len(arrivals), [g >= 0.08 for g in gaps])
