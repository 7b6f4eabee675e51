"""Embeddings: what every protocol's embeddings endpoints decode into, and the interface they implement.

    client body   --Embedder.decode_request-->  EmbedRequest  --encode_request-->  upstream body
    upstream body --decode_response-->          EmbedResponse --encode_response(EmbedMeta)-->  client body

A protocol with embeddings endpoints sets ``Codec.embedder`` (OpenAI: ``POST /v1/embeddings``; Gemini:
``:embedContent`` and ``:batchEmbedContents``); a protocol without one has no embedding endpoint, and
its callers are never routed to an embedding model. Embeddings are never streamed: one JSON body each
way, so this is a small interface of its own beside the chat codec's, not a second IR for streams.

What one protocol cannot say in another (each embedder's module docstring has its own rules):

- token-id inputs (OpenAI) have no Gemini form: a 400 towards a Gemini upstream;
- Gemini's ``taskType`` and ``title`` have no OpenAI form and are dropped; its
  ``outputDimensionality`` is OpenAI's ``dimensions``, one value for the whole request;
- only text is converted: a Gemini part that is not text is a 400 towards an OpenAI upstream;
- an upstream that reports no usage (Gemini's embedding answers carry none) is billed the gateway's
  estimate of the inputs' tokens (4 characters a token, ``base.estimate_tokens``), which the client's
  answer reports too, and the metering event says it is an estimate (``usage_estimated``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.usage import Usage
from translator.errors import BadRequest
from translator.protocols.base import Json, Kind, estimate_tokens

if TYPE_CHECKING:
    from translator.protocols.base import Codec


@dataclass(frozen=True, slots=True)
class EmbedInput:
    """One thing to embed: text, or (OpenAI only) token ids; with Gemini's per-input options."""

    text: str | None = None
    tokens: tuple[int, ...] | None = None
    other_parts: int = 0  # Gemini parts that are not text (an image …): only a Gemini upstream takes them
    task_type: str | None = None  # Gemini's TaskType (RETRIEVAL_QUERY, SEMANTIC_SIMILARITY …)
    title: str | None = None  # Gemini: a document's title (with RETRIEVAL_DOCUMENT)
    dimensions: int | None = None  # OpenAI's dimensions, Gemini's outputDimensionality


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    inputs: tuple[EmbedInput, ...]
    user: str | None = None  # OpenAI's end-user id (Gemini has none)

    def estimate(self) -> int:
        """The inputs' tokens as the gateway estimates them: what an upstream that reports no usage is
        billed (token ids count one each; text and titles ``estimate_tokens`` of their length, at least 1)."""
        n = 0
        for i in self.inputs:
            if i.tokens is not None:
                n += len(i.tokens)
            else:
                n += max(1, estimate_tokens(len(i.text or "") + len(i.title or "")))
        return n


@dataclass(frozen=True, slots=True)
class EmbedResponse:
    vectors: list[list[float]]  # one per input, in the request's order
    usage: Usage  # input tokens, or unset when the upstream reported none


@dataclass(frozen=True, slots=True)
class EmbedMeta:
    """What the caller's answer needs, learnt from its request (``meta``)."""

    model: str  # the model as the caller named it
    kind: Kind  # EMBED: one embedding (Gemini's embedContent); EMBED_BATCH: a list
    inputs: int  # how many embeddings the answer holds
    prompt_estimate: int  # ``EmbedRequest.estimate``: billed when the upstream reports no usage
    base64: bool = False  # OpenAI's encoding_format "base64": vectors as base64 of little-endian float32


class Embedder(ABC):
    """One protocol's embeddings endpoints (``Codec.embedder``). Sans-I/O, like the codecs."""

    # The key of the usage object in an answer, read from its tail when the answer passes through
    # untouched (usage is the last member of both protocols' answers, after the vectors).
    usage_key: bytes = b'"usage"'

    @abstractmethod
    def decode_request(self, body: Json, kind: Kind) -> EmbedRequest:
        """A caller's request (``BadRequest`` when it is not one)."""

    @abstractmethod
    def encode_request(self, req: EmbedRequest, model: str, kind: Kind) -> Json:
        """The request for an upstream of this protocol, at the endpoint ``kind`` (``BadRequest`` for
        what this protocol cannot take)."""

    @abstractmethod
    def decode_response(self, body: Json) -> EmbedResponse: ...

    @abstractmethod
    def encode_response(self, resp: EmbedResponse, meta: EmbedMeta) -> Json: ...

    @abstractmethod
    def read_usage(self, raw: Any) -> Usage:
        """The usage object found under ``usage_key`` (anything else: empty)."""

    @abstractmethod
    def with_model(self, body: Json, model: str) -> Json:
        """A same-protocol request naming the upstream's model wherever the body names one."""

    def base64(self, body: Json) -> bool:
        """Whether the caller asked for its vectors in base64."""
        return False

    def model_entry(self, entry: Json) -> Json:
        """A listing entry (``Codec.model_entry``) of an embedding model."""
        return entry


def embedder(codec: Codec) -> Embedder:
    """``codec``'s embedder; a 400 for a protocol without embeddings endpoints."""
    if codec.embedder is None:
        raise BadRequest(f"The {codec.name} protocol has no embeddings endpoint.")
    return codec.embedder


def meta(codec: Codec, kind: Kind, body: Json, model: str) -> EmbedMeta:
    """What the answer to the caller's request ``body`` needs (a 400 for a body that is no request)."""
    e = embedder(codec)
    req = e.decode_request(body, kind)
    return EmbedMeta(model, kind, len(req.inputs), req.estimate(), e.base64(body))


def translate_request(client: Codec, upstream: Codec, body: Json, kind: Kind, *, upstream_model: str) -> Json:
    """The caller's embeddings request as ``upstream`` takes it (renamed only, for the same protocol)."""
    if client is upstream:
        return embedder(upstream).with_model(body, upstream_model)
    return embedder(upstream).encode_request(embedder(client).decode_request(body, kind), upstream_model, kind)


def positive(v: Any, name: str) -> int | None:
    """An optional positive integer field (``dimensions``, ``outputDimensionality``)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise BadRequest(f"'{name}' must be a positive integer.", param=name)
    return v


def one_dimension(inputs: tuple[EmbedInput, ...]) -> int | None:
    """The output size all inputs ask for (None: the model's own); a 400 when they differ."""
    asked = {i.dimensions for i in inputs}
    if len(asked) > 1:
        raise BadRequest("Every input must ask for the same output dimensionality for a model of another "
                         "protocol, which takes one value per request.", param="outputDimensionality")
    return asked.pop() if asked else None
