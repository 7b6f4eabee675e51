"""Responses streams (typed ``event:``-named SSE events) <-> IR events (docs/protocols.md, "Streaming").

Decoder: text, refusal, reasoning summary and reasoning text deltas; a call starts with its
``output_item.added`` and ends with its ``output_item.done`` (whose whole item also stands in for
deltas an upstream did not send); ``response.completed`` / ``response.incomplete`` carry usage and
end the stream, ``response.failed`` and ``error`` are in-band errors; EOF before either is one too.

Encoder, what the SDK's accumulator checks (``openai.lib.streaming.responses``): ``response.created``
and ``response.in_progress`` first; every item added before its events and done once, with its
``output_index`` (0, 1, 2 … in the order items start) and ``item_id``; text as
``content_part.added`` / ``output_text.delta`` / ``.done`` / ``content_part.done`` at
``content_index`` 0; reasoning as one summary part (``reasoning_summary_part.*``,
``reasoning_summary_text.*``, ``summary_index`` 0) with the signature sealed in the item's
``encrypted_content`` at its ``done``; function calls as ``function_call_arguments.delta`` /
``.done``; custom calls as one ``custom_tool_call_input.delta`` and ``.done`` once the call is whole
(its input is one string argument inside the upstream's JSON, known only then). Calls whose
fragments interleave upstream stay open side by side. ``sequence_number`` counts every event from
0. The stream ends with ``response.completed`` (``response.incomplete`` after a length or safety
stop) carrying every item and the usage, or with ``response.failed`` for an upstream error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.usage import Usage
from translator import ir
from translator.protocols import stream_base
from translator.protocols.openai_responses import reasoning, usage
from translator.protocols.openai_responses.errors import decode_stream_error, in_band
from translator.protocols.openai_responses.request import CUSTOM_ARG
from translator.protocols.openai_responses.response import (
    call_item,
    client_id,
    custom_input,
    envelope,
    item_id,
    message_item,
    new_id,
    reasoning_item,
    status_for,
    stop_for,
    text_part,
)
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder
from translator.sse import SSEEvent

_END = frozenset({"response.completed", "response.incomplete"})


class StreamDecoder(SSEStreamDecoder):
    """Upstream Responses SSE bytes -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._tools: dict[int, int] = {}  # output_index -> IR tool ordinal
        self._custom: set[int] = set()  # output indices of custom calls
        self._streamed: set[Any] = set()  # output indices whose content came as deltas
        self._refused = False

    def __repr__(self) -> str:
        return f"openai_responses.StreamDecoder(tools={len(self._tools)}, finished={self._finished})"

    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in sse_events:
            if self._ended or not sse.data:
                continue
            data = ir.parse_json(sse.data)
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or sse.event
            if kind == "error":
                self._ended = True
                out.append(ir.Failed(decode_stream_error(data.get("error") or data)))
            elif kind == "response.failed":
                self._ended = True
                resp = data.get("response") or {}
                out.append(ir.Failed(decode_stream_error(resp.get("error") if isinstance(resp, dict) else None)))
            else:
                out += self._event(str(kind), data)
        return out

    def _event(self, kind: str, data: dict[str, Any]) -> list[ir.Event]:
        out: list[ir.Event] = []
        if not self._started:
            self._started = True
            resp = data.get("response")
            out.append(ir.Started(str(resp.get("id") or "") or None if isinstance(resp, dict) else None))
        index = data.get("output_index")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self._refused |= kind == "response.refusal.delta"
            self._streamed.add(index)
            if data.get("delta"):
                out.append(ir.TextDelta(str(data["delta"])))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._streamed.add(index)
            if data.get("delta"):
                out.append(ir.ThinkingDelta(str(data["delta"])))
        elif kind == "response.reasoning_summary_part.added" and data.get("summary_index", 0):
            out.append(ir.ThinkingDelta("\n\n"))  # between the parts of one summary
        elif kind == "response.function_call_arguments.delta" and index in self._tools:
            self._streamed.add(index)
            if data.get("delta"):
                out.append(ir.ToolArgs(self._tools[index], str(data["delta"])))
        elif kind == "response.output_item.added" and isinstance(index, int):
            out += self._item_added(index, data.get("item") or {})
        elif kind == "response.output_item.done" and isinstance(index, int):
            out += self._item_done(index, data.get("item") or {})
        elif kind in _END and not self._finished:
            resp = data.get("response") or {}
            self._finished = True
            stop, native = stop_for(resp, bool(self._tools))
            if self._refused and stop is ir.Stop.END:
                stop = ir.Stop.REFUSAL
            out += [ir.UsageSeen(usage.read(resp.get("usage"))), ir.Finished(stop, native)]
            out += self._close()
        return out

    def _item_added(self, index: int, item: dict[str, Any]) -> list[ir.Event]:
        if item.get("type") not in ("function_call", "custom_tool_call"):
            return []
        ordinal = self._tools[index] = len(self._tools)
        if item["type"] == "custom_tool_call":
            self._custom.add(index)
        out: list[ir.Event] = [ir.ToolStart(ordinal, str(item.get("call_id") or ""), str(item.get("name") or ""))]
        if item.get("arguments"):
            self._streamed.add(index)
            out.append(ir.ToolArgs(ordinal, str(item["arguments"])))
        return out

    def _item_done(self, index: int, item: dict[str, Any]) -> list[ir.Event]:
        """An item's whole form: what its deltas did not already say, and a call's end."""
        kind, streamed = item.get("type"), index in self._streamed
        out: list[ir.Event] = []
        if index in self._custom:
            out.append(ir.ToolArgs(self._tools[index], ir.dumps({CUSTOM_ARG: str(item.get("input", ""))})))
        elif index in self._tools and not streamed and item.get("arguments"):
            out.append(ir.ToolArgs(self._tools[index], str(item["arguments"])))
        elif kind == "message" and not streamed:
            for c in item.get("content") or []:
                if isinstance(c, dict) and (text := c.get("text") or c.get("refusal")):
                    self._refused |= c.get("type") == "refusal"
                    out.append(ir.TextDelta(str(text)))
        elif kind == "reasoning" and not streamed:
            texts = [str(s.get("text")) for s in item.get("summary") or [] if isinstance(s, dict) and s.get("text")]
            if texts:
                out.append(ir.ThinkingDelta("\n\n".join(texts)))
        if index in self._tools:
            out.append(ir.ToolDone(self._tools[index]))
        return out


@dataclass(slots=True)
class _Item:
    """An output item being streamed to the client."""

    index: int
    id: str
    kind: str  # message | reasoning | function_call | custom_tool_call
    text: str = ""  # the message's text, the reasoning's summary, the call's arguments or input
    part: bool = False  # a content or summary part was added
    signature: str | None = None  # reasoning: Anthropic's
    gemini_signature: str | None = None  # reasoning: Gemini's
    call_id: str = ""
    name: str = ""


class StreamEncoder(stream_base.StreamEncoder):
    """IR events -> Responses client SSE bytes."""

    def __init__(self, meta: ir.ClientMeta) -> None:
        self._meta = meta
        super().__init__()
        self._id = new_id("resp")
        self._seq = 0
        self._next = 0  # the next output_index
        self._done: dict[int, dict[str, Any]] = {}  # output_index -> finished item
        self._open: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # IR tool ordinal -> open call
        self._finish: ir.Finished | None = None
        self._usage = Usage()

    def __repr__(self) -> str:
        return (f"openai_responses.StreamEncoder(phase={self._phase.value}, seq={self._seq}, "
                f"open={self._open.kind if self._open else None}, calls={sorted(self._calls)})")

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        match e:
            case ir.Started(id=upstream_id):
                if upstream_id and self._phase is EncoderPhase.IDLE:
                    self._id = client_id(upstream_id)
                return self._emit_start()
            case ir.TextDelta(text=text) if text:
                return self._emit_start() + self._ensure("message") + self._emit_text(text)
            case ir.ThinkingDelta(text=text, gemini_signature=sig):
                out = self._emit_start() + self._ensure("reasoning")
                assert self._open is not None
                self._open.gemini_signature = sig or self._open.gemini_signature
                return out + (self._emit_summary(text) if text else b"")
            case ir.SignatureDelta(signature=sig):
                out = self._emit_start() + self._ensure("reasoning")
                assert self._open is not None
                self._open.signature = sig
                return out
            case ir.RedactedThinking(data=data):
                return self._emit_start() + self._close_open() + self._emit_whole_reasoning(
                    reasoning.redacted_seal(data))
            case ir.ToolStart(index=i, id=tid, name=name, gemini_signature=sig):
                return self._emit_start() + self._on_tool_start(i, tid, name, sig)
            case ir.ToolArgs(index=i, fragment=frag) if i in self._calls:
                return self._on_tool_args(self._calls[i], frag)
            case ir.ToolDone(index=i) if i in self._calls:
                return self._emit_call_done(self._calls.pop(i))
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished():
                self._finish = e
            case ir.Ended():
                return self._emit_start() + self._close_all() + self._emit_end()
            case ir.Failed(error=err):
                out = self._emit_start()
                self._phase = EncoderPhase.CLOSED
                return out + self._emit_response("response.failed", "failed", error=in_band(err))
        return b""

    # --- items ---------------------------------------------------------------------

    def _ensure(self, kind: str) -> bytes:
        if self._open is not None and self._open.kind == kind:
            return b""
        out = self._close_open()
        self._open = self._new_item("msg" if kind == "message" else "rs", kind)
        item = message_item(self._open.id, None, "in_progress") if kind == "message" \
            else reasoning_item(self._open.id, None, None)
        return out + self._emit("response.output_item.added", output_index=self._open.index, item=item)

    def _new_item(self, prefix: str, kind: str) -> _Item:
        item = _Item(self._next, item_id(prefix, self._id, self._next), kind)
        self._next += 1
        return item

    def _on_tool_start(self, i: int, tid: str, name: str, sig: str | None) -> bytes:
        # Calls still open whose arguments are whole are done; the others may still get fragments.
        out = self._close_open()
        for ordinal, call in list(self._calls.items()):
            if ir.args_complete(call.text):
                out += self._emit_call_done(self._calls.pop(ordinal))
        if sig:
            out += self._emit_whole_reasoning(reasoning.call_seal(sig))
        custom = name in self._meta.custom_tools
        call = self._calls[i] = self._new_item("ctc" if custom else "fc",
                                               "custom_tool_call" if custom else "function_call")
        call.call_id, call.name = tid, name
        item = call_item(call.id, tid, name, "", "in_progress", custom=custom)
        return out + self._emit("response.output_item.added", output_index=call.index, item=item)

    def _on_tool_args(self, call: _Item, frag: str) -> bytes:
        call.text += frag
        if call.kind == "custom_tool_call":
            return b""  # its input is inside the JSON: sent whole at the end
        return self._emit("response.function_call_arguments.delta", item_id=call.id, output_index=call.index,
                          delta=frag)

    def _close_open(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        if item.kind == "message":
            return self._emit_message_done(item)
        return self._emit_reasoning_done(item)

    def _close_all(self) -> bytes:
        out = self._close_open()
        for ordinal in sorted(self._calls, key=lambda o: self._calls[o].index):
            out += self._emit_call_done(self._calls.pop(ordinal))
        return out

    # --- events --------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> bytes:
        doc = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + ir.dumps(doc).encode() + b"\n\n"

    def _emit_response(self, kind: str, status: str, *, error: dict[str, Any] | None = None,
                       incomplete: dict[str, Any] | None = None) -> bytes:
        output = [self._done[i] for i in sorted(self._done)]
        u = None if status == "in_progress" else usage.write(self._usage)
        return self._emit(kind, response=envelope(self._id, self._meta, status, output, u, error=error,
                                                  incomplete=incomplete))

    def _emit_start(self) -> bytes:
        if self._phase is not EncoderPhase.IDLE:
            return b""
        self._phase = EncoderPhase.OPEN
        return (self._emit_response("response.created", "in_progress")
                + self._emit_response("response.in_progress", "in_progress"))

    def _emit_text(self, text: str) -> bytes:
        item = self._open
        assert item is not None
        out = b""
        if not item.part:
            item.part = True
            out = self._emit("response.content_part.added", item_id=item.id, output_index=item.index,
                             content_index=0, part=text_part(""))
        item.text += text
        return out + self._emit("response.output_text.delta", item_id=item.id, output_index=item.index,
                                content_index=0, delta=text, logprobs=[])

    def _emit_summary(self, text: str) -> bytes:
        item = self._open
        assert item is not None
        out = b""
        if not item.part:
            item.part = True
            out = self._emit("response.reasoning_summary_part.added", item_id=item.id, output_index=item.index,
                             summary_index=0, part={"type": "summary_text", "text": ""})
        item.text += text
        return out + self._emit("response.reasoning_summary_text.delta", item_id=item.id,
                                output_index=item.index, summary_index=0, delta=text)

    def _emit_message_done(self, item: _Item) -> bytes:
        out = b""
        if item.part:
            out += self._emit("response.output_text.done", item_id=item.id, output_index=item.index,
                              content_index=0, text=item.text, logprobs=[])
            out += self._emit("response.content_part.done", item_id=item.id, output_index=item.index,
                              content_index=0, part=text_part(item.text))
        return out + self._emit_item_done(item.index, message_item(item.id, item.text, "completed"))

    def _emit_reasoning_done(self, item: _Item) -> bytes:
        out = b""
        if item.part:
            out += self._emit("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index,
                              summary_index=0, text=item.text)
            out += self._emit("response.reasoning_summary_part.done", item_id=item.id, output_index=item.index,
                              summary_index=0, part={"type": "summary_text", "text": item.text})
        thought = ir.Thinking(item.text, signature=item.signature, gemini_signature=item.gemini_signature)
        return out + self._emit_item_done(item.index, reasoning_item(item.id, item.text,
                                                                     reasoning.thinking_seal(thought)))

    def _emit_whole_reasoning(self, sealed: str) -> bytes:
        item = self._new_item("rs", "reasoning")
        added = self._emit("response.output_item.added", output_index=item.index,
                           item=reasoning_item(item.id, None, None))
        return added + self._emit_item_done(item.index, reasoning_item(item.id, None, sealed))

    def _emit_call_done(self, call: _Item) -> bytes:
        if call.kind == "custom_tool_call":
            value = custom_input(args) if (args := ir.parse_args(call.text)) is not None else call.text
            out = b""
            if value:
                out += self._emit("response.custom_tool_call_input.delta", item_id=call.id,
                                  output_index=call.index, delta=value)
            out += self._emit("response.custom_tool_call_input.done", item_id=call.id, output_index=call.index,
                              input=value)
            item = call_item(call.id, call.call_id, call.name, value, "completed", custom=True)
        else:
            out = self._emit("response.function_call_arguments.done", item_id=call.id, output_index=call.index,
                             name=call.name, arguments=call.text)
            item = call_item(call.id, call.call_id, call.name, call.text, "completed", custom=False)
        return out + self._emit_item_done(call.index, item)

    def _emit_item_done(self, index: int, item: dict[str, Any]) -> bytes:
        self._done[index] = item
        return self._emit("response.output_item.done", output_index=index, item=item)

    def _emit_end(self) -> bytes:
        f = self._finish or ir.Finished(ir.Stop.END)
        status, incomplete = status_for(f.stop)
        self._phase = EncoderPhase.CLOSED
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self._emit_response(kind, status, incomplete=incomplete)
