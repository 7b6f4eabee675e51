"""OpenAI ``chat.completion.chunk`` streams <-> IR events (docs/protocols.md, "Streaming").

Decoder: fragments are keyed by ``tool_calls[].index`` (sequential or interleaved),
content is processed before a ``finish_reason`` in the same chunk, the usage chunk
(``choices: []``) may follow the finish, ``[DONE]`` or EOF after a finish ends the
stream, and EOF before any finish is an in-band error.

Encoder: role on the first chunk only, id/name only on a tool's first fragment,
exactly one finish chunk, the usage chunk only when the client asked for it,
``[DONE]`` last; upstream errors become ``data: {"error": …}`` and end the stream.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.usage import Usage
from translator import ir
from translator.protocols import stream_base
from translator.protocols.openai import usage
from translator.protocols.openai.errors import decode_stream_error, error_event
from translator.protocols.openai.request import call_id
from translator.protocols.openai.response import STOP_IN, client_id, stop_out
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder
from translator.sse import SSEEvent, encode_event


class StreamDecoder(SSEStreamDecoder):
    """Upstream OpenAI SSE bytes -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._tools: dict[int, int] = {}  # OpenAI tool index -> IR tool ordinal
        self._refused = False

    def __repr__(self) -> str:
        return f"openai.StreamDecoder(tools={len(self._tools)}, finished={self._finished})"

    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in sse_events:
            if self._ended or not sse.data:
                continue
            if sse.data.strip() == "[DONE]":
                out += self._close()
                continue
            data = ir.parse_json(sse.data)
            if not isinstance(data, dict):
                continue
            if "error" in data:
                self._ended = True
                out.append(ir.Failed(decode_stream_error(data)))
                continue
            out += self._chunk(data)
        return out

    def _chunk(self, data: dict[str, Any]) -> list[ir.Event]:
        out: list[ir.Event] = []
        if not self._started:
            self._started = True
            out.append(ir.Started(str(data.get("id") or "") or None))
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            out += self._delta(choice.get("delta") or {})
            native = choice.get("finish_reason")
            if isinstance(native, str) and not self._finished:
                self._finished = True
                stop = STOP_IN.get(native, ir.Stop.END)
                if self._refused and stop is ir.Stop.END:
                    stop = ir.Stop.REFUSAL
                out.append(ir.Finished(ir.settle_stop(stop, bool(self._tools)), native))
        if isinstance(data.get("usage"), dict):
            out.append(ir.UsageSeen(usage.read(data["usage"])))
        return out

    def _delta(self, delta: dict[str, Any]) -> list[ir.Event]:
        out: list[ir.Event] = []
        if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
            out.append(ir.ThinkingDelta(delta["reasoning_content"]))
        if isinstance(delta.get("content"), str) and delta["content"]:
            out.append(ir.TextDelta(delta["content"]))
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            self._refused = True
            out.append(ir.TextDelta(delta["refusal"]))
        for frag in delta.get("tool_calls") or []:
            index = frag.get("index", len(self._tools) - 1 if self._tools else 0)
            fn = frag.get("function") or {}
            if index not in self._tools:
                ordinal = self._tools[index] = len(self._tools)
                raw_id = frag.get("id") or f"call_{ordinal}"
                out.append(ir.ToolStart(ordinal, str(raw_id), str(fn.get("name") or "")))
            if isinstance(fn.get("arguments"), str) and fn["arguments"]:
                out.append(ir.ToolArgs(self._tools[index], fn["arguments"]))
        return out


class StreamEncoder(stream_base.StreamEncoder):
    """IR events -> OpenAI client SSE bytes."""

    def __init__(self, meta: ir.ClientMeta) -> None:
        self._meta = meta
        super().__init__()
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._finish: ir.Finished | None = None
        self._usage = Usage()

    def __repr__(self) -> str:
        return f"openai.StreamEncoder(phase={self._phase.value}, finish={self._finish})"

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        match e:
            case ir.Started(id=upstream_id):
                if upstream_id:
                    self._id = client_id(upstream_id)
                return self._emit_role()
            case ir.TextDelta(text=text) if text:
                return self._emit_role() + self._emit_delta({"content": text})
            case ir.ThinkingDelta(text=text) if text:
                return self._emit_role() + self._emit_delta({"reasoning_content": text})
            case ir.ToolStart(index=i, id=tid, name=name):
                frag = {"index": i, "id": call_id(tid), "type": "function",
                        "function": {"name": name, "arguments": ""}}
                return self._emit_role() + self._emit_delta({"tool_calls": [frag]})
            case ir.ToolArgs(index=i, fragment=frag):
                frag_out = {"index": i, "function": {"arguments": frag}}
                return self._emit_delta({"tool_calls": [frag_out]})
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished():
                self._finish = e
            case ir.Ended():
                return (self._emit_role() + self._emit_finish() + self._emit_usage()
                        + self._emit_done())
            case ir.Failed(error=err):
                self._phase = EncoderPhase.CLOSED
                return error_event(err)
        return b""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {"id": self._id, "object": "chat.completion.chunk", "created": self._meta.created,
                "model": self._meta.model, "choices": choices, **extra}
        return encode_event(ir.dumps(body))

    def _emit_role(self) -> bytes:
        if self._phase is not EncoderPhase.IDLE:
            return b""
        self._phase = EncoderPhase.OPEN
        delta = {"role": "assistant", "content": ""}
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def _emit_delta(self, delta: dict[str, Any]) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def _emit_finish(self) -> bytes:
        f = self._finish or ir.Finished(ir.Stop.END)
        reason = stop_out(f.stop, f.native)
        return self._chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}])

    def _emit_usage(self) -> bytes:
        if not self._meta.include_usage:
            return b""
        return self._chunk([], usage=usage.write(self._usage))

    def _emit_done(self) -> bytes:
        self._phase = EncoderPhase.CLOSED
        return b"data: [DONE]\n\n"
