"""The facade the gateway calls: requests, responses, streams and errors between protocols.

Every conversion goes client codec -> IR -> upstream codec (and back). A protocol is given
as its codec or its name (looked up in the registry, which raises for a name it does not
know, never falls back to a default). Same-protocol traffic works too, but the gateway
normally passes it through.

Tool names invalid for the upstream are replaced deterministically (``Codec.tool_name``);
pass the client's tool names (``client_tool_names``) to ``response_translator`` to map
them back in the response.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection
from typing import Any
from typing import Protocol as TypingProtocol

import orjson

from core.usage import Usage
from translator import ir
from translator.errors import UpstreamError, UserFacingError
from translator.protocols import REGISTRY
from translator.protocols.base import Codec

CodecRef = Codec | str  # a codec, or a protocol's name


def codec(protocol: CodecRef) -> Codec:
    return REGISTRY.get(protocol) if isinstance(protocol, str) else protocol  # str: a cheaper test than an ABC's


def translate_request(client: CodecRef, upstream: CodecRef, body: dict[str, Any], *,
                      upstream_model: str, stream: bool, quirks: Collection[str] = ()) -> dict[str, Any]:
    """The client's parsed body as the upstream's body; raises ``BadRequest`` when it cannot.
    ``quirks``: the upstream provider's (docs/providers.md), for its encoder."""
    req = codec(client).decode_request(body)
    req.quirks = frozenset(quirks)
    target = codec(upstream)
    ir.rename_tools(req, target.tool_name)
    return target.encode_request(req, upstream_model, stream)


def client_tool_names(client: CodecRef, body: dict[str, Any]) -> tuple[str, ...]:
    """The tool names a client declared, for mapping shortened names back."""
    return codec(client).tool_names(body)


def translate_error(client: CodecRef, upstream: CodecRef, status: int,
                    body: bytes) -> tuple[int, bytes]:
    """An upstream error response in the client's error shape (message text kept)."""
    down = codec(client)
    err = down.for_client(codec(upstream).decode_error(status, body))
    return err.status, orjson.dumps(down.error_body(err))


class ResponseTranslator(TypingProtocol):
    usage: Usage
    finish: str | None

    @property
    def complete(self) -> bool: ...

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def abort(self, err: UserFacingError) -> bytes: ...


def response_translator(client: CodecRef, upstream: CodecRef, *, stream: bool, client_model: str,
                        include_usage: bool, sse: bool = True,
                        tool_names: Collection[str] = (),
                        created: int | None = None) -> ResponseTranslator:
    """Translates the upstream's 200 body; ``finish`` is the IR stop reason once known."""
    meta = ir.ClientMeta(client_model, int(time.time()) if created is None else created,
                         include_usage, sse,
                         frozenset(n for n in tool_names if isinstance(n, ir.CustomToolName)))
    up, down = codec(upstream), codec(client)
    back = {up.tool_name(n): n for n in tool_names}
    if stream:
        return _Stream(down, up.stream_decoder(), down.stream_encoder(meta), back)
    return _Whole(up, down, meta, back)


class _Translator:
    usage: Usage
    finish: str | None

    @property
    def complete(self) -> bool:
        """The upstream's answer reached its end (its stop reason was read)."""
        return self.finish is not None


class _Whole(_Translator):
    """Non-stream: collect the body, translate it whole at ``flush``."""

    def __init__(self, up: Codec, down: Codec, meta: ir.ClientMeta,
                 back: dict[str, str]) -> None:
        self.abort = down.error_event
        self._up, self._down, self._meta, self._back = up, down, meta, back
        self._buf = bytearray()
        self._done = False
        self.usage = Usage()
        self.finish: str | None = None

    def __repr__(self) -> str:
        return f"_Whole(buffered={len(self._buf)}B, done={self._done})"

    def feed(self, chunk: bytes) -> bytes:
        if not self._done:
            self._buf += chunk
        return b""

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        data = ir.parse_json(bytes(self._buf))
        if not isinstance(data, dict):
            raise UpstreamError("upstream sent a response body that is not a JSON object")
        resp = self._up.decode_response(data)
        for p in resp.parts:
            if isinstance(p, ir.ToolCall):
                p.name = self._back.get(p.name, p.name)
        self.usage, self.finish = resp.usage, resp.stop.value
        return orjson.dumps(self._down.encode_response(resp, self._meta))


class _Stream(_Translator):
    """Stream: upstream bytes -> IR events -> client bytes, chunk by chunk."""

    def __init__(self, client: Codec, dec: ir.StreamDecoder, enc: ir.StreamEncoder,
                 back: dict[str, str]) -> None:
        self._client, self._dec, self._enc, self._back = client, dec, enc, back
        self._closed = False
        self.usage = Usage()
        self.finish: str | None = None

    def __repr__(self) -> str:
        return f"_Stream({self._dec!r}, {self._enc!r}, closed={self._closed})"

    def feed(self, chunk: bytes) -> bytes:
        if self._closed:
            return b""
        return self._enc.encode(self._seen(self._dec.feed(chunk)))

    def abort(self, err: UserFacingError) -> bytes:
        """``err`` in band, framed by the client's encoder after what it sent (nothing once it ended)."""
        self._closed = True
        return self._enc.encode([ir.Failed(err)])

    def flush(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        return self._enc.encode(self._seen(self._dec.flush())) + self._enc.close()

    def _seen(self, events: list[ir.Event]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for e in events:
            if isinstance(e, ir.UsageSeen):
                self.usage = self.usage.merge(e.usage)
            elif isinstance(e, ir.Finished):
                self.finish = e.stop.value
            elif isinstance(e, ir.ToolStart) and e.name in self._back:
                e = dataclasses.replace(e, name=self._back[e.name])
            elif isinstance(e, ir.Failed):
                e = ir.Failed(self._client.for_client(e.error))
            out.append(e)
        return out


# --- token counting across protocols -------------------------------------------------
# Protocols with a count endpoint count upstream (``Codec.counts_tokens``); a count for a model
# whose upstreams cannot count is estimated locally (``Codec.estimate_prompt``) and flagged.


def translate_count_request(client: CodecRef, upstream: CodecRef, body: dict[str, Any], *,
                            upstream_model: str) -> dict[str, Any]:
    """A count-tokens request for an upstream of another protocol (``GatewayError`` if it cannot count)."""
    down, up = codec(client), codec(upstream)
    req = down.decode_request(down.count_request(body))
    ir.rename_tools(req, up.tool_name)
    return up.encode_count_request(req, upstream_model)


def translate_count_response(client: CodecRef, upstream: CodecRef, body: bytes) -> bytes:
    data = ir.parse_json(body)
    if not isinstance(data, dict):
        raise UpstreamError("upstream sent a token count that is not a JSON object")
    n = codec(upstream).decode_count(data)
    if not isinstance(n, int):
        raise UpstreamError("upstream sent a token count without a number")
    return orjson.dumps(codec(client).encode_count(n))
