"""Refusals before anything goes upstream: an immediate response in the caller's own error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.inprocess.harness import (
    CHAT,
    MESSAGES,
    InProcess,
    gemini_path,
    immediate,
    request_body,
    request_headers,
    run,
)
from translator.auth import NO_KEY

BAD_KEY = "Incorrect API key provided. Check the key, and send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
UNKNOWN_MODEL = "The model 'nope' does not exist or you do not have access to it."
RESERVED = "Headers named x-tokengate-* are reserved for the gateway."
TOO_DEEP = "The request body is nested more than 128 levels deep."
MESSAGES_DOC = [{"role": "user", "content": "hi"}]


class Prefix(str):
    """A message compared by its beginning (the rest names amounts or parser positions)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(self)

    __hash__ = str.__hash__


def openai(message: str, type_: str = "invalid_request_error", code: str | None = None,
           param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def gemini(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def nested(levels: int, model: str = "gpt-test", say: str = "hi") -> bytes:
    """A chat body whose deepest value sits ``levels`` containers down (the body itself is the first)."""
    inner = levels - 1
    return (b'{"model":"' + model.encode() + b'","messages":[{"role":"user","content":"' + say.encode() + b'"}],'
            b'"metadata":' + b"[" * inner + b"]" * inner + b"}")


@dataclass(frozen=True)
class Case:
    path: str
    key: str  # "good", "none", "bad" (well-formed, unknown), "poor" (an account with no balance)
    body: bytes | dict[str, Any] | None  # None: refused at the request headers
    status: int
    expected: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


CASES = {
    "openai-no-key": Case(CHAT, "none", None, 401, openai(NO_KEY, code="invalid_api_key")),
    "anthropic-no-key": Case(MESSAGES, "none", None, 401, anthropic(NO_KEY, "authentication_error")),
    "gemini-no-key": Case(gemini_path("gemini-test"), "none", None, 401, gemini(401, NO_KEY, "UNAUTHENTICATED")),
    "openai-unknown-model": Case(CHAT, "good", {"model": "nope", "messages": MESSAGES_DOC}, 404,
                                 openai(UNKNOWN_MODEL, code="model_not_found", param="model")),
    "anthropic-unknown-model": Case(MESSAGES, "good", {"model": "nope", "max_tokens": 5, "messages": MESSAGES_DOC},
                                    404, anthropic(UNKNOWN_MODEL, "not_found_error")),
    "gemini-unknown-model": Case(gemini_path("nope"), "good", {"contents": [{"parts": [{"text": "hi"}]}]}, 404,
                                 gemini(404, UNKNOWN_MODEL, "NOT_FOUND")),
    "openai-malformed-json": Case(CHAT, "good", b'{"model": "gpt-test",', 400,
                                  openai(Prefix("The request body is not valid JSON: "))),
    "anthropic-malformed-json": Case(MESSAGES, "good", b"{nope}", 400,
                                     anthropic(Prefix("The request body is not valid JSON: "))),
    "gemini-malformed-json": Case(gemini_path("gemini-test"), "good", b"[1,", 400,
                                  gemini(400, Prefix("The request body is not valid JSON: "), "INVALID_ARGUMENT")),
    "openai-not-an-object": Case(CHAT, "good", b"[]", 400, openai("The request body must be a JSON object.")),
    "openai-no-model": Case(CHAT, "good", {"messages": MESSAGES_DOC}, 400,
                            openai("The request has no 'model'.", param="model")),
    "malformed-json-with-a-bad-key-is-401": Case(CHAT, "bad", b"{", 401, openai(BAD_KEY, code="invalid_api_key")),
    "openai-reserved-header": Case(CHAT, "good", None, 400, openai(RESERVED), (("x-tokengate-foo", "1"),)),
    "anthropic-forged-route": Case(MESSAGES, "good", None, 400, anthropic(RESERVED),
                                   (("x-tokengate-model", "claude-test#anthropic"),)),
    "gemini-reserved-header": Case(gemini_path("gemini-test"), "good", None, 400,
                                   gemini(400, RESERVED, "INVALID_ARGUMENT"), (("x-tokengate-foo", "1"),)),
    "openai-headers-over-64-kib": Case(CHAT, "good", None, 431,
                                       openai("The request's headers are larger than 64 KiB."),
                                       (("x-padding", "a" * 65 * 1024),)),
    "unknown-path": Case("/v1/completions", "good", None, 404, openai("Unknown request URL.")),
    "openai-nested-129": Case(CHAT, "good", nested(129), 400, openai(TOO_DEEP)),
    "anthropic-nested-129": Case(MESSAGES, "good", nested(129, "claude-test"), 400, anthropic(TOO_DEEP)),
    # a long body's nesting is walked without its brackets counted first (router.COUNT_BELOW)
    "openai-nested-129-long": Case(CHAT, "good", nested(129, say="x" * 5000), 400, openai(TOO_DEEP)),
    "gemini-nested-129": Case(gemini_path("gemini-test"), "good", nested(129), 400,
                              gemini(400, TOO_DEEP, "INVALID_ARGUMENT")),
    "openai-no-balance": Case(CHAT, "poor", {"model": "gpt-test", "messages": MESSAGES_DOC}, 429,
                              openai(Prefix("Your balance is too low for this request"), "insufficient_quota",
                                     code="insufficient_quota")),
    "anthropic-no-balance": Case(MESSAGES, "poor", {"model": "claude-test", "max_tokens": 5, "messages": MESSAGES_DOC},
                                 429, anthropic(Prefix("Your balance is too low for this request"),
                                                "rate_limit_error")),
    "gemini-no-balance": Case(gemini_path("gemini-test"), "poor", {"contents": [{"parts": [{"text": "hi"}]}]}, 429,
                              gemini(429, Prefix("Your balance is too low for this request"), "RESOURCE_EXHAUSTED")),
}
KEY_HEADER = {MESSAGES: "x-api-key", "/v1beta/": "x-goog-api-key"}  # else an OpenAI SDK's Authorization


async def client_key(tg: InProcess, case: Case) -> dict[str, str]:
    if case.key == "none":
        return {}
    key = {"good": lambda: tg.key("acme"), "poor": lambda: tg.key("broke", usd=0)}.get(case.key)
    value = await key() if key else "sk-tg-acme-" + "0" * 32
    name = next((h for prefix, h in KEY_HEADER.items() if case.path.startswith(prefix)), "authorization")
    return {name: f"Bearer {value}" if name == "authorization" else value}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_refusals_come_in_the_callers_shape_and_end_the_stream_unmetered(redis_url: str, case: Case) -> None:
    """Status and error body as the caller's protocol spells them; no metering event, nothing held."""
    async def scenario(tg: InProcess) -> None:
        messages = [request_headers(case.path, {**await client_key(tg, case), **dict(case.headers)})]
        if case.body is not None:
            messages.append(request_body(case.body))
        ex = await tg.process(messages, then="forbid")  # the servicer ends the RPC after the refusal
        assert len(ex.responses) == len(messages)
        status, headers, body = immediate(ex.responses[-1])
        assert (status, body) == (case.status, case.expected)
        assert headers == {"content-type": "application/json",
                           **({"x-should-retry": "false"} if status == 429 else {})}
        assert ex.events == []
        assert tg.gw.admitter.leases == {}
        account = "broke" if case.key == "poor" else "acme"
        assert await tg.gw.billing.balance(account) == (100 * 10**9 if case.key == "good" else 0, 0)

    run(redis_url, scenario)


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_body_nested_128_levels_deep_is_admitted(redis_url: str, model: str) -> None:
    """The nesting limit's boundary: 128 levels go on (translated too), 129 are refused above."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        ex = await tg.process([request_headers(CHAT, {"authorization": f"Bearer {key}"}),
                               request_body(nested(128, model))])
        assert [r.WhichOneof("response") for r in ex.responses] == ["request_headers", "request_body"]
        body = ex.responses[1].request_body.response.body_mutation.body
        assert body == b"" if model == "gpt-test" else orjson.loads(body)["model"] == "claude-test"

    run(redis_url, scenario)
