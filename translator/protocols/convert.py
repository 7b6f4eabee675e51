"""The facade the gateway calls: requests, responses, streams and errors between protocols.

Every conversion goes client codec -> IR -> upstream codec (and back), picked from
``CODECS``; an unknown protocol raises ``GatewayError``, never falls back to a
default. Same-protocol traffic works too, but the gateway normally passes it through.

Tool names invalid for the upstream are replaced deterministically (``Codec.tool_name``);
pass the client's tool names (``client_tool_names``) to ``response_translator`` to map
them back in the response.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any
from typing import Protocol as TypingProtocol

import orjson

from core.protocols import Protocol
from core.usage import Usage
from translator import ir
from translator.errors import GatewayError, UpstreamError, UserFacingError
from translator.protocols import anthropic as _anthropic
from translator.protocols import gemini as _gemini
from translator.protocols import openai as _openai

CODECS: dict[Protocol, ir.Codec] = {
    Protocol.OPENAI: _openai.CODEC,
    Protocol.ANTHROPIC: _anthropic.CODEC,
    Protocol.GEMINI: _gemini.CODEC,
}

# Where the client's protocol spells a kind with another status (docs/protocols.md).
_CLIENT_STATUS: dict[tuple[Protocol, str], int] = {
    (Protocol.OPENAI, "overloaded"): 503,
    (Protocol.ANTHROPIC, "overloaded"): 529,
    (Protocol.GEMINI, "overloaded"): 503,
    (Protocol.GEMINI, "request_too_large"): 400,
}
_OPENAI_CODE: dict[str, str] = {"authentication": "invalid_api_key", "not_found": "model_not_found"}


def codec(protocol: Protocol) -> ir.Codec:
    try:
        return CODECS[protocol]
    except KeyError:
        raise GatewayError(f"no codec for protocol {protocol!r}") from None


def translate_request(client: Protocol, upstream: Protocol, body: dict[str, Any], *,
                      upstream_model: str, stream: bool) -> dict[str, Any]:
    """The client's parsed body as the upstream's body; raises ``BadRequest`` when it cannot."""
    req = codec(client).decode_request(body)
    target = codec(upstream)
    ir.rename_tools(req, target.tool_name)
    return target.encode_request(req, upstream_model, stream)


def client_tool_names(client: Protocol, body: dict[str, Any]) -> tuple[str, ...]:
    """The tool names a client declared, for mapping shortened names back."""
    def dicts(v: Any) -> list[dict[str, Any]]:
        return [t for t in v if isinstance(t, dict)] if isinstance(v, list) else []

    tools = dicts(body.get("tools"))
    if client is Protocol.OPENAI:
        return tuple(str(f.get("name")) for t in tools if isinstance(f := t.get("function"), dict))
    if client is Protocol.ANTHROPIC:
        return tuple(str(t.get("name")) for t in tools)
    decls = [d for t in tools for d in dicts(t.get("functionDeclarations") or t.get("function_declarations"))]
    return tuple(str(d.get("name")) for d in decls)


def for_client(err: UserFacingError, client: Protocol) -> UserFacingError:
    """Adjust an upstream error's status and code to how ``client`` spells its kind."""
    err.status = _CLIENT_STATUS.get((client, err.kind), err.status)
    if client is Protocol.OPENAI and err.code is None:
        err.code = _OPENAI_CODE.get(err.kind)
    return err


def client_status(client: Protocol, status: int) -> int:
    """The HTTP status an upstream error gets in the client's protocol (docs/protocols.md)."""
    return _CLIENT_STATUS.get((client, ir.kind_for_status(status)), status) if status >= 400 else status


def translate_error(client: Protocol, upstream: Protocol, status: int,
                    body: bytes) -> tuple[int, bytes]:
    """An upstream error response in the client's error shape (message text kept)."""
    err = for_client(codec(upstream).decode_error(status, body), client)
    return err.status, orjson.dumps(err.body(client))


class ResponseTranslator(TypingProtocol):
    usage: Usage
    finish: str | None

    @property
    def complete(self) -> bool: ...

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def response_translator(client: Protocol, upstream: Protocol, *, stream: bool, client_model: str,
                        include_usage: bool, gemini_sse: bool = True,
                        tool_names: Iterable[str] = (),
                        created: int | None = None) -> ResponseTranslator:
    """Translates the upstream's 200 body; ``finish`` is the IR stop reason once known."""
    meta = ir.ClientMeta(client_model, int(time.time()) if created is None else created,
                         include_usage, gemini_sse)
    up, down = codec(upstream), codec(client)
    back = {up.tool_name(n): n for n in tool_names}
    if stream:
        return _Stream(client, up.stream_decoder(), down.stream_encoder(meta), back)
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

    def __init__(self, up: ir.Codec, down: ir.Codec, meta: ir.ClientMeta,
                 back: dict[str, str]) -> None:
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

    def __init__(self, client: Protocol, dec: ir.StreamDecoder, enc: ir.StreamEncoder,
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
                e = ir.Failed(for_client(e.error, self._client))
            out.append(e)
        return out


# --- token counting across protocols -------------------------------------------------
# Anthropic and Gemini both count tokens upstream; OpenAI has no count endpoint, so a
# count for a model behind it is estimated locally (``estimate_count``) and flagged.

_ANT_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def translate_count_request(client: Protocol, upstream: Protocol, body: dict[str, Any], *,
                            upstream_model: str) -> dict[str, Any]:
    """A count-tokens request for an upstream of another protocol (Anthropic <-> Gemini)."""
    if client is Protocol.GEMINI and isinstance(body.get("generateContentRequest"), dict):
        body = body["generateContentRequest"]
    out = translate_request(client, upstream, body, upstream_model=upstream_model, stream=False)
    if upstream is Protocol.ANTHROPIC:
        return {k: v for k, v in out.items() if k in _ANT_COUNT_FIELDS}
    if upstream is Protocol.GEMINI:
        return {"generateContentRequest": {"model": f"models/{upstream_model}", **out}}
    raise GatewayError(f"{upstream.value} has no token-count endpoint")


def count_body(client: Protocol, tokens: int) -> dict[str, Any]:
    """A token count in the client's response shape."""
    if client is Protocol.GEMINI:
        return {"totalTokens": tokens}
    return {"input_tokens": tokens}


def translate_count_response(client: Protocol, upstream: Protocol, body: bytes) -> bytes:
    data = ir.parse_json(body)
    if not isinstance(data, dict):
        raise UpstreamError("upstream sent a token count that is not a JSON object")
    n = data.get("totalTokens") if upstream is Protocol.GEMINI else data.get("input_tokens")
    if not isinstance(n, int):
        raise UpstreamError("upstream sent a token count without a number")
    return orjson.dumps(count_body(client, n))


def estimate_count(body: dict[str, Any]) -> int:
    """A rough local token count (about 4 characters a token over every string in the request)."""
    def chars(v: Any) -> int:
        if isinstance(v, str):
            return len(v)
        if isinstance(v, dict):
            return sum(chars(x) for k, x in v.items() if k != "model")
        if isinstance(v, list):
            return sum(chars(x) for x in v)
        return 0
    return max(1, -(-chars(body) // 4))
