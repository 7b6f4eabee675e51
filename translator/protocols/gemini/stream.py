"""Gemini ``streamGenerateContent`` streams <-> IR events (docs/protocols.md, "Streaming").

Decoder: upstream must be requested with ``alt=sse``; ``usageMetadata`` is a
running total (last value wins, a chunk without it erases nothing); a function call
arrives whole; EOF after a ``finishReason`` (or a blocked prompt) ends the stream,
EOF before it is an in-band error.

Encoder: ``data:`` framing (``alt=sse``) or the JSON-array framing; text and thought
parts go out as they come; tool calls are buffered per index and sent as whole
``functionCall`` parts once complete (or at the finish); the last chunk holds
``finishReason`` and the complete ``usageMetadata``. Arguments that never became a
JSON object (cut by a length stop) are dropped with their call. An Anthropic upstream's
thinking block leaves sealed (``carry.py``) on an empty thought part when its signature
arrives, and all of them on the first function call (``response.sealed_call``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.usage import Usage
from translator import ir
from translator.protocols import carry, stream_base
from translator.protocols.gemini import usage
from translator.protocols.gemini.errors import decode_stream_error, error_body
from translator.protocols.gemini.request import field
from translator.protocols.gemini.response import (
    blocked,
    candidate,
    decode_part,
    decode_stop,
    encode_part,
    envelope,
    sealed_call,
    stop_out,
)
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder
from translator.sse import SSEEvent, encode_event


class StreamDecoder(SSEStreamDecoder):
    """Upstream Gemini SSE bytes -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._calls = 0

    def __repr__(self) -> str:
        return f"gemini.StreamDecoder(calls={self._calls}, finished={self._finished})"

    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in sse_events:
            data = ir.parse_json(sse.data) if sse.data and not self._ended else None
            if not isinstance(data, dict):
                continue
            if "error" in data:
                self._ended = True
                out.append(ir.Failed(decode_stream_error(data)))
            else:
                out += self._chunk(data)
        return out

    def _chunk(self, data: dict[str, Any]) -> list[ir.Event]:
        rid = str(field(data, "responseId") or "")
        out: list[ir.Event] = []
        if not self._started:
            self._started = True
            out.append(ir.Started(rid or None))
        cand = candidate(data)
        for p in (cand.get("content") or {}).get("parts") or []:
            part = decode_part(p, rid, self._calls) if isinstance(p, dict) else None
            if isinstance(part, ir.Text):
                out.append(ir.TextDelta(part.text, part.gemini_signature))
            elif isinstance(part, ir.Thinking):
                out.append(ir.ThinkingDelta(part.text, part.gemini_signature))
            elif isinstance(part, ir.ToolCall):
                i, self._calls = self._calls, self._calls + 1
                out += [ir.ToolStart(i, part.id, part.name, part.gemini_signature),
                        ir.ToolArgs(i, ir.dumps(part.arguments)), ir.ToolDone(i)]
        if isinstance(field(data, "usageMetadata"), dict):
            out.append(ir.UsageSeen(usage.read(field(data, "usageMetadata"))))
        native = field(cand, "finishReason")
        if (native or blocked(data)) and not self._finished:
            self._finished = True
            stop = decode_stop(native) if native else ir.Stop.SAFETY
            out.append(ir.Finished(ir.settle_stop(stop, self._calls > 0),
                                   str(native) if native else None))
        return out


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    signature: str | None
    args: str = ""
    done: bool = False


class StreamEncoder(stream_base.StreamEncoder):
    """IR events -> Gemini client stream bytes (SSE or JSON array)."""

    def __init__(self, meta: ir.ClientMeta) -> None:
        self._meta = meta
        super().__init__()
        self._id = uuid.uuid4().hex
        self._calls: dict[int, _Call] = {}  # buffered, not yet sent
        self._finish: ir.Finished | None = None
        self._usage = Usage()
        self._thought = ""  # an Anthropic thinking block's text so far, until its signature
        self._blocks: list[list[str | None]] = []  # the answer's Anthropic thinking blocks, for sealing
        self._called = False

    def __repr__(self) -> str:
        return (f"gemini.StreamEncoder(phase={self._phase.value}, buffered={sorted(self._calls)}, "
                f"blocks={len(self._blocks)})")

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        match e:
            case ir.Started(id=upstream_id):
                self._id = upstream_id or self._id
            case ir.TextDelta(text=text, gemini_signature=sig) if text or sig:
                return self._emit_parts([_signed({"text": text}, sig)])
            case ir.ThinkingDelta(text=text, gemini_signature=sig) if text or sig:
                self._thought += text
                return self._emit_parts([_signed({"text": text, "thought": True}, sig)])
            case ir.SignatureDelta(signature=sig):
                return self._emit_sealed([self._thought, sig])
            case ir.RedactedThinking(data=data):
                return self._emit_sealed([None, data])
            case ir.ToolStart(index=i, id=tid, name=name, gemini_signature=sig):
                out = self._emit_parts(self._ready())
                call = ir.ToolCall(tid, name, {}, sig)
                if not self._called:
                    self._called, call = True, sealed_call(call, self._blocks)
                self._calls[i] = _Call(tid, name, call.gemini_signature)
                return out
            case ir.ToolArgs(index=i, fragment=frag) if i in self._calls:
                self._calls[i].args += frag
            case ir.ToolDone(index=i) if i in self._calls:
                self._calls[i].done = True
                return self._emit_parts(self._ready())
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished():
                self._finish = e
            case ir.Ended():
                return self._emit_last()
            case ir.Failed(error=err):
                return self._emit_final(error_body(err))
        return b""

    def _ready(self, everything: bool = False) -> list[dict[str, Any]]:
        """Buffered calls that can go out now, in index order (all of them at the end)."""
        parts: list[dict[str, Any]] = []
        for i in sorted(self._calls):
            call = self._calls[i]
            if not (everything or call.done or ir.args_complete(call.args)):
                break
            del self._calls[i]
            args = ir.parse_args(call.args)
            if args is not None:
                part = ir.ToolCall(call.id, call.name, args, call.signature)
                parts.append(encode_part(part) or {})
        return parts

    def _frame(self, body: dict[str, Any]) -> bytes:
        data = ir.dumps(body)
        if self._meta.sse:
            return encode_event(data)
        sep = b"[" if self._phase is EncoderPhase.IDLE else b",\r\n"
        return sep + data.encode()

    def _emit_parts(self, parts: list[dict[str, Any]]) -> bytes:
        if not parts:
            return b""
        out = self._frame(envelope(parts, self._meta, self._id))
        self._phase = EncoderPhase.OPEN
        return out

    def _emit_sealed(self, block: list[str | None]) -> bytes:
        self._blocks.append(block)
        self._thought = ""
        return self._emit_parts([{"text": "", "thought": True, "thoughtSignature": carry.seal({"a": [block]})}])

    def _emit_last(self) -> bytes:
        f = self._finish or ir.Finished(ir.Stop.END)
        body = envelope(self._ready(everything=True), self._meta, self._id,
                        stop_out(f.stop, f.native), self._usage)
        return self._emit_final(body)

    def _emit_final(self, body: dict[str, Any]) -> bytes:
        out = self._frame(body)
        if not self._meta.sse:
            out += b"]"
        self._phase = EncoderPhase.CLOSED
        return out


def _signed(part: dict[str, Any], sig: str | None) -> dict[str, Any]:
    if sig:
        part["thoughtSignature"] = sig
    return part
