"""The endpoint table: which codec and what kind of answer each path gets.

    POST /v1/chat/completions                          OpenAI generate
    POST /v1/responses                                 OpenAI Responses generate
    POST /v1/embeddings                                OpenAI embeddings (fakes.embeddings)
    GET  /v1/models                                    OpenAI models (Anthropic's shape
                                                       with anthropic-version, Gemini's
                                                       with x-goog-api-key)
    POST /v1/messages[?beta=true]                      Anthropic generate
    POST /v1/messages/count_tokens                     Anthropic count
    POST /{v1beta,v1alpha,v1}/models/{m}:generateContent        Gemini generate
                                        :streamGenerateContent  Gemini stream
                                        :countTokens            Gemini count
                                        :embedContent           Gemini embeddings (fakes.embeddings)
                                        :batchEmbedContents     Gemini embeddings
    GET  /{v1beta,v1alpha}/models                      Gemini models

Anything else is a 404 in the shape of the protocol the caller seems to speak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fakes import embeddings
from fakes.anthropic import AnthropicCodec
from fakes.codec import Codec, Kind, Route
from fakes.gemini import GeminiCodec
from fakes.openai import OpenAICodec
from fakes.responses import ResponsesCodec

OPENAI = OpenAICodec()
ANTHROPIC = AnthropicCodec()
GEMINI = GeminiCodec()
RESPONSES = ResponsesCodec()

_TABLE: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): Route(OPENAI, Kind.GENERATE),
    ("POST", "/v1/responses"): Route(RESPONSES, Kind.GENERATE),
    ("POST", "/v1/embeddings"): Route(embeddings.OPENAI, Kind.GENERATE),
    ("GET", "/v1/models"): Route(OPENAI, Kind.MODELS),
    ("POST", "/v1/messages"): Route(ANTHROPIC, Kind.GENERATE),
    ("POST", "/v1/messages/count_tokens"): Route(ANTHROPIC, Kind.COUNT),
    ("GET", "/v1beta/models"): Route(GEMINI, Kind.MODELS),
    ("GET", "/v1alpha/models"): Route(GEMINI, Kind.MODELS),
}
_ANTHROPIC_MODELS = Route(ANTHROPIC, Kind.MODELS)
_GEMINI_MODELS = Route(GEMINI, Kind.MODELS)

_GEMINI_PATH = re.compile(r"/v1(?:beta|alpha)?/(?:models|tunedModels)/([^/:]+):(\w+)")
_GEMINI_METHODS: dict[str, tuple[Kind, bool]] = {
    "generateContent": (Kind.GENERATE, False),
    "streamGenerateContent": (Kind.GENERATE, True),
    "countTokens": (Kind.COUNT, False),
}
_GEMINI_EMBED = frozenset({"embedContent", "batchEmbedContents"})


def route(method: str, path: str, headers: Mapping[str, str]) -> Route | None:
    found = _TABLE.get((method, path))
    if found is not None:
        if found.kind is Kind.MODELS and found.codec is OPENAI:  # GET /v1/models is shared
            if "anthropic-version" in headers:
                return _ANTHROPIC_MODELS
            if "x-goog-api-key" in headers:
                return _GEMINI_MODELS
        return found
    match = _GEMINI_PATH.fullmatch(path) if method == "POST" else None
    if match is not None and match[2] in _GEMINI_METHODS:
        kind, stream = _GEMINI_METHODS[match[2]]
        return Route(GEMINI, kind, model=match[1], stream=stream)
    if match is not None and match[2] in _GEMINI_EMBED:
        return Route(embeddings.GEMINI, Kind.GENERATE, model=match[1])
    return None


def guess_codec(path: str, headers: Mapping[str, str]) -> Codec:
    """The protocol an unroutable request most likely speaks, for its 404."""
    if path.startswith(("/v1beta/", "/v1alpha/")) or "x-goog-api-key" in headers:
        return GEMINI
    if "anthropic-version" in headers or "x-api-key" in headers:
        return ANTHROPIC
    return OPENAI
