"""The request the gateway builds for a Google Vertex AI provider (``translator/flavours/vertex.py``), its
config checks, its access tokens (``translator/flavours/gcp_tokens.py``, against the fake token endpoint)
and Vertex's Google-shaped errors in front of a Claude model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from core.config import Provider, Vertex
from core.protocols import Protocol
from fakes import FakeProvider
from translator.endpoints import Kind
from translator.errors import BadRequest, ServiceUnavailable
from translator.extproc.upstream import attempt_body, attempt_headers, needs_body
from translator.flavours import for_provider
from translator.flavours.gcp_tokens import AccessTokens
from translator.flavours.vertex import VertexClaude, VertexFlavour, VertexGemini
from translator.main import flavours_ready
from translator.protocols import REGISTRY
from translator.responses import handler_for
from translator.state import Target

GLOBAL = Vertex(project="acme-prod", location="global")
EAST5 = Vertex(project="acme-prod", location="us-east5")
CLIENT = ("content-type", "x-api-key", "x-goog-api-key", "authorization", "x-request-id")
GEMINI, ANTHROPIC, OPENAI = (REGISTRY.get(Protocol(p)) for p in ("gemini", "anthropic", "openai"))
PREFIX = "/v1/projects/acme-prod/locations/{loc}/publishers/{pub}/models/"


def target(flavour: VertexFlavour, model: str, key: str | None = "ya29.static") -> Target:
    protocol = Protocol.ANTHROPIC if isinstance(flavour, VertexClaude) else Protocol.GEMINI
    return Target("vx", protocol, REGISTRY.get(protocol), model, "", key, flavour)


def path_of(flavour: VertexFlavour, model: str, kind: Kind, stream: bool, sse: bool, caller: Any = None) -> str:
    t = target(flavour, model)
    headers, _ = attempt_headers(caller or t.codec, kind, stream, sse, t, CLIENT)
    return headers[":path"]


@pytest.mark.parametrize(("vertex", "kind", "stream", "sse", "method"), [
    (GLOBAL, Kind.CHAT, False, True, "gemini-2.5-pro:generateContent"),
    (GLOBAL, Kind.CHAT, True, True, "gemini-2.5-pro:streamGenerateContent?alt=sse"),
    (EAST5, Kind.CHAT, True, False, "gemini-2.5-pro:streamGenerateContent"),
    (EAST5, Kind.COUNT_TOKENS, False, True, "gemini-2.5-pro:countTokens"),
], ids=["global-generate", "global-stream-sse", "regional-stream-json-array", "regional-count"])
def test_gemini_paths(vertex: Vertex, kind: Kind, stream: bool, sse: bool, method: str) -> None:
    """The google publisher's methods under the project and location, SSE or JSON-array streams as the caller asked."""
    expected = PREFIX.format(loc=vertex.location, pub="google") + method
    assert expected == path_of(VertexGemini(vertex, None), "gemini-2.5-pro", kind, stream, sse)


@pytest.mark.parametrize(("kind", "stream", "method"), [
    (Kind.CHAT, False, "claude-sonnet-4-5@20250929:rawPredict"),
    (Kind.CHAT, True, "claude-sonnet-4-5@20250929:streamRawPredict"),
    (Kind.COUNT_TOKENS, False, "count-tokens:rawPredict"),
], ids=["raw-predict", "stream-raw-predict", "count-tokens"])
def test_claude_paths(kind: Kind, stream: bool, method: str) -> None:
    """The anthropic publisher's rawPredict methods; a version's @ stays as Vertex writes it."""
    expected = PREFIX.format(loc="us-east5", pub="anthropic") + method
    assert expected == path_of(VertexClaude(EAST5, None), "claude-sonnet-4-5@20250929", kind, stream, True)


def test_a_translated_stream_is_asked_as_sse() -> None:
    """An OpenAI caller's stream from Vertex Gemini: the SSE form, which the translator reads."""
    path = path_of(VertexGemini(GLOBAL, None), "gemini-2.5-flash", Kind.CHAT, True, False, caller=OPENAI)
    assert path.endswith(":streamGenerateContent?alt=sse")


def test_embeddings_are_refused() -> None:
    with pytest.raises(BadRequest, match="Embeddings are not served from Vertex AI"):
        path_of(VertexGemini(GLOBAL, None), "text-embedding-005", Kind.EMBED, False, True)


@pytest.mark.parametrize("flavour", [VertexGemini(GLOBAL, None), VertexClaude(GLOBAL, None)], ids=["gemini", "claude"])
def test_the_token_is_a_bearer_and_no_caller_credential_goes_on(flavour: VertexFlavour) -> None:
    t = target(flavour, "m")
    headers, remove = attempt_headers(t.codec, Kind.CHAT, False, True, t, CLIENT)
    assert "Bearer ya29.static" == headers["authorization"]
    assert not {"x-api-key", "x-goog-api-key"} & set(headers)
    assert {"x-api-key", "x-goog-api-key"} <= set(remove)


MESSAGES = {"model": "claude-sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def test_a_claude_body_has_no_model_and_vertexs_version() -> None:
    """Anthropic caller, same model name: the body is read anyway (needs_body) and rewritten."""
    t = target(VertexClaude(GLOBAL, None), "claude-sonnet")
    assert needs_body(ANTHROPIC, "claude-sonnet", t, Kind.CHAT)
    body = attempt_body(ANTHROPIC, Kind.CHAT, False, t, dict(MESSAGES))
    assert {"max_tokens": 64, "messages": MESSAGES["messages"], "anthropic_version": "vertex-2023-10-16"} == body


def test_a_translated_claude_body_too() -> None:
    t = target(VertexClaude(GLOBAL, None), "claude-sonnet")
    body = attempt_body(OPENAI, Kind.CHAT, True, t, {"model": "x", "messages": [{"role": "user", "content": "hi"}],
                                                     "stream": True})
    assert ("vertex-2023-10-16", True, False) == (body["anthropic_version"], body["stream"], "model" in body)


def test_a_claude_token_count_keeps_the_model() -> None:
    t = target(VertexClaude(GLOBAL, None), "claude-sonnet")
    body = attempt_body(ANTHROPIC, Kind.COUNT_TOKENS, False, t, {"model": "claude-sonnet", "messages": []})
    assert {"model": "claude-sonnet", "messages": [], "anthropic_version": "vertex-2023-10-16"} == body


def test_a_gemini_request_passes_untouched() -> None:
    """Same protocol and model: the attempt skips the body, as for Google AI Studio."""
    t = target(VertexGemini(GLOBAL, None), "gemini-2.5-flash")
    assert not needs_body(GEMINI, "gemini-2.5-flash", t, Kind.CHAT)


@pytest.mark.parametrize(("caller", "body"), [
    (GEMINI, {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "hi"}]}],
                                         "generationConfig": {"temperature": 1}}}),
    (ANTHROPIC, {"model": "gemini-2.5-flash", "system": "be brief", "messages": [{"role": "user", "content": "hi"}]}),
], ids=["gemini-generate-content-request", "anthropic-caller"])
def test_a_gemini_token_count_is_vertexs_count_request(caller: Any, body: dict[str, Any]) -> None:
    """Vertex's countTokens has the prompt fields at the top level: no generateContentRequest, no model."""
    t = target(VertexGemini(GLOBAL, None), "gemini-2.5-flash")
    assert needs_body(caller, "gemini-2.5-flash", t, Kind.COUNT_TOKENS)
    out = attempt_body(caller, Kind.COUNT_TOKENS, False, t, body)
    assert set(out) <= {"contents", "systemInstruction", "tools"} and out["contents"]


# --- config ------------------------------------------------------------------------------------

BASE: dict[str, Any] = {"name": "vx", "api_key": {"env": "VX_TOKEN"}}


@pytest.mark.parametrize(("location", "url"), [
    ("global", "https://aiplatform.googleapis.com"),
    ("us-east5", "https://us-east5-aiplatform.googleapis.com"),
    ("eu", "https://aiplatform.eu.rep.googleapis.com"),
], ids=["global", "regional", "multi-region"])
def test_the_base_url_is_the_locations_endpoint(location: str, url: str) -> None:
    p = Provider.model_validate({**BASE, "protocol": "gemini", "vertex": {"project": "acme-prod", "location": location}})
    assert url == p.base_url


def test_a_base_url_given_wins() -> None:
    p = Provider.model_validate({**BASE, "protocol": "anthropic", "base_url": "http://127.0.0.1:9",
                                 "vertex": {"project": "acme-prod"}})
    assert ("http://127.0.0.1:9", "global") == (p.base_url, p.vertex.location if p.vertex else None)


@pytest.mark.parametrize(("doc", "expected"), [
    ({"protocol": "openai", "vertex": {"project": "acme-prod"}}, "serves protocol anthropic or gemini, not openai"),
    ({"protocol": "gemini", "vertex": {"project": "acme-prod", "credentials_file": "sa.json"}}, "one of the two"),
    ({"protocol": "gemini", "vertex": {"location": "us-east5"}}, "project"),
    ({"protocol": "gemini", "vertex": {"project": "Acme Prod"}}, "should match pattern"),
], ids=["not-a-vertex-protocol", "file-and-token", "no-project", "bad-project"])
def test_bad_vertex_config_is_refused(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Provider.model_validate({**BASE, **doc})


def test_for_provider_picks_the_publisher() -> None:
    def flavour(protocol: str) -> Any:
        return for_provider(Provider.model_validate({**BASE, "protocol": protocol, "vertex": {"project": "acme-prod"}}))
    assert (VertexGemini, VertexClaude) == (type(flavour("gemini")), type(flavour("anthropic")))


def test_providers_with_one_key_file_share_its_tokens(tmp_path: Path) -> None:
    """One refresh thread per service account and process, however many providers use its key."""
    def flavour(protocol: str, key: str) -> Any:
        return for_provider(Provider.model_validate({"name": "vx", "protocol": protocol, "vertex": {
            "project": "acme-prod", "credentials_file": str(tmp_path / key)}}))
    gemini, claude, other = flavour("gemini", "sa.json"), flavour("anthropic", "sa.json"), flavour("gemini", "b.json")
    assert gemini.tokens is claude.tokens and gemini.tokens is not other.tokens
    for tokens in (gemini.tokens, other.tokens):
        tokens.close()


# --- Vertex's own errors in front of Claude -------------------------------------------------------


def test_a_google_shaped_error_reaches_an_anthropic_caller_in_anthropics_shape() -> None:
    handler = handler_for(ANTHROPIC, ANTHROPIC, 429, stream=False, sse=True, include_usage=False, model="c",
                          tool_names=(), respell_errors=True)
    body = b'{"error": {"code": 429, "message": "Quota exceeded for base model", "status": "RESOURCE_EXHAUSTED"}}'
    out = (handler.feed(body) or b"") + (handler.flush() or b"")
    assert {"type": "error", "error": {"type": "rate_limit_error", "message": "Quota exceeded for base model"}} \
        == orjson.loads(out)


# --- access tokens from a service-account key, against the fake token endpoint ----------------------


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as f:
        yield f


def key_file(fake: FakeProvider, tmp_path: Path) -> str:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(fake.vertex.new_service_account(fake.base_url + "/token")))
    return str(path)


def wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_token_from_the_key_file_is_sent_as_bearer(fake: FakeProvider, tmp_path: Path) -> None:
    tokens = AccessTokens(key_file(fake, tmp_path))
    with pytest.raises(ServiceUnavailable, match="not available yet"):
        tokens.current()  # before the first refresh: a clear 503, never a wait
    tokens.refresh()
    t = target(VertexGemini(GLOBAL, tokens), "gemini-2.5-flash", key=None)
    headers, _ = attempt_headers(GEMINI, Kind.CHAT, False, True, t, ())
    assert headers["authorization"] == f"Bearer {tokens.current()}"
    assert tokens.current().startswith("ya29.fake-") and 1 == fake.vertex.issued


def test_tokens_are_refreshed_before_they_expire(fake: FakeProvider, tmp_path: Path) -> None:
    """Four-second tokens are renewed at half their life: a reader always finds a good one."""
    fake.vertex.token_lifetime_s = 4
    tokens = AccessTokens(key_file(fake, tmp_path)).start()
    try:
        wait_for(lambda: tokens.refreshes >= 1)
        seen = set()
        deadline = time.monotonic() + 60
        while tokens.refreshes < 3:
            assert time.monotonic() < deadline, "no refresh"
            seen.add(tokens.current())  # never raises: the next token comes before this one expires
            time.sleep(0.05)
        assert len(seen | {tokens.current()}) >= 3 and fake.vertex.issued == tokens.refreshes
    finally:
        tokens.close()


def test_a_failing_refresh_keeps_the_good_token_then_says_why(fake: FakeProvider, tmp_path: Path) -> None:
    """The key is revoked: refreshes fail (invalid_grant), the token in hand serves until it expires, then a 503
    names the reason."""
    fake.vertex.token_lifetime_s = 6
    tokens = AccessTokens(key_file(fake, tmp_path), max_backoff_s=0.2).start()
    try:
        wait_for(lambda: tokens.refreshes >= 1)
        first = tokens.current()
        fake.vertex.accounts.clear()
        wait_for(lambda: "account not found" in (tokens.error or ""))  # the half-life refresh failed
        assert first == tokens.current()
        with pytest.raises(ServiceUnavailable, match="expired.*invalid_grant: Invalid grant: account not found"):
            wait_for(lambda: not tokens.current())
        assert 1 == tokens.refreshes
    finally:
        tokens.close()


def test_an_unreadable_key_file_is_a_503_naming_it(tmp_path: Path) -> None:
    tokens = AccessTokens(str(tmp_path / "missing.json"), max_backoff_s=0.1).start()
    try:
        wait_for(lambda: tokens.error is not None)
        with pytest.raises(ServiceUnavailable, match="missing.json"):
            tokens.current()
    finally:
        tokens.close()


def test_a_start_waits_for_the_first_token_but_not_for_a_dead_endpoint(fake: FakeProvider, tmp_path: Path) -> None:
    """translator.main.flavours_ready: a translator reports itself healthy once its flavours' first refresh
    ended (so its first requests find a token), and no later than its deadline when the endpoint never answers."""
    tokens = AccessTokens(key_file(fake, tmp_path)).start()
    broken = AccessTokens(str(tmp_path / "missing.json"), max_backoff_s=0.1).start()
    hanging = AccessTokens(str(tmp_path / "never.json"))  # never started: its first refresh never ends
    try:
        gw = SimpleNamespace(targets={
            "a": target(VertexGemini(GLOBAL, tokens), "gemini-2.5-flash", key=None),
            "b": target(VertexGemini(GLOBAL, tokens), "gemini-2.5-pro", key=None),
            "c": target(VertexGemini(GLOBAL, broken), "gemini-2.5-flash", key=None),
        })
        flavours_ready(gw, time.monotonic() + 30)  # type: ignore[arg-type]
        assert tokens.current().startswith("ya29.fake-")  # no 503 for the first request
        assert broken.error is not None  # ended too: with an error (its requests get the 503 naming it)

        gw.targets["d"] = target(VertexGemini(GLOBAL, hanging), "gemini-2.5-flash", key=None)
        started = time.monotonic()
        flavours_ready(gw, started + 0.3)  # type: ignore[arg-type]
        assert 0.25 < time.monotonic() - started < 5
    finally:
        for t in (tokens, broken):
            t.close()
