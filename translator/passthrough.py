"""Same-protocol responses: pass the upstream's bytes through, read usage on the side.

Nothing is re-serialised. What the answer means (usage, finish, its last event) is
read by the protocol's ``Observer`` (``Codec.observer``); the only changes ever made
are dropping an event the observer strips (OpenAI's usage chunk that tokengate asked
for on a client's behalf, ``stream_options.include_usage``, when the client did not)
and, for a codec that asks (``Codec.renames_model``: Anthropic), the model name in the
stream's first event: the client's, not the deployment's (Claude Code drops the thinking
of an answer whose model is not the one it asked for, and Anthropic then refuses the
tool-use turn). Only the first event is held for that; later chunks pass untouched.

``feed`` returns ``None`` when the chunk goes to the client unchanged (no body
mutation at all, the cheapest answer to Envoy) and bytes when it was rewritten.

A stream sent as one JSON array (Gemini without ``alt=sse``) is read whole at each
chunk that may close it. When it ends without its finish — cut short, or closed early
by the upstream (whose ``]`` is then held back) — or when the gateway fails on it, the
error goes in as the array's last element (``array_error``), so the client still
reads one well-formed array.
"""

from __future__ import annotations

import orjson

from core.usage import Usage
from translator.errors import UserFacingError, cut_short
from translator.protocols.base import Codec
from translator.protocols.convert import CodecRef, codec
from translator.sse import SSEEvent

MAX_OBSERVED_BODY = 16 * 1024 * 1024  # a non-stream body larger than this is not parsed for usage


class Passthrough:
    """Observe (and maybe trim) one same-protocol response."""

    def __init__(self, protocol: CodecRef, *, stream: bool, sse: bool = True,
                 strip_usage_chunk: bool = False, model: str | None = None) -> None:
        """``model``: the name the client asked for, when the deployment's differs."""
        self.codec: Codec = codec(protocol)
        self.stream = stream
        self._obs = self.codec.observer(strip_usage_chunk=strip_usage_chunk and stream)
        self.strip = self._obs.strips
        # Streams in the protocol's framing (SSE); a stream sent as one JSON array (Gemini without alt=sse)
        # is read whole at the end, like a body.
        self._sse = self.codec.stream_frames() if stream and sse else None
        self._body = bytearray()
        self._too_big = False
        self._last = b""  # a JSON-array stream: the last non-blank byte the client got ("" before any)
        self._held = b""  # a JSON-array stream: its closing "]", held while the answer is unfinished
        self._model = model
        # the stream's bytes until its first event is whole, while its model name is to be the client's
        renaming = model is not None and self._sse is not None and self.codec.renames_model and not self.strip
        self._head: bytearray | None = bytearray() if renaming else None

    def __repr__(self) -> str:
        return f"Passthrough({self.codec.name}, stream={self.stream}, {self._obs!r})"

    @property
    def usage(self) -> Usage:
        return self._obs.usage

    @property
    def finish(self) -> str | None:
        return self._obs.finish

    @property
    def complete(self) -> bool:
        """The upstream's own end marker was seen."""
        return self._obs.complete

    def feed(self, chunk: bytes) -> bytes | None:
        if self._sse is None:
            self._keep(chunk)
            if not self.stream:
                return None
            return self._feed_array(chunk)
        events = self._sse.feed(chunk)
        observe = self._obs.event
        if self._head is not None:
            return self._rename(chunk, events)
        if not self.strip:
            for ev in events:
                observe(ev)
            return None
        out = b"".join(ev.raw for ev in events if observe(ev))
        return None if out == chunk else out  # unchanged: no body mutation for Envoy to apply

    def flush(self) -> bytes | None:
        """End of the upstream body: read a buffered body, release held bytes. A stream that
        ended without its protocol's terminal event gets an in-band error, never passes for
        a finished answer."""
        if self._sse is not None:
            held, self._head = bytes(self._head or b""), None
            events = self._sse.flush()
            kept = [ev.raw for ev in events if self._obs.event(ev)]
            tail = held + (b"".join(kept) if self.strip else b"")
            if not self._obs.complete and not self._obs.failed:
                tail += self._error_event(cut_short())
            return tail or (b"" if self.strip else None)
        if not self._too_big and self._body and not self._obs.complete:
            self._read_body(bytes(self._body))
        if self.stream and not self._obs.complete and not self._too_big:
            return self.abort(cut_short())
        return self._held or None

    def abort(self, err: UserFacingError) -> bytes:
        """``err`` in band, after what the client got: an event, or the JSON array's last element."""
        if self._sse is not None or not self.stream:
            return self._error_event(err)
        self._held = b""
        return array_error(self.codec.error_body(err), self._last)

    def _rename(self, chunk: bytes, events: list[SSEEvent]) -> bytes:
        """Hold the stream until its first event is whole; send it with the client's model name."""
        assert self._head is not None and self._model is not None
        self._head += chunk
        for ev in events:
            self._obs.event(ev)
        if not events:
            return b""
        head, self._head = bytes(self._head), None
        first = events[0]
        renamed = self.codec.rename_model(first, self._model) if head.startswith(first.raw) else None
        return head if renamed is None else renamed + head[len(first.raw):]

    def _error_event(self, err: UserFacingError) -> bytes:
        return self._obs.error_event(err) or self.codec.error_event(err)

    def _feed_array(self, chunk: bytes) -> bytes | None:
        if self._held and not chunk.strip():
            self._held += chunk  # blanks after a held "]" stay behind it
            return b""
        out = self._held + chunk if self._held else None
        self._held = b""
        tail = chunk.rstrip()
        if tail.endswith(b"]") and not self._too_big:
            # Perhaps the array's end, whose last element carries finishReason and usage: read it now,
            # so that a client hanging up before Envoy hands over the end of stream is still metered.
            if self._read_body(bytes(self._body)) and not self._obs.complete:
                whole = out if out is not None else chunk  # closed without a finish: hold the "]"
                cut = len(whole) - (len(chunk) - len(tail)) - 1
                out, self._held = whole[:cut], whole[cut:]
        sent = (out if out is not None else chunk).rstrip()
        if sent:
            self._last = sent[-1:]
        return out

    def _keep(self, chunk: bytes) -> None:
        if self._too_big:
            return
        if len(self._body) + len(chunk) > MAX_OBSERVED_BODY:
            self._too_big = True
            self._body.clear()
            return
        self._body += chunk

    def _read_body(self, raw: bytes) -> bool:
        """Read a whole body (or JSON array); False when it is not whole yet."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        docs = doc if isinstance(doc, list) else [doc]
        for d in docs:
            if isinstance(d, dict):
                self._obs.document(d)
        if not self.stream:
            self._obs.complete = True
        return True


def array_error(error: object, last: bytes) -> bytes:
    """An error object as the last element of a JSON array whose last byte sent was ``last``
    (``b""``: nothing was sent, the array is opened here)."""
    body = orjson.dumps(error)
    if not last:
        return b"[" + body + b"]"
    return (body if last in (b"[", b",") else b",\r\n" + body) + b"]"
