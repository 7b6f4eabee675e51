"""Which response handler a request gets, decided when the response starts.

Same protocol (or an error Envoy made up, already in the caller's shape): pass
through and read usage. Another protocol: translate the stream or body, or the
error body, into the caller's protocol. Every handler has the same small face:
``feed(chunk) -> bytes | None`` (None: the chunk goes on unchanged), ``flush()``,
``abort(err)`` (the gateway's own error, in band, framed after what was sent), and
``usage``, ``finish``, ``complete`` for the metering event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol as TypingProtocol

import structlog

from core.usage import Usage
from translator.errors import BadRequest, UpstreamError, UserFacingError
from translator.flavours import Reframer
from translator.passthrough import Passthrough
from translator.protocols.base import Codec
from translator.protocols.convert import (
    CodecRef,
    codec,
    response_translator,
    translate_count_response,
    translate_error,
)


class ResponseHandler(TypingProtocol):
    @property
    def usage(self) -> Usage: ...
    @property
    def finish(self) -> str | None: ...
    @property
    def complete(self) -> bool: ...

    def feed(self, chunk: bytes) -> bytes | None: ...
    def flush(self) -> bytes | None: ...
    def abort(self, err: UserFacingError) -> bytes: ...


log = structlog.get_logger("tokengate.response")
# BadRequest too: the readers' shape checks (ir.as_dict …) say "bad request", but here the upstream sent it
_UNREADABLE = (TypeError, AttributeError, KeyError, ValueError, IndexError, BadRequest)


class _Wrapping:
    """A handler around another: what the answer meant, and an error added in band, are the inner one's."""

    def __init__(self, inner: ResponseHandler) -> None:
        self._inner = inner

    @property
    def usage(self) -> Usage:
        return self._inner.usage

    @property
    def finish(self) -> str | None:
        return self._inner.finish

    @property
    def complete(self) -> bool:
        return self._inner.complete

    def abort(self, err: UserFacingError) -> bytes:
        return self._inner.abort(err)


class Guarded(_Wrapping):
    """Any handler, with an upstream answer it cannot read (a field of the wrong type, say) turned
    into the upstream error it is (502, in band once streaming), never the gateway's own 500."""

    def __repr__(self) -> str:
        return f"Guarded({self._inner!r})"

    def feed(self, chunk: bytes) -> bytes | None:
        try:
            return self._inner.feed(chunk)
        except _UNREADABLE as exc:
            raise self._unreadable(exc) from exc

    def flush(self) -> bytes | None:
        try:
            return self._inner.flush()
        except _UNREADABLE as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> UpstreamError:
        log.warning("upstream_response_unreadable", handler=repr(self._inner), error=repr(exc))
        return UpstreamError("The upstream sent a response the gateway could not read.")


class Reframed(_Wrapping):
    """Any handler, fed the answer in its protocol's own wire form: a provider that frames the protocol its own way
    (``Flavour.reframe``: Bedrock's InvokeModel) is unwrapped first. The unwrapped bytes are what the client gets
    when the handler passes them on unchanged."""

    def __init__(self, reframer: Reframer, inner: ResponseHandler) -> None:
        super().__init__(inner)
        self._rf = reframer

    def __repr__(self) -> str:
        return f"Reframed({self._rf!r}, {self._inner!r})"

    def feed(self, chunk: bytes) -> bytes:
        data = self._rf.feed(chunk)
        out = self._inner.feed(data)
        return data if out is None else out

    def flush(self) -> bytes:
        data = self._rf.flush()
        out = self._inner.feed(data) if data else b""
        return (data if out is None else out) + (self._inner.flush() or b"")


class WholeBodyTranslation:
    """A small body from an upstream of another protocol (an error, a token count),
    collected and rewritten whole at the end."""

    usage = Usage()
    finish = None
    complete = True

    def __init__(self, rewrite: Callable[[bytes], bytes], what: str, abort: Callable[[UserFacingError], bytes]) -> None:
        self._rewrite, self._what, self.abort = rewrite, what, abort
        self._buf = bytearray()

    def __repr__(self) -> str:
        return f"WholeBodyTranslation({self._what}, {len(self._buf)}B)"

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        return b""

    def flush(self) -> bytes:
        return self._rewrite(bytes(self._buf))


def handler_for(
    client: CodecRef,
    upstream: CodecRef | None,
    status: int,
    *,
    stream: bool,
    sse: bool,
    include_usage: bool,
    model: str,
    tool_names: tuple[str, ...],
    count: bool = False,
    upstream_model: str | None = None,
    respell_errors: bool = False,
    reframer: Reframer | None = None,
) -> ResponseHandler:
    """``model``: the name the client asked for; ``upstream_model``: the deployment's, when known;
    ``respell_errors``: the provider's errors may not be in its protocol's shape (``Flavour.respells_errors``),
    so a same-protocol error is rewritten too; ``reframer``: the provider's framing of the protocol, undone first
    (``Flavour.reframe``)."""
    down = codec(client)
    inner = _handler(down, codec(upstream) if upstream is not None else down, status, stream=stream,
                     sse=sse, include_usage=include_usage, model=model, tool_names=tool_names, count=count,
                     upstream_model=upstream_model, respell_errors=respell_errors)
    return Guarded(inner if reframer is None else Reframed(reframer, inner))


def _handler(client: Codec, upstream: Codec, status: int, *, stream: bool, sse: bool,
             include_usage: bool, model: str, tool_names: tuple[str, ...], count: bool,
             upstream_model: str | None, respell_errors: bool) -> ResponseHandler:
    streaming = stream and status == 200
    if upstream is client and not (respell_errors and status >= 400):
        renamed = model if upstream_model is not None and upstream_model != model else None
        return Passthrough(client, stream=streaming, sse=sse, strip_usage_chunk=streaming and not include_usage,
                           model=renamed)
    if status >= 400:
        return WholeBodyTranslation(lambda b: translate_error(client, upstream, status, b)[1], f"{status} error",
                                    client.error_event)
    if count:
        return WholeBodyTranslation(lambda b: translate_count_response(client, upstream, b), "token count",
                                    client.error_event)
    return response_translator(
        client, upstream, stream=streaming, client_model=model, include_usage=include_usage,
        sse=sse, tool_names=tool_names)
