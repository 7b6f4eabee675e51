"""Embeddings, as api.openai.com and generativelanguage.googleapis.com send them.

    POST /v1/embeddings                                 OpenAI
        {model, input, dimensions?, encoding_format?, user?}
        -> {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...] | "<base64>"}],
            "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}
    POST /v1beta/models/{m}:embedContent                Gemini, one content
        {content: {parts: [{text}]}, taskType?, title?, outputDimensionality?} -> {"embedding": {"values": [...]}}
    POST /v1beta/models/{m}:batchEmbedContents          Gemini, up to 100
        {requests: [{model: "models/{m}", content, ...}]} -> {"embeddings": [{"values": [...]}]}

Vectors are deterministic: the same text (and size) always gives the same vector, different texts
different ones, so a test can check which input a vector belongs to (``vector``). OpenAI's are unit
length at any ``dimensions`` (float32, base64 of little-endian float32 when asked); Gemini's are cut to
``outputDimensionality`` from the end, as Google documents, and not renormalised. Gemini's answers carry
no usage; OpenAI's prompt tokens are the inputs' words (token-id inputs: one a token), or a scripted
``Reply.usage.input``. Errors, timing and raw bodies are scripted like every other endpoint's; what the
fake refuses on its own (an empty input, a batch over 100, a request naming another model than the
URL's) gets a 400 in the provider's shape with the fake's wording.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from fakes.codec import Answer, BadRequest, Call, Route, json_object, words
from fakes.gemini import GeminiCodec
from fakes.openai import OpenAICodec
from fakes.recording import RecordedRequest

OPENAI_DIMENSIONS = 1536  # text-embedding-3-small's
GEMINI_DIMENSIONS = 3072  # gemini-embedding-001's
GEMINI_BATCH_MAX = 100


def vector(text: str, size: int, *, normalise: bool = True, full: int | None = None) -> list[float]:
    """The fake's embedding of ``text``: ``full`` (default ``size``) unit-length float32 values from a seed
    of the text, the first ``size`` of them kept (renormalised if ``normalise``)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(full or size)]
    norm = math.sqrt(sum(v * v for v in values))
    kept = [v / norm for v in values[:size]]
    if normalise and size != len(values):
        cut = math.sqrt(sum(v * v for v in kept)) or 1.0
        kept = [v / cut for v in kept]
    return array("f", kept).tolist()  # float32, as both providers compute them


@dataclass(frozen=True, slots=True)
class EmbedCall(Call):
    """An embeddings request: its inputs (text; token ids as their decimal text) and options."""

    inputs: tuple[str, ...] = ()
    tokens: int = 0  # prompt tokens of the inputs
    dimensions: tuple[int | None, ...] = ()  # per input (OpenAI: one for all)
    base64: bool = False
    single: bool = False  # Gemini :embedContent

    @property
    def prompt_tokens(self) -> int:
        return self.tokens


def _f32_base64(values: list[float]) -> str:
    a = array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode()


class OpenAIEmbeddings(OpenAICodec):
    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter")
        raw = body.get("input")
        items = raw if isinstance(raw, list) and raw and not all(isinstance(t, int) for t in raw) else [raw]
        inputs, tokens = [], 0
        for item in items:
            if isinstance(item, str) and item:
                inputs.append(item)
                tokens += max(1, words(item))
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                inputs.append(" ".join(map(str, item)))
                tokens += len(item)
            else:
                raise BadRequest("'$.input' is invalid. Please check the API reference: "
                                 "https://platform.openai.com/docs/api-reference.")
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or dims < 1):
            raise BadRequest(f"Invalid value for 'dimensions' = {dims}. Must be a positive integer.")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise BadRequest(f"Invalid value for 'encoding_format' = {fmt}. Supported values are: 'float' and "
                             "'base64'.")
        return EmbedCall(route.kind, model, prompt=" ".join(inputs), inputs=tuple(inputs), tokens=tokens,
                         dimensions=(dims,) * len(inputs), base64=fmt == "base64")

    def complete(self, call: Call, answer: Answer) -> bytes:
        assert isinstance(call, EmbedCall)
        data = []
        for i, (text, dims) in enumerate(zip(call.inputs, call.dimensions, strict=True)):
            v = vector(text, dims or OPENAI_DIMENSIONS, full=OPENAI_DIMENSIONS)
            data.append({"object": "embedding", "index": i, "embedding": _f32_base64(v) if call.base64 else v})
        n = answer.usage.prompt_total
        return orjson.dumps({"object": "list", "data": data, "model": call.model,
                             "usage": {"prompt_tokens": n, "total_tokens": n}})


class GeminiEmbeddings(GeminiCodec):
    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        model = route.model or ""
        single = request.path.endswith(":embedContent")
        if single:
            requests = [body]
        else:
            raw = body.get("requests")
            if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
                raise BadRequest("* BatchEmbedContentsRequest.requests: contents is not specified")
            if len(raw) > GEMINI_BATCH_MAX:
                raise BadRequest(f"* BatchEmbedContentsRequest.requests: at most {GEMINI_BATCH_MAX} requests "
                                 "can be in one batch.")
            requests = raw
        inputs: list[str] = []
        dims: list[int | None] = []
        for n, r in enumerate(requests):
            where = "EmbedContentRequest" if single else f"BatchEmbedContentsRequest.requests[{n}]"
            if not single and r.get("model") != f"models/{model}":
                raise BadRequest(f"* {where}.model: the model must be the one in the URL (models/{model}).")
            inputs.append(_text(r.get("content"), where))
            d = r.get("outputDimensionality", r.get("output_dimensionality"))
            dims.append(d if isinstance(d, int) and d > 0 else None)
        return EmbedCall(route.kind, model, prompt=" ".join(inputs), inputs=tuple(inputs),
                         tokens=sum(max(1, words(t)) for t in inputs), dimensions=tuple(dims), single=single)

    def complete(self, call: Call, answer: Answer) -> bytes:
        assert isinstance(call, EmbedCall)
        values = [{"values": vector(t, d or GEMINI_DIMENSIONS, normalise=False, full=GEMINI_DIMENSIONS)}
                  for t, d in zip(call.inputs, call.dimensions, strict=True)]
        return orjson.dumps({"embedding": values[0]} if call.single else {"embeddings": values})


def _text(content: Any, where: str) -> str:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"* {where}.content: contents is not specified")
    texts = [str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p]
    if not any(texts):
        raise BadRequest(f"* {where}.content.parts: the text to embed is empty")
    return "\n".join(texts)


OPENAI = OpenAIEmbeddings()
GEMINI = GeminiEmbeddings()
