"""Which endpoint a path is, and where the caller's key is."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from translator.endpoints import Endpoint, Kind, classify, client_key
from translator.protocols import REGISTRY

OAI, A, G = REGISTRY.get("openai"), REGISTRY.get("anthropic"), REGISTRY.get("gemini")


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("POST", "/v1/chat/completions", {}, Endpoint(OAI, Kind.CHAT)),
        ("POST", "/v1/messages?beta=true", {}, Endpoint(A, Kind.CHAT)),
        ("POST", "/v1/messages/count_tokens", {}, Endpoint(A, Kind.COUNT_TOKENS)),
        ("POST", "/v1beta/models/gemini-x:generateContent", {}, Endpoint(G, Kind.CHAT, "gemini-x", False, False)),
        ("POST", "/v1beta/models/g:streamGenerateContent?alt=sse&key=k1", {},
         Endpoint(G, Kind.CHAT, "g", True, True, "k1")),
        ("POST", "/v1beta/models/g:streamGenerateContent", {}, Endpoint(G, Kind.CHAT, "g", True, False)),
        ("POST", "/v1beta/models/g:countTokens", {}, Endpoint(G, Kind.COUNT_TOKENS, "g", False, False)),
        ("GET", "/v1/models", {}, Endpoint(OAI, Kind.LIST_MODELS)),
        ("GET", "/v1/models", {"anthropic-version": "2023-06-01"}, Endpoint(A, Kind.LIST_MODELS)),
        ("GET", "/v1/models", {"x-goog-api-key": "k"}, Endpoint(G, Kind.LIST_MODELS)),
        ("GET", "/v1/models/gpt-4o", {}, Endpoint(OAI, Kind.GET_MODEL, "gpt-4o")),
        ("GET", "/v1beta/models", {}, Endpoint(G, Kind.LIST_MODELS)),
        ("POST", "/v1/embeddings", {}, Endpoint(OAI, Kind.EMBED_BATCH)),
        ("POST", "/v1beta/models/g:embedContent", {}, Endpoint(G, Kind.EMBED, "g", False)),
        ("POST", "/v1beta/models/g:batchEmbedContents?key=k1", {}, Endpoint(G, Kind.EMBED_BATCH, "g", False, query_key="k1")),
        ("POST", "/v1/completions", {}, None),
        ("GET", "/v1/chat/completions", {}, None),
        ("POST", "/v1beta/models/a/b:generateContent", {}, None),
    ],
    ids=["openai-chat", "anthropic-beta", "anthropic-count", "gemini-generate", "gemini-sse-key",
         "gemini-array", "gemini-count", "models-openai", "models-anthropic", "models-gemini-v1", "model-get",
         "models-gemini", "openai-embeddings", "gemini-embed", "gemini-batch-embed", "unknown", "wrong-method",
         "gemini-bad-model"],
)
def test_classify(method: str, path: str, headers: dict[str, str], expected: Endpoint | None) -> None:
    """Each served path maps to one protocol and kind; anything else is None."""
    assert expected == classify(method, path, headers)


@pytest.mark.parametrize(
    ("headers", "query_key", "expected"),
    [
        ({"authorization": "Bearer sk-1"}, None, "sk-1"),
        ({"authorization": "bearer  sk-2 "}, None, "sk-2"),
        ({"x-api-key": "sk-3"}, None, "sk-3"),
        ({"x-goog-api-key": "sk-4"}, None, "sk-4"),
        ({}, "sk-5", "sk-5"),
        ({"authorization": "Basic abc"}, None, None),
    ],
    ids=["bearer", "bearer-case", "x-api-key", "x-goog-api-key", "query", "basic-is-not-a-key"],
)
def test_client_key_is_found_wherever_the_protocol_puts_it(headers: dict[str, str], query_key: str | None, expected: str | None) -> None:
    """Authorization Bearer, x-api-key, x-goog-api-key and ?key= are all accepted."""
    assert expected == client_key(Endpoint(G, Kind.CHAT, query_key=query_key), headers)


def test_a_post_path_is_classified_once_and_a_key_in_it_is_not_remembered() -> None:
    """The registry remembers a POST's endpoint per path (the hot path asks once per request); a path with
    a caller's key in its query is classified every time, so the key is not kept in memory."""
    calls: list[str] = []
    real = REGISTRY._classify

    def counted(method: str, full_path: str, headers: Mapping[str, str]) -> Endpoint | None:
        calls.append(full_path)
        return real(method, full_path, headers)

    REGISTRY._posts.clear()
    REGISTRY._classify = counted  # type: ignore[method-assign]
    try:
        for _ in range(3):
            assert classify("POST", "/v1/chat/completions", {}) == Endpoint(OAI, Kind.CHAT)
            assert classify("POST", "/v1/completions", {}) is None  # not ours: remembered too
            assert classify("POST", "/v1beta/models/g:generateContent?key=k1", {}).query_key == "k1"  # type: ignore[union-attr]
            assert classify("GET", "/v1/models", {}) == Endpoint(OAI, Kind.LIST_MODELS)  # GETs read headers
    finally:
        del REGISTRY._classify
    assert calls.count("/v1/chat/completions") == calls.count("/v1/completions") == 1
    assert calls.count("/v1beta/models/g:generateContent?key=k1") == calls.count("/v1/models") == 3
    assert "/v1beta/models/g:generateContent?key=k1" not in REGISTRY._posts
