"""OpenAI ``POST /v1/embeddings`` <-> the embeddings representation (``protocols/embeddings.py``).

Request: ``{model, input, dimensions?, encoding_format?, user?}``; ``input`` is a string, an array of
strings, an array of token ids or an array of token-id arrays (none empty). Answer:
``{object: "list", data: [{object: "embedding", index, embedding}], model, usage: {prompt_tokens,
total_tokens}}``; ``embedding`` is an array of floats, or with ``encoding_format: "base64"`` the base64
of its little-endian float32 bytes (the ``openai`` SDKs ask for base64 unless told otherwise and decode
it themselves).

Rules:
- decode: ``dimensions`` applies to every input; ``user`` is kept for an OpenAI upstream only.
- encode (OpenAI upstream of another protocol's caller): one ``dimensions`` for the request (inputs
  asking for different ones are a 400); Gemini's ``taskType`` and ``title`` are dropped; a Gemini part
  that is not text is a 400; floats are asked for (``encoding_format: "float"``), so the numbers reach a
  Gemini caller exactly as OpenAI wrote them.
- answer (OpenAI caller of another protocol's model): vectors in the caller's ``encoding_format``;
  ``usage`` is the upstream's, or the gateway's estimate when it reported none.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from core.usage import Usage
from translator.errors import BadRequest, UpstreamError
from translator.protocols.base import Json, Kind, dicts
from translator.protocols.embeddings import (
    Embedder,
    EmbedInput,
    EmbedMeta,
    EmbedRequest,
    EmbedResponse,
    one_dimension,
    positive,
)
from translator.protocols.openai import usage

_FORMATS = ("float", "base64")
_INPUT = ("'input' must be a non-empty string, an array of strings, an array of token ids or an array of "
          "token-id arrays.")


def _tokens(v: Any) -> tuple[int, ...] | None:
    if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in v):
        return tuple(v)
    return None


def _inputs(raw: Any) -> list[EmbedInput]:
    if isinstance(raw, str) and raw:
        return [EmbedInput(text=raw)]
    if (one := _tokens(raw)) is not None:
        return [EmbedInput(tokens=one)]
    if not isinstance(raw, list) or not raw:
        raise BadRequest(_INPUT, param="input")
    out = []
    for item in raw:
        if isinstance(item, str) and item:
            out.append(EmbedInput(text=item))
        elif (ids := _tokens(item)) is not None:
            out.append(EmbedInput(tokens=ids))
        else:
            raise BadRequest(_INPUT, param="input")
    return out


def _vector(v: Any) -> list[float]:
    """An answer's ``embedding``: floats, or base64 of little-endian float32."""
    if isinstance(v, str):
        a = array("f", base64.b64decode(v))
        if sys.byteorder == "big":
            a.byteswap()
        return a.tolist()
    if isinstance(v, list):
        return v
    raise UpstreamError("The upstream sent an embedding that is neither floats nor base64.")


def _index(d: Json) -> int:
    i = d.get("index")
    return i if isinstance(i, int) else 0


def _base64(v: list[float]) -> str:
    a = array("f", v)
    if sys.byteorder == "big":
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode()


class OpenAIEmbedder(Embedder):
    def decode_request(self, body: Json, kind: Kind) -> EmbedRequest:
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in _FORMATS:
            raise BadRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
        dims = positive(body.get("dimensions"), "dimensions")
        user = body.get("user")
        inputs = tuple(EmbedInput(text=i.text, tokens=i.tokens, dimensions=dims) for i in _inputs(body.get("input")))
        return EmbedRequest(inputs, user=user if isinstance(user, str) else None)

    def encode_request(self, req: EmbedRequest, model: str, kind: Kind) -> Json:
        items: list[Any] = []
        for i in req.inputs:
            if i.other_parts:
                raise BadRequest("Only text can be embedded by this model: send parts with text only.",
                                 param="content")
            items.append(list(i.tokens) if i.tokens is not None else i.text or "")
        out: Json = {"model": model, "input": items, "encoding_format": "float"}
        if (dims := one_dimension(req.inputs)) is not None:
            out["dimensions"] = dims
        if req.user is not None:
            out["user"] = req.user
        return out

    def decode_response(self, body: Json) -> EmbedResponse:
        data = sorted(dicts(body.get("data")), key=_index)
        return EmbedResponse([_vector(d.get("embedding")) for d in data], usage.read(body.get("usage")))

    def encode_response(self, resp: EmbedResponse, meta: EmbedMeta) -> Json:
        prompt = resp.usage.prompt_total if resp.usage.input is not None else meta.prompt_estimate
        vector = _base64 if meta.base64 else (lambda v: v)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": n, "embedding": vector(v)} for n, v in enumerate(resp.vectors)],
            "model": meta.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def read_usage(self, raw: Any) -> Usage:
        return usage.read(raw)

    def with_model(self, body: Json, model: str) -> Json:
        return {**body, "model": model}

    def base64(self, body: Json) -> bool:
        return body.get("encoding_format") == "base64"


EMBEDDER = OpenAIEmbedder()
