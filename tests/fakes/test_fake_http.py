"""The HTTP side: recording, request framing, keep-alive, headers, routing errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai

from fakes import FakeProvider, RecordedRequest, Reply

OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_recording_keeps_exactly_what_was_sent(fake: FakeProvider) -> None:
    """Method, target, path, query, lowercased headers and raw body are recorded as sent."""
    body = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi"}]}'
    httpx.post(
        fake.base_url + "/v1/chat/completions?x=1&y=two",
        content=body,
        headers={"X-Custom": "Value", "Content-Type": "application/json"},
    )
    recorded = fake.requests[0]
    actual = (
        recorded.method,
        recorded.target,
        recorded.path,
        dict(recorded.query),
        recorded.headers["x-custom"],
        recorded.body,
        recorded.json(),
    )
    expected = (
        "POST",
        "/v1/chat/completions?x=1&y=two",
        "/v1/chat/completions",
        {"x": "1", "y": "two"},
        "Value",
        body,
        OPENAI_BODY,
    )
    assert expected == actual


SDK_CALLS: list[tuple[str, Callable[..., Any], str, str]] = [
    (
        "openai",
        lambda o, a, g: o.chat.completions.create(**OPENAI_BODY),
        "/v1/chat/completions",
        "authorization",
    ),
    (
        "anthropic",
        lambda o, a, g: a.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=OPENAI_BODY["messages"]),
        "/v1/messages",
        "authorization",  # anthropic 2.x sends the api key as a bearer token
    ),
    (
        "gemini",
        lambda o, a, g: g.models.generate_content(model="gemini-2.5-flash", contents="hi"),
        "/v1/models/gemini-2.5-flash:generateContent",  # google-genai 3.x defaults to v1
        "x-goog-api-key",
    ),
]


@pytest.mark.parametrize(("call", "path", "key_header"), [c[1:] for c in SDK_CALLS], ids=[c[0] for c in SDK_CALLS])
def test_sdk_requests_are_recorded(
    fake: FakeProvider,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    gemini_client: genai.Client,
    call: Callable[..., Any],
    path: str,
    key_header: str,
) -> None:
    """Each SDK's request is recorded with its path, credential header and JSON body."""
    call(openai_client, anthropic_client, gemini_client)
    recorded = fake.requests
    assert (1, path, True, True) == (
        len(recorded),
        recorded[0].path,
        "x" in recorded[0].headers[key_header],
        isinstance(recorded[0].json(), dict),
    )


def test_chunked_request_body_is_reassembled(fake: FakeProvider) -> None:
    """A chunked request body (as Envoy may send upstream) is read whole."""
    raw = orjson.dumps(OPENAI_BODY)

    def pieces() -> Iterator[bytes]:
        yield raw[:10]
        yield raw[10:]

    response = httpx.post(fake.base_url + "/v1/chat/completions", content=pieces())
    recorded = fake.requests[0]
    assert ("chunked", raw, "echo: hi") == (
        recorded.headers["transfer-encoding"],
        recorded.body,
        response.json()["choices"][0]["message"]["content"],
    )


def test_connection_is_kept_alive(fake: FakeProvider) -> None:
    """Several requests, streamed or not, reuse one connection."""
    ports = []
    with httpx.Client(base_url=fake.base_url) as client:
        for stream in (False, True, False):
            response = client.post("/v1/chat/completions", json={**OPENAI_BODY, "stream": stream})
            ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert 1 == len(set(ports))


def test_expect_100_continue_and_pipelined_requests_on_a_raw_socket(fake: FakeProvider) -> None:
    """A client waiting for 100 Continue gets it; two requests in one write get two answers."""
    body = orjson.dumps(OPENAI_BODY)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        interim = sock.recv(1024)
        sock.sendall(body + head + b"\r\n" + body)
        received = b""
        while received.count(b"echo: hi") < 2:
            received += sock.recv(65536)
    assert (b"HTTP/1.1 100 ", 2) == (interim[:13], received.count(b"HTTP/1.1 200 OK"))


def test_malformed_http_gets_a_400(fake: FakeProvider) -> None:
    """A request h11 cannot parse is answered 400 and the connection closed."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert (b"HTTP/1.1 400 ", []) == (received[:13], fake.requests)


HEADER_CASES = [
    ("/v1/chat/completions", OPENAI_BODY, "application/json", "x-request-id"),
    (
        "/v1/chat/completions",
        {**OPENAI_BODY, "stream": True},
        "text/event-stream; charset=utf-8",
        "x-request-id",
    ),
    ("/v1/messages", {**OPENAI_BODY, "max_tokens": 5}, "application/json", "request-id"),
    (
        "/v1/messages",
        {**OPENAI_BODY, "max_tokens": 5, "stream": True},
        "text/event-stream; charset=utf-8",
        "request-id",
    ),
    (
        "/v1beta/models/g:generateContent",
        {"contents": []},
        "application/json; charset=UTF-8",
        "server",
    ),
    (
        "/v1beta/models/g:streamGenerateContent?alt=sse",
        {"contents": []},
        "text/event-stream",
        "server",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "id_header"),
    HEADER_CASES,
    ids=["openai", "openai-stream", "anthropic", "anthropic-stream", "gemini", "gemini-sse"],
)
def test_protocol_headers(fake: FakeProvider, path: str, body: Any, content_type: str, id_header: str) -> None:
    """Each protocol answers with its content type and its request-id header."""
    response = httpx.post(fake.base_url + path, json=body)
    assert (200, content_type, True) == (
        response.status_code,
        response.headers["content-type"],
        id_header in response.headers,
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(headers={"x-extra": "1"}), ("1", "application/json")),
        (Reply(headers={"Content-Type": "text/plain"}), (None, "text/plain")),
    ],
    ids=["added", "replaced"],
)
def test_scripted_headers(fake: FakeProvider, reply: Reply, expected: tuple[str | None, str]) -> None:
    """Scripted headers are added, or replace the default of the same name."""
    fake.push(reply)
    response = httpx.post(fake.base_url + "/v1/chat/completions", json=OPENAI_BODY)
    assert expected == (response.headers.get("x-extra"), response.headers["content-type"])


ROUTING_ERROR_CASES = [
    (
        "GET",
        "/v2/nothing",
        {},
        None,
        404,
        {"error": {"message": "Invalid URL (GET /v2/nothing)", "type": "invalid_request_error",
                   "param": None, "code": None}},
    ),
    (
        "POST",
        "/v1/complete",
        {"anthropic-version": "2023-06-01"},
        b"{}",
        404,
        {"type": "error", "error": {"type": "not_found_error",
                                    "message": "Invalid URL (POST /v1/complete)"}},
    ),
    (
        "POST",
        "/v1beta/models/g:predict",
        {},
        b"{}",
        404,
        {"error": {"code": 404, "message": "Invalid URL (POST /v1beta/models/g:predict)",
                   "status": "NOT_FOUND"}},
    ),
    (
        "POST",
        "/v1/chat/completions",
        {},
        b"{not json",
        400,
        {"error": {"message": "We could not parse the JSON body of your request.",
                   "type": "invalid_request_error", "param": None, "code": None}},
    ),
    (
        "POST",
        "/v1/messages",
        {},
        b'{"model": "c", "messages": []}',
        400,
        {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": "max_tokens: Field required"}},
    ),
    (
        "POST",
        "/v1beta/models/g:generateContent",
        {},
        b'{"contents": "hi"}',
        400,
        {"error": {"code": 400, "message": "contents: Field required (a list of objects)",
                   "status": "INVALID_ARGUMENT"}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "expected"),
    ROUTING_ERROR_CASES,
    ids=[
        "openai-404",
        "anthropic-404",
        "gemini-404",
        "openai-bad-json",
        "anthropic-no-max-tokens",
        "gemini-bad-contents",
    ],
)
def test_unknown_paths_and_bad_requests_answer_in_protocol_shape(
    fake: FakeProvider,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    expected: dict[str, Any],
) -> None:
    """Unknown paths get a 404 and invalid requests a 400, shaped like the protocol's errors."""
    response = httpx.request(method, fake.base_url + path, headers=headers, content=body)
    actual = response.json()
    actual.pop("request_id", None)
    assert (status, expected) == (response.status_code, actual)


def test_gemini_models_list(gemini_client: genai.Client) -> None:
    """The Gemini SDK lists the fake's models (GET /v1/models with x-goog-api-key)."""
    names = [m.name for m in gemini_client.models.list()]
    assert ["models/demo-echo", "models/gpt-4o-mini"] == names[:2]


def test_start_and_stop_inside_a_running_loop() -> None:
    """start()/stop() serve on the caller's loop, and stop closes open connections."""

    async def scenario() -> tuple[str, int, list[RecordedRequest]]:
        fake = FakeProvider()
        await fake.start()
        async with httpx.AsyncClient(base_url=fake.base_url) as client:
            response = await client.post("/v1/chat/completions", json=OPENAI_BODY)
            await fake.stop()
            with pytest.raises(httpx.TransportError):
                await client.post("/v1/chat/completions", json=OPENAI_BODY)
        return response.json()["choices"][0]["message"]["content"], fake.port, fake.requests

    text, port, requests = asyncio.run(scenario())
    assert ("echo: hi", True, 1) == (text, port > 0, len(requests))


def test_running_on_a_taken_port_raises(fake: FakeProvider) -> None:
    """A port already in use fails running() at once instead of hanging."""
    with pytest.raises(OSError), FakeProvider.running(port=fake.port):
        pass
