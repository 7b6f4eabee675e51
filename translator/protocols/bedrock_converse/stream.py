"""Bedrock ConverseStream (AWS event-stream frames, ``translator/eventstream.py``) <-> IR events.

Decoder: frames by ``:event-type``: ``messageStart``, ``contentBlockStart`` (a tool call's id and name),
``contentBlockDelta`` (``text``, ``toolUse.input`` fragments, ``reasoningContent`` text, signature or redacted
content), ``contentBlockStop``, ``messageStop`` (the stop reason), ``metadata`` (usage, after the stop). An
exception frame (``:message-type: exception``: ``throttlingException``, ``modelStreamErrorException`` …) or an
error frame ends the stream with that error, in band. EOF before ``messageStop`` is an in-band error.

Encoder (no client reads Converse: for round trips and tests): the same frames, ``metadata`` last.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage
from translator import ir
from translator.errors import UpstreamError
from translator.eventstream import EventStreamDecoder, Frame, encode_frame
from translator.protocols import stream_base
from translator.protocols.bedrock_converse import usage
from translator.protocols.bedrock_converse.errors import decode_exception, error_event
from translator.protocols.bedrock_converse.request import tool_id
from translator.protocols.bedrock_converse.response import STOP_IN, STOP_OUT, decode_stop
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder
from translator.sse import SSEEvent


class StreamDecoder(SSEStreamDecoder):
    """Upstream ConverseStream bytes -> IR events."""

    def __init__(self) -> None:
        super().__init__(EventStreamDecoder())
        self._tools: dict[int, int] = {}  # content block index -> IR tool ordinal

    def __repr__(self) -> str:
        return f"bedrock_converse.StreamDecoder(tools={len(self._tools)}, finished={self._finished})"

    def _decode(self, frames: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for f in frames:
            if self._ended:
                continue
            kind = f.message_type if isinstance(f, Frame) else "event"
            if kind == "exception":
                self._ended = True
                out.append(ir.Failed(decode_exception(f.event, f.data)))
            elif kind == "error":
                self._ended = True
                assert isinstance(f, Frame)
                out.append(ir.Failed(UpstreamError(str(f.headers.get(":error-message") or f.event
                                                       or "Bedrock stream error"), status=500)))
            else:
                data = ir.parse_json(f.data) if f.data else {}
                out += self._event(f.event, data if isinstance(data, dict) else {})
        return out

    def _event(self, name: str | None, data: dict[str, Any]) -> list[ir.Event]:
        index = data.get("contentBlockIndex")
        if name == "messageStart":
            return [ir.Started(None)]
        if name == "contentBlockStart" and isinstance(index, int):
            start = data.get("start") or {}
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                ordinal = self._tools[index] = len(self._tools)
                return [ir.ToolStart(ordinal, str(use.get("toolUseId", "")), str(use.get("name", "")))]
            return []
        if name == "contentBlockDelta" and isinstance(index, int):
            return self._delta(index, data.get("delta") or {})
        if name == "contentBlockStop" and index in self._tools:
            return [ir.ToolDone(self._tools[index])]
        if name == "messageStop" and not self._finished:
            self._finished = True
            native = data.get("stopReason")
            stop = ir.settle_stop(decode_stop(native), bool(self._tools))
            return [ir.Finished(stop, native if isinstance(native, str) else None)]
        if name == "metadata" and isinstance(data.get("usage"), dict):
            return [ir.UsageSeen(usage.read(data["usage"]))]
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[ir.Event]:
        if isinstance(delta.get("text"), str) and delta["text"]:
            return [ir.TextDelta(delta["text"])]
        use = delta.get("toolUse")
        if isinstance(use, dict) and use.get("input") and index in self._tools:
            return [ir.ToolArgs(self._tools[index], str(use["input"]))]
        rc = delta.get("reasoningContent")
        if isinstance(rc, dict):
            if rc.get("text"):
                return [ir.ThinkingDelta(str(rc["text"]))]
            if rc.get("signature"):
                return [ir.SignatureDelta(str(rc["signature"]))]
            if rc.get("redactedContent"):
                return [ir.RedactedThinking(str(rc["redactedContent"]))]
        return []


def frame(event: str, payload: dict[str, Any]) -> bytes:
    return encode_frame({":event-type": event, ":content-type": "application/json", ":message-type": "event"},
                        ir.dumps(payload).encode())


class StreamEncoder(stream_base.StreamEncoder):
    """IR events -> ConverseStream frames."""

    def __init__(self, meta: ir.ClientMeta) -> None:
        super().__init__()
        self._next = 0  # next content block index
        self._open: tuple[int, str] | None = None  # (index, "text" | "reasoning" | "tool")
        self._tools: dict[int, int] = {}  # IR tool ordinal -> content block index
        self._finish: ir.Finished | None = None
        self._usage = Usage()

    def __repr__(self) -> str:
        return f"bedrock_converse.StreamEncoder(phase={self._phase.value}, open={self._open})"

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        match e:
            case ir.TextDelta(text=text) if text:
                return self._ensure("text") + self._delta({"text": text})
            case ir.ThinkingDelta(text=text) if text:
                return self._ensure("reasoning") + self._delta({"reasoningContent": {"text": text}})
            case ir.SignatureDelta(signature=sig):
                return self._ensure("reasoning") + self._delta({"reasoningContent": {"signature": sig}})
            case ir.ToolStart(index=i, id=tid, name=name):
                out = self._start() + self._stop()
                self._tools[i] = self._next
                self._open = (self._next, "tool")
                self._next += 1
                start = {"toolUse": {"toolUseId": tool_id(tid), "name": name}}
                return out + frame("contentBlockStart", {"start": start, "contentBlockIndex": self._tools[i]})
            case ir.ToolArgs(index=i, fragment=frag) if i in self._tools:
                return frame("contentBlockDelta", {"delta": {"toolUse": {"input": frag}},
                                                   "contentBlockIndex": self._tools[i]})
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished():
                self._finish = e
            case ir.Ended():
                f = self._finish or ir.Finished(ir.Stop.END)
                self._phase = EncoderPhase.CLOSED
                return (self._start() + self._stop()
                        + frame("messageStop", {"stopReason": ir.encode_stop(f.stop, f.native, STOP_IN, STOP_OUT)})
                        + frame("metadata", {"usage": usage.write(self._usage), "metrics": {"latencyMs": 0}}))
            case ir.Failed(error=err):
                self._phase = EncoderPhase.CLOSED
                return error_event(err)
        return b""

    def _start(self) -> bytes:
        if self._phase is not EncoderPhase.IDLE:
            return b""
        self._phase = EncoderPhase.OPEN
        return frame("messageStart", {"role": "assistant"})

    def _ensure(self, kind: str) -> bytes:
        if self._open is not None and self._open[1] == kind:
            return b""
        out = self._start() + self._stop()
        self._open = (self._next, kind)
        self._next += 1
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        assert self._open is not None
        return frame("contentBlockDelta", {"delta": delta, "contentBlockIndex": self._open[0]})

    def _stop(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open[0], None
        return frame("contentBlockStop", {"contentBlockIndex": index})
