"""Anthropic Messages streams <-> IR events (docs/protocols.md, "Streaming").

Decoder: dispatches on the SSE event name; tolerates ``ping``, trailing spaces,
a missing final ``content_block_stop`` (max_tokens inside a tool block) and a
``message_stop`` without data. EOF before ``message_delta`` is an in-band error.

Encoder: ``message_start`` first; blocks are started and stopped once with
increasing indices; ``message_delta`` (stop reason + cumulative usage) is held
until the upstream really ended, then ``message_stop``. Tool calls stream live
one at a time; a call that starts while the open call's arguments are still
incomplete JSON (interleaving upstream) is buffered and sent whole, in order, at
the end. A fragment for a call whose block is already closed cannot be expressed
and is dropped (only possible when an upstream appends to finished JSON).
Gemini signatures are sealed (``carry.py``) into the thinking block that is open when
they arrive, as a ``signature_delta`` before it stops; a function call's signature that
finds no open thinking block gets an empty one of its own, right before the call.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.usage import Usage
from translator import ir
from translator.protocols import carry, stream_base
from translator.protocols.anthropic import usage
from translator.protocols.anthropic.errors import decode_stream_error, error_event
from translator.protocols.anthropic.request import tool_id
from translator.protocols.anthropic.response import client_id, decode_stop, stop_out
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder
from translator.sse import SSEEvent, encode_event


class StreamDecoder(SSEStreamDecoder):
    """Upstream Anthropic SSE bytes -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._tools: dict[int, int] = {}  # block index -> IR tool ordinal

    def __repr__(self) -> str:
        return f"anthropic.StreamDecoder(tools={len(self._tools)}, finished={self._finished})"

    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in sse_events:
            if self._ended or sse.event in (None, "ping"):
                continue
            data = ir.parse_json(sse.data) if sse.data else {}
            data = data if isinstance(data, dict) else {}
            if sse.event == "error":
                self._ended = True
                out.append(ir.Failed(decode_stream_error(data)))
            elif sse.event == "message_stop":
                out += self._close()
            else:
                out += self._event(sse.event, data)
        return out

    def _event(self, name: str | None, data: dict[str, Any]) -> list[ir.Event]:
        if name == "message_start":
            msg = data.get("message") or {}
            return [ir.UsageSeen(usage.read(msg.get("usage"))),
                    ir.Started(str(msg.get("id") or "") or None)]
        index = data.get("index")
        if name == "content_block_start" and isinstance(index, int):
            return self._block_start(index, data.get("content_block") or {})
        if name == "content_block_delta" and isinstance(index, int):
            return self._delta(index, data.get("delta") or {})
        if name == "content_block_stop" and index in self._tools:
            return [ir.ToolDone(self._tools[index])]
        if name == "message_delta":
            out: list[ir.Event] = []
            if isinstance(data.get("usage"), dict):
                out.append(ir.UsageSeen(usage.read(data["usage"])))
            delta = data.get("delta") or {}
            if delta.get("stop_reason") is not None and not self._finished:
                self._finished = True
                native = delta["stop_reason"]
                stop = ir.settle_stop(decode_stop(native), bool(self._tools))
                seq = delta.get("stop_sequence")
                out.append(ir.Finished(stop, str(native), seq if isinstance(seq, str) else None))
            return out
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ir.Event]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [ir.TextDelta(str(block["text"]))]
        if kind == "thinking":
            out: list[ir.Event] = []
            if block.get("thinking"):
                out.append(ir.ThinkingDelta(str(block["thinking"])))
            if block.get("signature"):
                out.append(ir.SignatureDelta(str(block["signature"])))
            return out
        if kind == "redacted_thinking":
            return [ir.RedactedThinking(str(block.get("data", "")))]
        if kind in ("tool_use", "server_tool_use"):
            ordinal = self._tools[index] = len(self._tools)
            out = [ir.ToolStart(ordinal, str(block.get("id", "")), str(block.get("name", "")))]
            if block.get("input"):
                out.append(ir.ToolArgs(ordinal, ir.dumps(block["input"])))
            return out
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[ir.Event]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [ir.TextDelta(str(delta["text"]))]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [ir.ThinkingDelta(str(delta["thinking"]))]
        if kind == "signature_delta" and delta.get("signature"):
            return [ir.SignatureDelta(str(delta["signature"]))]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            return [ir.ToolArgs(self._tools[index], str(delta["partial_json"]))]
        return []


class StreamEncoder(stream_base.StreamEncoder):
    """IR events -> Anthropic client SSE bytes."""

    def __init__(self, meta: ir.ClientMeta) -> None:
        self._meta = meta
        super().__init__()
        self._id = f"msg_{uuid.uuid4().hex}"
        self._next = 0  # next block index
        self._open: tuple[int, str, int | None] | None = None  # (block, kind, tool ordinal)
        self._args: dict[int, str] = {}  # arguments streamed so far, per tool ordinal
        self._deferred: dict[int, list[str]] = {}  # tool ordinal -> [id, name, arguments]
        self._finish: ir.Finished | None = None
        self._usage = Usage()
        self._marks: dict[str, Any] = {}  # Gemini signatures for the open thinking block's seal

    def __repr__(self) -> str:
        return (f"anthropic.StreamEncoder(phase={self._phase.value}, open={self._open}, "
                f"deferred={sorted(self._deferred)}, marks={sorted(self._marks)})")

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        match e:
            case ir.Started(id=upstream_id):
                if upstream_id:
                    self._id = client_id(upstream_id)
                return self._emit_message_start()
            case ir.TextDelta(text=text) if text:
                return self._ensure("text") + self._emit_delta({"type": "text_delta", "text": text})
            case ir.ThinkingDelta(text=text, gemini_signature=sig) if text or sig:
                out = self._ensure("thinking")
                if sig:
                    self._marks["g"] = sig
                return out + (self._emit_delta({"type": "thinking_delta", "thinking": text}) if text else b"")
            case ir.SignatureDelta(signature=sig):
                return self._ensure("thinking") + self._emit_delta(
                    {"type": "signature_delta", "signature": sig})
            case ir.RedactedThinking(data=data):
                block = {"type": "redacted_thinking", "data": data}
                return (self._emit_message_start() + self._emit_stop() + self._emit_block(block)
                        + self._emit_stop())
            case ir.ToolStart(index=i, id=tid, name=name, gemini_signature=sig):
                out = b""
                if sig:  # sealed into the open thinking block, or an empty one made for it
                    out = self._ensure("thinking")
                    self._marks.setdefault("c", {})[str(i)] = sig
                return out + self._on_tool_start(i, tid, name)
            case ir.ToolArgs(index=i, fragment=frag):
                return self._on_tool_args(i, frag)
            case ir.ToolDone(index=i) if self._open is not None and self._open[2] == i:
                return self._emit_stop()
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished():
                self._finish = e
            case ir.Ended():
                return (self._emit_message_start() + self._emit_stop() + self._emit_deferred()
                        + self._emit_message_delta() + self._emit_message_stop())
            case ir.Failed(error=err):
                self._phase = EncoderPhase.CLOSED
                return error_event(err)
        return b""

    def _on_tool_start(self, i: int, tid: str, name: str) -> bytes:
        o = self._open
        if self._deferred or (o is not None and o[2] is not None
                              and not ir.args_complete(self._args.get(o[2], ""))):
            self._deferred[i] = [tid, name, ""]
            return b""
        self._args[i] = ""
        block = {"type": "tool_use", "id": tool_id(tid), "name": name, "input": {}}
        return self._emit_message_start() + self._emit_stop() + self._emit_block(block, tool=i)

    def _on_tool_args(self, i: int, frag: str) -> bytes:
        if i in self._deferred:
            self._deferred[i][2] += frag
            return b""
        if self._open is None or self._open[2] != i:
            return b""  # the call's block is closed: see the module docstring
        self._args[i] += frag
        return self._emit_delta({"type": "input_json_delta", "partial_json": frag})

    def _ensure(self, kind: str) -> bytes:
        if self._open is not None and self._open[1] == kind:
            return b""
        return self._emit_message_start() + self._emit_stop() + self._emit_block(
            {"type": "text", "text": ""} if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""})

    def _emit(self, name: str, payload: dict[str, Any]) -> bytes:
        return encode_event(ir.dumps({"type": name, **payload}), event=name)

    def _emit_message_start(self) -> bytes:
        if self._phase is not EncoderPhase.IDLE:
            return b""
        self._phase = EncoderPhase.OPEN
        message: dict[str, Any] = {"id": self._id, "type": "message", "role": "assistant",
                   "model": self._meta.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": usage.write(self._usage)}
        return self._emit("message_start", {"message": message})

    def _emit_block(self, block: dict[str, Any], tool: int | None = None) -> bytes:
        self._open = (self._next, str(block["type"]), tool)
        self._next += 1
        return self._emit("content_block_start", {"index": self._open[0], "content_block": block})

    def _emit_delta(self, delta: dict[str, Any]) -> bytes:
        assert self._open is not None
        return self._emit("content_block_delta", {"index": self._open[0], "delta": delta})

    def _emit_stop(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._marks and self._open[1] == "thinking":
            out = self._emit_delta({"type": "signature_delta", "signature": carry.seal(self._marks)})
            self._marks = {}
        index, self._open = self._open[0], None
        return out + self._emit("content_block_stop", {"index": index})

    def _emit_deferred(self) -> bytes:
        out = b""
        for i in sorted(self._deferred):
            tid, name, args = self._deferred.pop(i)
            block = {"type": "tool_use", "id": tool_id(tid), "name": name, "input": {}}
            out += self._emit_block(block, tool=i)
            if args:
                out += self._emit_delta({"type": "input_json_delta", "partial_json": args})
            out += self._emit_stop()
        return out

    def _emit_message_delta(self) -> bytes:
        f = self._finish or ir.Finished(ir.Stop.END)
        reason = stop_out(f.stop, f.native)
        delta = {"stop_reason": reason,
                 "stop_sequence": f.stop_sequence if reason == "stop_sequence" else None}
        return self._emit("message_delta", {"delta": delta, "usage": usage.write(self._usage)})

    def _emit_message_stop(self) -> bytes:
        self._phase = EncoderPhase.CLOSED
        return self._emit("message_stop", {})
