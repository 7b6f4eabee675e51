"""The upstream-level filter: each attempt of a per-attempt route set up for the deployment it goes to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode

from core.protocols import Protocol
from tests.harness import UPSTREAM_SECRETS
from tests.inprocess.harness import (
    CHAT,
    InProcess,
    attempt_headers,
    attempt_response_headers,
    bearer,
    immediate,
    mutated,
    new_body,
    removed_headers,
    request_body,
    request_headers,
    run,
    set_headers,
)
from translator.endpoints import Kind
from translator.extproc.upstream import Ctx, UpstreamAttempt

SKIP_BODY = ProcessingMode(request_body_mode=ProcessingMode.NONE)  # one round trip, the body goes untouched
# The body translated, and the response headers asked for (their status mapped); the body is the router's.
TRANSLATE = ProcessingMode(request_body_mode=ProcessingMode.BUFFERED, response_header_mode=ProcessingMode.SEND,
                           response_body_mode=ProcessingMode.NONE)
OPENAI_KEY = {"authorization": "Bearer " + UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]}
ANTHROPIC_KEY = {"x-api-key": UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"]}
GEMINI_KEY = {"x-goog-api-key": UPSTREAM_SECRETS["TG_TEST_GEMINI_KEY"]}
# A request as it reaches an attempt: the router removed the caller's key, the rest is the SDK's.
ATTEMPT = {":method": "POST", ":authority": "gateway.test", ":scheme": "http", "content-type": "application/json",
           "accept": "application/json", "user-agent": "sdk/1.0", "x-request-id": "req-1", "x-forwarded-proto": "http",
           "cookie": "session=abc", "accept-encoding": "gzip", "traceparent": "00-1-2-01"}
NOT_FORWARDED = {"cookie", "accept-encoding", "traceparent"}
OPENAI_BODY = {"model": "failover-test", "max_tokens": 32,
               "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}


def wire(ctx: str) -> str:
    """The x-tokengate-ctx header the router sets for ``protocol|kind|flags|model`` (flags: s stream, e SSE)."""
    protocol, kind, flags, model = ctx.split("|", 3)
    return Ctx(Protocol(protocol), Kind(kind), "s" in flags, "e" in flags, model).encode()


def attempt(path: str, ctx: str, **more: str) -> dict[str, str]:
    return {**ATTEMPT, ":path": path, "x-tokengate-model": ctx.rsplit("|", 1)[1], "x-tokengate-ctx": wire(ctx),
            **more}


@dataclass(frozen=True)
class Case:
    ctx: str  # what the router's x-tokengate-ctx says: protocol|kind|flags|model as the caller asked for it
    deployment: str
    protocol: str
    sets: dict[str, str]
    mode: Any  # the mode_override, or None
    extra: tuple[tuple[str, str], ...] = ()  # more client headers
    removed: frozenset[str] = frozenset(NOT_FORWARDED)


CASES = {
    "openai-same-model-skips-the-body": Case(
        "openai|chat|e|gpt-test", "oai", "openai", {":path": "/v1/chat/completions", **OPENAI_KEY}, SKIP_BODY),
    "openai-other-model-name-reads-the-body": Case(
        "openai|chat|e|gpt-latest", "oai-renamed", "openai", {":path": "/v1/chat/completions", **OPENAI_KEY}, None),
    "openai-to-anthropic-translates": Case(
        "openai|chat|se|failover-test", "ant", "anthropic",
        {":path": "/v1/messages", **ANTHROPIC_KEY, "anthropic-version": "2023-06-01",
         "content-type": "application/json"}, TRANSLATE),
    "anthropic-keeps-its-version-and-beta-headers": Case(
        "anthropic|chat|e|claude-test", "ant", "anthropic", {":path": "/v1/messages", **ANTHROPIC_KEY}, SKIP_BODY,
        (("anthropic-version", "2023-01-01"), ("anthropic-beta", "tools-2024"))),
    "anthropic-headers-do-not-go-to-openai": Case(
        "anthropic|chat|e|failover-test", "oai", "openai",
        {":path": "/v1/chat/completions", **OPENAI_KEY, "content-type": "application/json"}, TRANSLATE,
        (("anthropic-version", "2023-06-01"), ("anthropic-beta", "tools-2024")),
        frozenset(NOT_FORWARDED | {"anthropic-version", "anthropic-beta"})),
    "gemini-array-stream-stays-an-array": Case(
        "gemini|chat|s|gemini-test", "gem", "gemini",
        {":path": "/v1beta/models/gemini-test:streamGenerateContent", **GEMINI_KEY}, SKIP_BODY),
    "gemini-stream-to-anthropic-is-read-as-sse": Case(
        "gemini|chat|s|failover-test", "ant", "anthropic",
        {":path": "/v1/messages", **ANTHROPIC_KEY, "anthropic-version": "2023-06-01",
         "content-type": "application/json", "x-tokengate-response-type": "application/json"}, TRANSLATE),
    "anthropic-count-tokens-to-gemini": Case(
        "anthropic|count_tokens|e|failover-test", "gem", "gemini",
        {":path": "/v1beta/models/gemini-test:countTokens", **GEMINI_KEY, "content-type": "application/json"},
        TRANSLATE),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_attempt_headers_set_path_and_credential_and_pick_the_body_mode(redis_url: str, case: Case) -> None:
    """Path, provider key and protocol headers for the deployment; only forwarded headers stay."""
    async def scenario(tg: InProcess) -> None:
        reply = UpstreamAttempt(tg.gw).on_request_headers(
            attempt_headers(case.deployment, case.protocol, attempt(CHAT, case.ctx, **dict(case.extra))))
        assert reply.WhichOneof("response") == "request_headers"
        assert set_headers(reply) == case.sets
        assert removed_headers(reply) == case.removed
        assert (reply.mode_override if reply.HasField("mode_override") else None) == case.mode

    run(redis_url, scenario)


@pytest.mark.parametrize("forward", [False, True], ids=["default", "tracing.forward_to_providers"])
def test_trace_context_reaches_a_provider_only_when_configured(redis_url: str, forward: bool) -> None:
    """The attempt's traceparent and tracestate (Envoy's, when it traces) are removed unless configured."""
    async def scenario(tg: InProcess) -> None:
        tg.gw.forward_trace = forward
        headers = attempt(CHAT, "openai|chat|e|failover-test", tracestate="tg=1")
        reply = UpstreamAttempt(tg.gw).on_request_headers(attempt_headers("oai", "openai", headers))
        trace = {"traceparent", "tracestate"}
        assert trace & removed_headers(reply) == (set() if forward else trace)
        assert "cookie" in removed_headers(reply)  # the rest as before

    run(redis_url, scenario)


def test_a_renamed_model_gets_the_deployments_name_in_the_body(redis_url: str) -> None:
    """Same protocol, another upstream model name: the body is read and only the model changes."""
    async def scenario(tg: InProcess) -> None:
        up = UpstreamAttempt(tg.gw)
        up.on_request_headers(attempt_headers("oai-renamed", "openai", attempt(CHAT, "openai|chat|e|gpt-latest")))
        reply = up.on_request_body(request_body({**OPENAI_BODY, "model": "gpt-latest"}))
        sent = new_body(reply)
        assert sent is not None and orjson.loads(sent) == {**OPENAI_BODY, "model": "gpt-test-2025-01-01"}
        assert set_headers(reply) == {"content-length": str(len(sent))}
        # "model" first: the caller's bytes, only its value replaced (neither parsed nor serialized again)
        raw = b'{"model":  "gpt-latest", "messages": [{"role": "user", "content": "h\\u00e9"}], "top_p": 1.0}'
        assert new_body(up.on_request_body(request_body(raw))) == raw.replace(b'"gpt-latest"',
                                                                            b'"gpt-test-2025-01-01"')

    run(redis_url, scenario)


def test_failover_attempts_each_get_what_their_deployment_needs(redis_url: str) -> None:
    """Router (per-attempt route) → attempt to Anthropic → attempt to OpenAI, header mutations persisting."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        client = {**ATTEMPT, **bearer(key), ":path": CHAT}
        ex = await tg.process([request_headers(CHAT, client), request_body(OPENAI_BODY)], then="end")
        headers = mutated(client, ex.responses[1])  # as the router left them for the attempts
        assert "authorization" not in headers and headers["x-tokengate-ctx"] == wire("openai|chat|e|failover-test")

        first = UpstreamAttempt(tg.gw)
        reply = first.on_request_headers(attempt_headers("ant", "anthropic", headers))
        assert reply.mode_override == TRANSLATE
        body = orjson.loads(new_body(first.on_request_body(request_body(OPENAI_BODY))) or b"null")
        assert body == {"model": "claude-test", "max_tokens": 32, "system": [{"type": "text", "text": "Be brief."}],
                        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
        overloaded = first.on_response_headers(attempt_response_headers(529))
        assert set_headers(overloaded) == {":status": "503"}  # Anthropic's 529 as OpenAI spells it
        assert set_headers(first.on_response_headers(attempt_response_headers(200))) == {}
        headers = mutated(headers, reply)  # Envoy keeps them for the retry

        second = UpstreamAttempt(tg.gw)
        reply = second.on_request_headers(attempt_headers("oai", "openai", headers))
        assert set_headers(reply) == {":path": "/v1/chat/completions", **OPENAI_KEY}
        assert removed_headers(reply) == {"x-api-key", "anthropic-version"}  # the first attempt's (the rest went)
        assert not reply.HasField("mode_override")  # the body still names the model as the caller asked
        body = orjson.loads(new_body(second.on_request_body(request_body(OPENAI_BODY))) or b"null")
        assert body == {**OPENAI_BODY, "model": "gpt-test"}

    run(redis_url, scenario)


@pytest.mark.parametrize(("ctx", "expected"), [
    ("anthropic|chat|e|failover-test", {"type": "error", "error": {
        "type": "api_error", "message": "No deployment is known for upstream metadata 'gone'."}}),
    ("gemini|chat|s|failover-test", {"error": {
        "code": 502, "message": "No deployment is known for upstream metadata 'gone'.", "status": "INTERNAL"}}),
], ids=["anthropic", "gemini"])
def test_an_unknown_deployment_is_a_502_in_the_callers_shape(redis_url: str, ctx: str,
                                                             expected: dict[str, Any]) -> None:
    """Through Servicer.Process with the upstream filter's metadata; the RPC is left for Envoy to end."""
    async def scenario(tg: InProcess) -> None:
        ex = await tg.process([attempt_headers("gone", "anthropic", attempt(CHAT, ctx))], filter_name="upstream",
                              then="end")
        [reply] = ex.responses
        assert immediate(reply) == (502, {"content-type": "application/json"}, expected)
        assert ex.events == []

    run(redis_url, scenario)


def test_ctx_round_trips() -> None:
    """What the router encodes (an UpstreamContext message, base64url: a header value), the upstream filter decodes."""
    for ctx in (Ctx(Protocol.GEMINI, Kind.CHAT, True, False, "models/x:y"),
                Ctx(Protocol.OPENAI, Kind.COUNT_TOKENS, False, True, "a|b")):
        raw = ctx.encode()
        assert raw.isascii() and raw.replace("-", "").replace("_", "").isalnum()
        assert Ctx.decode(raw) == ctx


@pytest.mark.parametrize("raw", ["", "openai|chat|e|gpt-test", "not base64!", "AAAA"],
                         ids=["empty", "pipe-separated", "not-base64", "not-a-message"])
def test_an_unreadable_ctx_is_a_value_error(raw: str) -> None:
    """Anything but a context the router wrote is refused, never read as a default."""
    with pytest.raises(ValueError, match="x-tokengate-ctx"):
        Ctx.decode(raw)
