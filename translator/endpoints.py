"""Which endpoint a request path is, and so which protocol the caller speaks.

An explicit table: a path that is not listed is not ours (404), never guessed.
The Envoy route table is rendered from the same facts (``SHAPE_PATHS``,
``LISTING_PATHS``), so Envoy and the translator cannot disagree on a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs

from core.protocols import Protocol


class Kind(Enum):
    CHAT = "chat"  # a generation: chat/completions, messages, generateContent
    COUNT_TOKENS = "count_tokens"
    LIST_MODELS = "list_models"
    GET_MODEL = "get_model"


@dataclass(frozen=True, slots=True)
class Endpoint:
    protocol: Protocol
    kind: Kind
    model: str | None = None  # Gemini carries the model in the path
    stream: bool | None = None  # Gemini: the method says it; others: the body does
    sse: bool = True  # Gemini streams: alt=sse (else one JSON array)
    query_key: str | None = None  # Gemini's ?key=


_GEMINI = re.compile(
    r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens)$"
)
_GEMINI_MODEL = re.compile(r"^/v1(?:beta|alpha)/models/(?P<model>[^/:]+)$")
_MODEL = re.compile(r"^/v1/models/(?P<model>[^/]+)$")

# Body-carrying endpoints -> (protocol, Envoy route match). Rendered into Envoy's routes.
SHAPE_PATHS: dict[str, tuple[Protocol, dict[str, Any]]] = {
    "/v1/chat/completions": (Protocol.OPENAI, {"path": "/v1/chat/completions"}),
    "/v1/messages": (Protocol.ANTHROPIC, {"path": "/v1/messages"}),
    "/v1/messages/count_tokens": (Protocol.ANTHROPIC, {"path": "/v1/messages/count_tokens"}),
    "/v1beta/models": (Protocol.GEMINI, {"safe_regex": {"regex": _GEMINI.pattern}}),
}
_GET = [{"name": ":method", "string_match": {"exact": "GET"}}]
# Bodiless listing endpoints, answered by the translator from the request headers.
LISTING_PATHS: dict[str, dict[str, Any]] = {
    "/v1/models": {"path": "/v1/models", "headers": _GET},
    "/v1/models/{id}": {"safe_regex": {"regex": _MODEL.pattern}, "headers": _GET},
    "/v1beta/models": {"safe_regex": {"regex": r"^/v1(?:beta|alpha)/models$"}, "headers": _GET},
    "/v1beta/models/{id}": {"safe_regex": {"regex": _GEMINI_MODEL.pattern}, "headers": _GET},
}


def _lister(headers: dict[str, str], query_key: str | None) -> Protocol:
    """Who asks ``GET /v1/models``: the SDKs share the path, their headers differ."""
    if "anthropic-version" in headers or "x-api-key" in headers:
        return Protocol.ANTHROPIC
    if "x-goog-api-key" in headers or query_key:
        return Protocol.GEMINI
    return Protocol.OPENAI


def classify(method: str, full_path: str, headers: dict[str, str]) -> Endpoint | None:
    """The endpoint for ``method`` and ``full_path`` (query included), or None."""
    path, _, query = full_path.partition("?")
    q = parse_qs(query) if query else {}
    if method == "POST":
        if path == "/v1/chat/completions":
            return Endpoint(Protocol.OPENAI, Kind.CHAT)
        if path == "/v1/messages":
            return Endpoint(Protocol.ANTHROPIC, Kind.CHAT)
        if path == "/v1/messages/count_tokens":
            return Endpoint(Protocol.ANTHROPIC, Kind.COUNT_TOKENS)
        if m := _GEMINI.match(path):
            method_name = m["method"]
            return Endpoint(
                Protocol.GEMINI,
                Kind.COUNT_TOKENS if method_name == "countTokens" else Kind.CHAT,
                model=m["model"],
                stream=method_name == "streamGenerateContent",
                sse=q.get("alt", [""])[0] == "sse",
                query_key=q.get("key", [None])[0],
            )
        return None
    if method == "GET":
        key = q.get("key", [None])[0]
        if path == "/v1/models":
            return Endpoint(_lister(headers, key), Kind.LIST_MODELS, query_key=key)
        if m := _MODEL.match(path):
            return Endpoint(_lister(headers, key), Kind.GET_MODEL, model=m["model"], query_key=key)
        if re.fullmatch(r"/v1(?:beta|alpha)/models", path):
            return Endpoint(Protocol.GEMINI, Kind.LIST_MODELS, query_key=key)
        if m := _GEMINI_MODEL.match(path):
            return Endpoint(Protocol.GEMINI, Kind.GET_MODEL, model=m["model"], query_key=key)
    return None


def client_key(endpoint: Endpoint, headers: dict[str, str]) -> str | None:
    """The caller's tokengate key, from wherever its protocol puts it."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    for name in ("x-api-key", "x-goog-api-key"):
        if v := headers.get(name):
            return v.strip()
    return endpoint.query_key
