"""Same-protocol responses: pass the upstream's bytes through, read usage on the side.

Nothing is re-serialised. The only change ever made is dropping the OpenAI
usage chunk that tokengate asked for on the client's behalf
(``stream_options.include_usage``) when the client did not ask for it.

``feed`` returns ``None`` when the chunk goes to the client unchanged (no body
mutation at all, the cheapest answer to Envoy) and bytes when it was rewritten.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.protocols import Protocol
from core.usage import Usage
from translator.errors import UpstreamError
from translator.sse import SSEDecoder, SSEEvent

MAX_OBSERVED_BODY = 16 * 1024 * 1024  # a non-stream body larger than this is not parsed for usage


class Passthrough:
    """Observe (and for OpenAI maybe trim) one same-protocol response."""

    def __init__(
        self, protocol: Protocol, *, stream: bool, sse: bool = True, strip_usage_chunk: bool = False
    ) -> None:
        self.protocol = protocol
        self.stream = stream
        self.strip = strip_usage_chunk and protocol is Protocol.OPENAI and stream
        self.usage = Usage()
        self.complete = False  # the upstream's own end marker was seen
        self.finish: str | None = None
        # Gemini streams without alt=sse are one JSON array: read whole at the end.
        self._sse = SSEDecoder() if stream and sse else None
        self._body = bytearray()
        self._too_big = False

    def __repr__(self) -> str:
        return f"Passthrough({self.protocol}, stream={self.stream}, complete={self.complete})"

    def feed(self, chunk: bytes) -> bytes | None:
        if self._sse is None:
            self._keep(chunk)
            if self.stream and not self._too_big and chunk.rstrip().endswith(b"]"):
                # Perhaps the array's end, whose last element carries finishReason and usage: read it now,
                # so that a client hanging up before Envoy hands over the end of stream is still metered.
                self._read_body(bytes(self._body))
            return None
        events = self._sse.feed(chunk)
        if not self.strip:
            for ev in events:
                self._observe(ev)
            return None
        out = b"".join(ev.raw for ev in events if self._observe(ev))
        return None if out == chunk else out  # unchanged: no body mutation for Envoy to apply

    def flush(self) -> bytes | None:
        """End of the upstream body: read a buffered body, release held bytes. A stream that
        ended without its protocol's terminal event gets an in-band error, never passes for
        a finished answer."""
        if self._sse is not None:
            events = self._sse.flush()
            kept = [ev.raw for ev in events if self._observe(ev)]
            tail = b"".join(kept) if self.strip else b""
            if not self.complete:
                tail += UpstreamError("The upstream stream ended before it finished.").stream_event(self.protocol)
            return tail or (b"" if self.strip else None)
        if not self._too_big and self._body and not self.complete:
            self._read_body(bytes(self._body))
        return None

    def _keep(self, chunk: bytes) -> None:
        if self._too_big:
            return
        if len(self._body) + len(chunk) > MAX_OBSERVED_BODY:
            self._too_big = True
            self._body.clear()
            return
        self._body += chunk

    def _read_body(self, raw: bytes) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        docs = doc if isinstance(doc, list) else [doc]
        for d in docs:
            if isinstance(d, dict):
                self._observe_doc(d)
        if not self.stream:
            self.complete = True

    def _observe_doc(self, d: dict[str, Any]) -> None:
        if self.protocol is Protocol.OPENAI:
            self.usage = self.usage.merge(Usage.from_openai(d.get("usage")))
            for c in d.get("choices") or ():
                if isinstance(c, dict) and c.get("finish_reason"):
                    self.finish = c["finish_reason"]
        elif self.protocol is Protocol.ANTHROPIC:
            self.usage = self.usage.merge(Usage.from_anthropic(d.get("usage")))
            if d.get("stop_reason"):
                self.finish = d["stop_reason"]
        else:
            self.usage = self.usage.merge(Usage.from_gemini(d.get("usageMetadata")))
            for c in d.get("candidates") or ():
                if isinstance(c, dict) and c.get("finishReason"):
                    self.finish = c["finishReason"]
                    self.complete = True

    def _observe(self, ev: SSEEvent) -> bool:
        """Read one stream event; return whether it goes on to the client."""
        data = ev.data
        if self.protocol is Protocol.OPENAI:
            if data == "[DONE]":
                self.complete = True
                return True
            if '"usage":' not in data and '"finish_reason":"' not in data.replace(" ", ""):
                return True
            doc = _json(data)
            if doc is None:
                return True
            self._observe_doc(doc)
            usage_chunk = doc.get("usage") and not doc.get("choices")
            return not (self.strip and usage_chunk)
        if self.protocol is Protocol.ANTHROPIC:
            if ev.event == "message_stop":
                self.complete = True
            elif ev.event == "message_start":
                doc = _json(data)
                if doc and isinstance(doc.get("message"), dict):
                    self._observe_doc(doc["message"])
            elif ev.event == "message_delta":
                doc = _json(data)
                if doc:
                    self.usage = self.usage.merge(Usage.from_anthropic(doc.get("usage")))
                    delta = doc.get("delta") or {}
                    if isinstance(delta, dict) and delta.get("stop_reason"):
                        self.finish = delta["stop_reason"]
            return True
        if data:
            doc = _json(data)
            if doc:
                self._observe_doc(doc)
        return True


def _json(data: str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
