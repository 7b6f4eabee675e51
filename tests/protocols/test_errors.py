"""Upstream error responses in the client's error shape (reference §4.2), judged by the SDKs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as gerrors

from core.protocols import Protocol
from translator.protocols.convert import translate_error

from . import sdk

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI

# upstream status -> (OpenAI status, type, code), (Anthropic status, type), (Gemini code, status)
ROWS: list[tuple[int, tuple[int, str, str | None], tuple[int, str], tuple[int, str]]] = [
    (
        400,
        (400, "invalid_request_error", None),
        (400, "invalid_request_error"),
        (400, "INVALID_ARGUMENT"),
    ),
    (
        401,
        (401, "invalid_request_error", "invalid_api_key"),
        (401, "authentication_error"),
        (401, "UNAUTHENTICATED"),
    ),
    (403, (403, "permission_error", None), (403, "permission_error"), (403, "PERMISSION_DENIED")),
    (
        404,
        (404, "invalid_request_error", "model_not_found"),
        (404, "not_found_error"),
        (404, "NOT_FOUND"),
    ),
    (
        413,
        (413, "invalid_request_error", None),
        (413, "request_too_large"),
        (400, "INVALID_ARGUMENT"),
    ),
    (429, (429, "rate_limit_error", None), (429, "rate_limit_error"), (429, "RESOURCE_EXHAUSTED")),
    (500, (500, "server_error", None), (500, "api_error"), (500, "INTERNAL")),
    (503, (503, "server_error", None), (529, "overloaded_error"), (503, "UNAVAILABLE")),
    (529, (503, "server_error", None), (529, "overloaded_error"), (503, "UNAVAILABLE")),
    (504, (504, "server_error", None), (504, "timeout_error"), (504, "DEADLINE_EXCEEDED")),
]


def upstream_body(upstream: Protocol, status: int) -> bytes:
    if upstream is OAI:
        return json.dumps(
            {"error": {"message": "boom", "type": "x", "param": None, "code": None}}
        ).encode()
    if upstream is ANT:
        return json.dumps({"type": "error", "error": {"type": "x", "message": "boom"}}).encode()
    if upstream is Protocol.BEDROCK_CONVERSE:  # the exception's name is in x-amzn-ErrorType
        return json.dumps({"message": "boom"}).encode()
    return json.dumps({"error": {"code": status, "message": "boom", "status": "X"}}).encode()


CASES = [(row, up) for row in ROWS for up in Protocol]
IDS = [f"{row[0]}-from-{up.value}" for row, up in CASES]


@pytest.mark.parametrize(("row", "upstream"), CASES, ids=IDS)
def test_openai_client_error_shape(row: Any, upstream: Protocol) -> None:
    """The OpenAI client gets its status/type/code and the upstream message."""
    status, body = translate_error(OAI, upstream, row[0], upstream_body(upstream, row[0]))
    want_status, want_type, want_code = row[1]
    assert (
        want_status,
        {"message": "boom", "type": want_type, "param": None, "code": want_code},
    ) == (status, json.loads(body)["error"])
    with pytest.raises(openai.APIStatusError, match="boom") as info:
        sdk.openai_client(body, status, sse=False).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert want_status == info.value.status_code


@pytest.mark.parametrize(("row", "upstream"), CASES, ids=IDS)
def test_anthropic_client_error_shape(row: Any, upstream: Protocol) -> None:
    """The Anthropic client gets its status and error type with the upstream message."""
    status, body = translate_error(ANT, upstream, row[0], upstream_body(upstream, row[0]))
    want_status, want_type = row[2]
    assert (want_status, {"type": "error", "error": {"type": want_type, "message": "boom"}}) == (
        status,
        json.loads(body),
    )
    with pytest.raises(anthropic.APIStatusError, match="boom") as info:
        sdk.anthropic_client(body, status, sse=False).messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert want_status == info.value.status_code


@pytest.mark.parametrize(("row", "upstream"), CASES, ids=IDS)
def test_gemini_client_error_shape(row: Any, upstream: Protocol) -> None:
    """The Gemini client gets code/status and the message; google-genai raises by code."""
    status, body = translate_error(GEM, upstream, row[0], upstream_body(upstream, row[0]))
    want_code, want_status = row[3]
    assert (want_code, {"code": want_code, "message": "boom", "status": want_status}) == (
        status,
        json.loads(body)["error"],
    )
    with pytest.raises(gerrors.APIError, match="boom") as info:
        sdk.gemini_client(body, status, sse=False).models.generate_content(model="m", contents="x")
    assert (want_code, want_status) == (info.value.code, info.value.status)


def test_insufficient_quota_keeps_its_type_for_openai_clients() -> None:
    """OpenAI's insufficient_quota 429 stays insufficient_quota for OpenAI clients."""
    body = json.dumps(
        {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    ).encode()
    status, out = translate_error(OAI, OAI, 429, body)
    assert (429, "insufficient_quota") == (status, json.loads(out)["error"]["type"])


def test_non_json_error_body_keeps_its_text() -> None:
    """A plain-text upstream error body becomes the message."""
    status, out = translate_error(ANT, GEM, 502, b"Bad Gateway")
    assert (502, {"type": "error", "error": {"type": "api_error", "message": "Bad Gateway"}}) == (
        status,
        json.loads(out),
    )
