"""Google Vertex AI as an upstream: a provider with ``vertex:`` (``core.config.Vertex``).

Vertex serves Gemini models (publisher ``google``) in the Gemini API's own bodies and Claude models
(publisher ``anthropic``) in Anthropic's, under one request line (docs/providers.md, "Google Vertex AI"):

    <endpoint>/v1/projects/<project>/locations/<location>/publishers/<publisher>/models/<model>:<method>

    google     :generateContent, :streamGenerateContent?alt=sse (SSE) or without alt (one JSON array),
               :countTokens (contents, systemInstruction, tools at the top level)
    anthropic  :rawPredict, :streamRawPredict — the Messages body without ``model`` and with
               ``anthropic_version: vertex-2023-10-16``; token counts at models/count-tokens:rawPredict
               (the body keeps ``model``)
    credential Authorization: Bearer <OAuth2 access token> (gcp_tokens.AccessTokens, or the api_key as is)

Answers are the protocol's own, except that Vertex itself answers some errors — authentication,
quota (429), unknown resources — in Google's shape, ``{"error": {"code", "message", "status"}}``, on a
Claude model too: ``respells_errors`` has the router rewrite such an answer in the caller's shape.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from core.config import Vertex
from translator.endpoints import Kind
from translator.errors import BadRequest
from translator.flavours import Flavour
from translator.flavours.gcp_tokens import AccessTokens
from translator.protocols.base import Codec

Json = dict[str, Any]
ANTHROPIC_VERSION = "vertex-2023-10-16"
# What Vertex's countTokens takes of a generateContent request (CountTokensRequest; generationConfig
# and the rest do not change the count of the prompt).
_COUNTED = ("contents", "systemInstruction", "tools")


class VertexFlavour(Flavour):
    """What the two publishers share: the request line's prefix and the access token."""

    publisher = ""

    def __init__(self, vertex: Vertex, tokens: AccessTokens | None) -> None:
        self.vertex = vertex
        self.tokens = tokens  # None: the provider's api_key is the access token

    def __repr__(self) -> str:
        v = self.vertex
        return f"{type(self).__name__}({v.project}/{v.location})"

    def ready(self, timeout: float) -> None:
        if self.tokens is not None:
            self.tokens.first_attempt(timeout)

    def models_path(self, base_path: str) -> str:
        v = self.vertex
        return (f"{base_path}/v1/projects/{v.project}/locations/{v.location}/publishers/{self.publisher}"
                f"/models")

    def upstream_path(self, codec: Codec, base_path: str, kind: Kind, model: str, *, stream: bool,
                      sse: bool) -> str:
        if kind.embeds:
            raise BadRequest("Embeddings are not served from Vertex AI providers.")
        return f"{self.models_path(base_path)}/{self.method(kind, quote(model, safe='@'), stream=stream, sse=sse)}"

    def method(self, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        raise NotImplementedError

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        token = self.tokens.current() if self.tokens is not None else key
        return {"authorization": f"Bearer {token}"} if token else {}


class VertexGemini(VertexFlavour):
    """Gemini models: the Gemini API's methods and bodies; a token count's body is Vertex's own."""

    publisher = "google"

    def method(self, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        if kind is Kind.COUNT_TOKENS:
            return f"{model}:countTokens"
        if stream:
            return f"{model}:streamGenerateContent" + ("?alt=sse" if sse else "")
        return f"{model}:generateContent"

    def rewrites(self, kind: Kind) -> bool:
        return kind is Kind.COUNT_TOKENS

    def body(self, codec: Codec, body: Json, kind: Kind, stream: bool) -> Json:
        """A token count: the request's prompt fields at the top level (Vertex has no ``generateContentRequest``
        and no ``model`` in the Gemini API's form)."""
        if kind is not Kind.COUNT_TOKENS:
            return body
        inner = body.get("generateContentRequest")
        source = inner if isinstance(inner, dict) else body
        return {k: source[k] for k in _COUNTED if k in source}


class VertexClaude(VertexFlavour):
    """Claude models: Anthropic's Messages body, the model in the path, Vertex's ``anthropic_version``."""

    publisher = "anthropic"
    needs_body = True
    respells_errors = True

    def method(self, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        if kind is Kind.COUNT_TOKENS:
            return "count-tokens:rawPredict"
        return f"{model}:streamRawPredict" if stream else f"{model}:rawPredict"

    def body(self, codec: Codec, body: Json, kind: Kind, stream: bool) -> Json:
        out = body if kind is Kind.COUNT_TOKENS else {k: v for k, v in body.items() if k != "model"}
        return {**out, "anthropic_version": ANTHROPIC_VERSION}


# Key file -> its tokens: one refresh thread per service account and process, whatever number of
# providers (a Gemini and a Claude one, say) use it.
_TOKENS: dict[str, AccessTokens] = {}


def flavour(vertex: Vertex, publisher: str, key_file: str | None) -> VertexFlavour:
    """The flavour of a Vertex provider whose protocol is ``publisher``'s; its key's token thread started."""
    tokens = None
    if key_file is not None:
        path = os.path.abspath(key_file)
        tokens = _TOKENS.get(path) or _TOKENS.setdefault(path, AccessTokens(path).start())
    return (VertexClaude if publisher == VertexClaude.publisher else VertexGemini)(vertex, tokens)
