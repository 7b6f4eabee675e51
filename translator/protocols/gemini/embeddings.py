"""Gemini ``:embedContent`` and ``:batchEmbedContents`` <-> the embeddings representation.

``POST /v1beta/models/{model}:embedContent``: ``{content: {parts: [{text}]}, taskType?, title?,
outputDimensionality?}`` -> ``{embedding: {values: [...]}}``.
``POST /v1beta/models/{model}:batchEmbedContents``: ``{requests: [{model: "models/{model}", content,
taskType?, title?, outputDimensionality?}]}`` -> ``{embeddings: [{values: [...]}]}`` in the requests'
order; ``google-genai``'s ``models.embed_content`` always calls this one on the Gemini Developer API,
with one request per content. Input accepts camelCase and snake_case (and the options nested in
``embedContentConfig``, as Vertex spells them). The answers carry no usage (a ``usageMetadata`` is read
when there is one).

Rules:
- decode: a content's text parts are one input, joined by a newline; parts that are not text are
  counted, so that only a Gemini upstream gets them (passed through untouched).
- encode (Gemini upstream of another protocol's caller): ``batchEmbedContents``, one request per input,
  each naming the model, at most 100 (Gemini's limit; more is a 400 before the upstream is asked);
  token-id inputs are a 400 (Gemini embeds text only); OpenAI's ``dimensions`` is each request's
  ``outputDimensionality``; ``user`` is dropped.
- answer (Gemini caller of another protocol's model): ``embedding`` for ``:embedContent``,
  ``embeddings`` for ``:batchEmbedContents``; no usage, as Gemini sends none.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage
from translator.errors import BadRequest
from translator.protocols.base import Json, Kind, dicts
from translator.protocols.embeddings import Embedder, EmbedInput, EmbedMeta, EmbedRequest, EmbedResponse, positive
from translator.protocols.gemini import usage
from translator.protocols.gemini.request import field

METHODS = {Kind.EMBED: "embedContent", Kind.EMBED_BATCH: "batchEmbedContents"}
MAX_BATCH = 100  # the most requests Gemini takes in one batchEmbedContents


def _options(req: Json) -> Json:
    nested = field(req, "embedContentConfig")
    return {**nested, **req} if isinstance(nested, dict) else req


def _input(req: Json, where: str) -> EmbedInput:
    content = req.get("content")
    if not isinstance(content, dict):
        raise BadRequest(f"{where}content: the content to embed is required.", param="content")
    parts = dicts(content.get("parts"))
    texts = [str(p["text"]) for p in parts if "text" in p]
    if not parts:
        raise BadRequest(f"{where}content.parts: at least one part is required.", param="content")
    opts = _options(req)
    task, title = field(opts, "taskType"), opts.get("title")
    return EmbedInput(text="\n".join(texts), other_parts=len(parts) - len(texts),
                      task_type=task if isinstance(task, str) else None,
                      title=title if isinstance(title, str) else None,
                      dimensions=positive(field(opts, "outputDimensionality"), "outputDimensionality"))


def _values(e: Any) -> list[float]:
    values = e.get("values") if isinstance(e, dict) else None
    return values if isinstance(values, list) else []


def _model(name: str) -> str:
    return name if name.startswith(("models/", "tunedModels/")) else f"models/{name}"


class GeminiEmbedder(Embedder):
    usage_key = b'"usageMetadata"'

    def decode_request(self, body: Json, kind: Kind) -> EmbedRequest:
        if kind is Kind.EMBED:
            return EmbedRequest((_input(body, ""),))
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise BadRequest("requests: a list of at least one request is required.", param="requests")
        return EmbedRequest(tuple(_input(r, f"requests[{n}].") for n, r in enumerate(requests)))

    def encode_request(self, req: EmbedRequest, model: str, kind: Kind) -> Json:
        if len(req.inputs) > MAX_BATCH:
            raise BadRequest(f"This model embeds at most {MAX_BATCH} inputs in one request; "
                             f"this one has {len(req.inputs)}.", param="input")
        out = [self._request(i, _model(model)) for i in req.inputs]
        return out[0] if kind is Kind.EMBED else {"requests": out}

    @staticmethod
    def _request(i: EmbedInput, model: str) -> Json:
        if i.tokens is not None:
            raise BadRequest("Token-id inputs cannot be embedded by this model: send text.", param="input")
        out: Json = {"model": model, "content": {"parts": [{"text": i.text or ""}]}}
        if i.task_type is not None:
            out["taskType"] = i.task_type
        if i.title is not None:
            out["title"] = i.title
        if i.dimensions is not None:
            out["outputDimensionality"] = i.dimensions
        return out

    def decode_response(self, body: Json) -> EmbedResponse:
        if "embedding" in body:
            vectors = [_values(body["embedding"])]
        else:
            vectors = [_values(e) for e in body.get("embeddings") or ()]
        return EmbedResponse(vectors, usage.read(body.get("usageMetadata")))

    def encode_response(self, resp: EmbedResponse, meta: EmbedMeta) -> Json:
        if meta.kind is Kind.EMBED:
            return {"embedding": {"values": resp.vectors[0]}}
        return {"embeddings": [{"values": v} for v in resp.vectors]}

    def read_usage(self, raw: Any) -> Usage:
        return usage.read(raw)

    def with_model(self, body: Json, model: str) -> Json:
        name = _model(model)
        out = {**body, "model": name} if "model" in body else dict(body)
        if isinstance(body.get("requests"), list):
            out["requests"] = [{**r, "model": name} if isinstance(r, dict) else r for r in body["requests"]]
        return out

    def model_entry(self, entry: Json) -> Json:
        return {**entry, "supportedGenerationMethods": list(METHODS.values())}


EMBEDDER = GeminiEmbedder()
