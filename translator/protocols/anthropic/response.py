"""Anthropic ``message`` responses <-> IR.

Reasoning from other providers becomes a ``thinking`` block with an empty
signature (shown to the client, never replayed to Anthropic: the request encoder
drops unsigned thinking). Blocks keep the upstream order. Gemini's signatures are
sealed into a thinking block's signature (``carry.py``): a thought's own in its block,
a function call's in the thinking block right before the call, or in an empty one
made for it.
"""

from __future__ import annotations

from typing import Any

from translator import ir
from translator.ir import Json, Stop, Text, Thinking, ToolCall
from translator.protocols import carry
from translator.protocols.anthropic import usage
from translator.protocols.anthropic.request import tool_id

STOP_IN: dict[str, Stop] = {
    "end_turn": Stop.END, "stop_sequence": Stop.STOP_SEQUENCE, "pause_turn": Stop.PAUSE,
    "max_tokens": Stop.MAX_TOKENS, "model_context_window_exceeded": Stop.CONTEXT_WINDOW,
    "tool_use": Stop.TOOL_USE, "refusal": Stop.REFUSAL,
}
STOP_OUT: dict[Stop, str] = {
    Stop.END: "end_turn", Stop.STOP_SEQUENCE: "stop_sequence", Stop.PAUSE: "pause_turn",
    Stop.MAX_TOKENS: "max_tokens", Stop.CONTEXT_WINDOW: "model_context_window_exceeded",
    Stop.TOOL_USE: "tool_use", Stop.REFUSAL: "refusal", Stop.SAFETY: "refusal",
    Stop.RECITATION: "refusal", Stop.OTHER: "end_turn", Stop.TOOL_ERROR: "end_turn",
    Stop.NO_IMAGE: "end_turn",
}

def stop_out(stop: Stop, native: str | None) -> str:
    return ir.encode_stop(stop, native, STOP_IN, STOP_OUT)


def decode_stop(native: object) -> Stop:
    return STOP_IN.get(native, Stop.END) if isinstance(native, str) else Stop.END


def decode_block(b: Json) -> ir.Part | None:
    kind = b.get("type")
    if kind == "text":
        return Text(str(b.get("text", "")))
    if kind == "thinking":
        return Thinking(str(b.get("thinking", "")), signature=b.get("signature") or None)
    if kind == "redacted_thinking":
        return Thinking("", redacted=str(b.get("data", "")))
    if kind in ("tool_use", "server_tool_use"):
        args = b.get("input") if isinstance(b.get("input"), dict) else {}
        assert isinstance(args, dict)
        return ToolCall(str(b.get("id", "")), str(b.get("name", "")), args)
    return None  # citations-only and server-tool result blocks have no peer shape


def decode_response(body: Json) -> ir.Response:
    parts = [p for b in ir.as_list(body.get("content"), "content")
             if isinstance(b, dict) and (p := decode_block(b)) is not None]
    native = body.get("stop_reason")
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    return ir.Response(
        id=str(body.get("id") or ""), parts=parts,
        stop=ir.settle_stop(decode_stop(native), has_calls),
        usage=usage.read(body.get("usage")),
        native_stop=native if isinstance(native, str) else None,
        stop_sequence=seq if isinstance(seq := body.get("stop_sequence"), str) else None,
    )


def client_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"


def encode_block(p: ir.Part) -> Json | None:
    if isinstance(p, Text):
        return {"type": "text", "text": p.text} if p.text else None
    if isinstance(p, Thinking):
        if p.redacted is not None:
            return {"type": "redacted_thinking", "data": p.redacted}
        return {"type": "thinking", "thinking": p.text, "signature": p.signature or ""}
    if isinstance(p, ToolCall):
        return {"type": "tool_use", "id": tool_id(p.id), "name": p.name, "input": p.arguments}
    return None


def encode_blocks(parts: list[ir.Part]) -> list[Json]:
    """The answer's content blocks, Gemini signatures sealed into thinking blocks."""
    out: list[Json] = []
    marks: dict[int, dict[str, Any]] = {}  # index in out of a thinking block -> what it carries
    calls = 0
    for p in parts:
        if isinstance(p, Thinking) and p.gemini_signature and p.signature is None and p.redacted is None:
            marks[len(out)] = carry.gemini_marks(p, {})
            out.append({"type": "thinking", "thinking": p.text, "signature": ""})
            continue
        if isinstance(p, ToolCall):
            if p.gemini_signature:
                if not out or out[-1]["type"] != "thinking" or out[-1]["signature"]:
                    out.append({"type": "thinking", "thinking": "", "signature": ""})
                marks.setdefault(len(out) - 1, {}).setdefault("c", {})[str(calls)] = p.gemini_signature
            calls += 1
        if (b := encode_block(p)) is not None:
            out.append(b)
    for i, doc in marks.items():
        out[i]["signature"] = carry.seal(doc)
    return out


def encode_response(resp: ir.Response, meta: ir.ClientMeta) -> Json:
    stop = stop_out(resp.stop, resp.native_stop)
    return {
        "id": client_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": encode_blocks(resp.parts),
        "stop_reason": stop,
        "stop_sequence": resp.stop_sequence if stop == "stop_sequence" else None,
        "usage": usage.write(resp.usage),
    }
