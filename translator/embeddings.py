"""Embeddings requests on the request path: which models serve them, and their answers.

The router asks ``check_kind`` once the model is known (a chat model asked for embeddings, or an
embedding model asked to chat or count, is a 400 in the caller's shape), keeps the ``EmbedMeta`` of
the request (``protocols.embeddings.meta``: what the answer needs, and the inputs' token estimate), and
picks the answer's handler here, not in ``responses.handler_for``: an embeddings answer is one JSON body,
never a stream, and needs none of the chat handlers' state.

    same protocol        ``EmbedPassthrough``: the bytes go on untouched; usage is read from the
                         body's tail (both protocols put it last, after the vectors), so a large
                         answer is never parsed; no usage (Gemini) -> the router bills the estimate
    another protocol     ``EmbedTranslation``: the whole body, decoded and encoded for the caller
    an upstream error    the error body in the caller's shape (``responses.WholeBodyTranslation``)
"""

from __future__ import annotations

from typing import Any

import orjson

from core.config import Model
from core.usage import Usage
from translator.errors import BadRequest, UpstreamError, UserFacingError
from translator.protocols.base import Codec, Kind
from translator.protocols.convert import translate_error
from translator.protocols.embeddings import Embedder, EmbedMeta, embedder
from translator.responses import Guarded, ResponseHandler, WholeBodyTranslation

TAIL = 4096  # bytes of a passed-through answer kept for its usage: usage is the answer's last member


def check_kind(kind: Kind, model: Model, asked: str) -> None:
    """A 400 for a model asked for what it does not do."""
    embedding = model.kind == "embedding"
    if kind.embeds and not embedding:
        raise BadRequest(f"The model '{asked}' is not an embedding model: it cannot create embeddings.",
                         param="model")
    if embedding and not kind.embeds:
        raise BadRequest(f"The model '{asked}' is an embedding model: ask it for embeddings "
                         "(POST /v1/embeddings, or Gemini's :embedContent / :batchEmbedContents).", param="model")


def handler(client: Codec, upstream: Codec | None, status: int, meta: EmbedMeta) -> ResponseHandler:
    """The handler of an embeddings answer from ``upstream`` (None: Envoy's own reply, in the caller's shape)."""
    up = upstream if upstream is not None else client
    if up is client:
        return Guarded(EmbedPassthrough(embedder(client), ok=status == 200))
    if status >= 400:
        return Guarded(WholeBodyTranslation(lambda b: translate_error(client, up, status, b)[1], f"{status} error",
                                            client.error_event))
    return Guarded(EmbedTranslation(embedder(up), embedder(client), meta, client.error_event))


class EmbedPassthrough:
    """A same-protocol answer, passed on untouched; its usage read from the tail of the body."""

    finish = None

    def __init__(self, embedder: Embedder, *, ok: bool) -> None:
        self._e, self._ok = embedder, ok
        self._tail = b""
        self.usage = Usage()
        self.complete = False

    def __repr__(self) -> str:
        return f"EmbedPassthrough(ok={self._ok}, complete={self.complete})"

    def feed(self, chunk: bytes) -> bytes | None:
        self._tail = (self._tail + chunk)[-TAIL:]
        return None

    def flush(self) -> bytes | None:
        self.complete = True
        if self._ok:
            self.usage = self._e.read_usage(_member(self._tail, self._e.usage_key))
        return None

    def abort(self, err: UserFacingError) -> bytes:
        return b""  # never asked: a whole body has nothing after it to add an error to


class EmbedTranslation:
    """Another protocol's answer, collected and rewritten whole at the end."""

    finish = None

    def __init__(self, up: Embedder, down: Embedder, meta: EmbedMeta, abort: Any) -> None:
        self._up, self._down, self._meta, self.abort = up, down, meta, abort
        self._buf = bytearray()
        self.usage = Usage()
        self.complete = False

    def __repr__(self) -> str:
        return f"EmbedTranslation({self._meta.inputs} inputs, {len(self._buf)}B, complete={self.complete})"

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        return b""

    def flush(self) -> bytes:
        doc = orjson.loads(self._buf)
        if not isinstance(doc, dict):
            raise UpstreamError("The upstream sent an embeddings answer that is not a JSON object.")
        resp = self._up.decode_response(doc)
        if len(resp.vectors) != self._meta.inputs:
            raise UpstreamError(f"The upstream sent {len(resp.vectors)} embeddings for {self._meta.inputs} inputs.")
        self.usage, self.complete = resp.usage, True
        return orjson.dumps(self._down.encode_response(resp, self._meta))


def _member(tail: bytes, key: bytes) -> Any:
    """The JSON object after the last ``key`` in ``tail`` (None when there is none, or it is cut)."""
    at = tail.rfind(key)
    start = tail.find(b"{", at) if at >= 0 else -1
    if start < 0:
        return None
    depth, quoted, escaped = 0, False, False
    for n in range(start, len(tail)):
        c = tail[n]
        if quoted:
            quoted = not (c == _QUOTE and not escaped)
            escaped = c == _BACKSLASH and not escaped
        elif c == _QUOTE:
            quoted = True
        elif c == _OPEN:
            depth += 1
        elif c == _CLOSE:
            depth -= 1
            if depth == 0:
                try:
                    return orjson.loads(tail[start:n + 1])
                except orjson.JSONDecodeError:
                    return None
    return None


_QUOTE, _BACKSLASH, _OPEN, _CLOSE = b'"\\{}'
