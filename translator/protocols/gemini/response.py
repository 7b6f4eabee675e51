"""Gemini ``GenerateContentResponse`` bodies <-> IR.

Only candidate 0 is read (``candidateCount`` > 1 is refused at request time).
Function calls without an id get ``call_`` + hash(responseId, ordinal) — the same
ids in streamed and whole responses. A prompt blocked before any candidate
(``promptFeedback.blockReason``) is the safety stop with no content. Calls sent to
Gemini clients keep their id, so a client that echoes it pairs results exactly.
Anthropic thinking blocks leave sealed (``carry.py``) in ``thoughtSignature``: each on its
thought part (a redacted one on an empty thought part), and all of the answer's on its first
function call that has no Gemini signature of its own.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage
from translator import ir
from translator.ir import Json, Stop, Text, Thinking, ToolCall
from translator.protocols import carry
from translator.protocols.gemini import usage as usage_object
from translator.protocols.gemini.request import field, synth_id

_SAFETY = ("SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
           "IMAGE_PROHIBITED_CONTENT")
STOP_IN: dict[str, Stop] = {
    "STOP": Stop.END, "FINISH_REASON_UNSPECIFIED": Stop.END, "MAX_TOKENS": Stop.MAX_TOKENS,
    **dict.fromkeys(_SAFETY, Stop.SAFETY),
    "RECITATION": Stop.RECITATION, "IMAGE_RECITATION": Stop.RECITATION,
    "LANGUAGE": Stop.OTHER, "OTHER": Stop.OTHER, "IMAGE_OTHER": Stop.OTHER,
    "MALFORMED_FUNCTION_CALL": Stop.TOOL_ERROR, "UNEXPECTED_TOOL_CALL": Stop.TOOL_ERROR,
    "TOO_MANY_TOOL_CALLS": Stop.TOOL_ERROR, "NO_IMAGE": Stop.NO_IMAGE,
}
STOP_OUT: dict[Stop, str] = {
    Stop.END: "STOP", Stop.STOP_SEQUENCE: "STOP", Stop.PAUSE: "STOP", Stop.TOOL_USE: "STOP",
    Stop.MAX_TOKENS: "MAX_TOKENS", Stop.CONTEXT_WINDOW: "MAX_TOKENS",
    Stop.REFUSAL: "SAFETY", Stop.SAFETY: "SAFETY", Stop.RECITATION: "RECITATION",
    Stop.OTHER: "OTHER", Stop.TOOL_ERROR: "MALFORMED_FUNCTION_CALL", Stop.NO_IMAGE: "NO_IMAGE",
}

def stop_out(stop: Stop, native: str | None) -> str:
    return ir.encode_stop(stop, native, STOP_IN, STOP_OUT)


def decode_stop(native: Any) -> Stop:
    return STOP_IN.get(native, Stop.OTHER) if isinstance(native, str) else Stop.END


def candidate(body: Json) -> Json:
    cands = body.get("candidates")
    return cands[0] if isinstance(cands, list) and cands and isinstance(cands[0], dict) else {}


def decode_part(p: Json, response_id: str, ordinal: int) -> ir.Part | None:
    """A response part; ``ordinal`` numbers function calls for synthesized ids."""
    sig = field(p, "thoughtSignature")
    if isinstance(p.get("text"), str):
        if field(p, "thought"):
            return Thinking(p["text"], gemini_signature=sig)
        return Text(p["text"], gemini_signature=sig) if p["text"] or sig else None
    fc = field(p, "functionCall")
    if isinstance(fc, dict):
        args = fc.get("args") if isinstance(fc.get("args"), dict) else {}
        assert isinstance(args, dict)
        return ToolCall(str(fc.get("id") or synth_id(response_id, 0, ordinal)),
                        str(fc.get("name", "")), args, sig)
    return None  # executable code, grounding and inline output media have no peer shape


def blocked(body: Json) -> str | None:
    feedback = field(body, "promptFeedback")
    reason = field(feedback, "blockReason") if isinstance(feedback, dict) else None
    return str(reason) if reason and not body.get("candidates") else None


def decode_response(body: Json) -> ir.Response:
    rid = str(field(body, "responseId") or "")
    parts: list[ir.Part] = []
    for p in (candidate(body).get("content") or {}).get("parts") or []:
        ordinal = sum(isinstance(x, ToolCall) for x in parts)
        if isinstance(p, dict) and (part := decode_part(p, rid, ordinal)) is not None:
            parts.append(part)
    native = field(candidate(body), "finishReason")
    stop = Stop.SAFETY if blocked(body) else decode_stop(native)
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    return ir.Response(rid, parts, ir.settle_stop(stop, has_calls),
                       usage_object.read(field(body, "usageMetadata")),
                       native_stop=native if isinstance(native, str) else None)


def encode_part(p: ir.Part) -> Json | None:
    out: Json
    if isinstance(p, Text):
        if not p.text:
            return None
        out = {"text": p.text}
    elif isinstance(p, Thinking):
        blocks = carry.anthropic_blocks([p])
        if blocks:
            return {"text": p.text, "thought": True, "thoughtSignature": carry.seal({"a": blocks})}
        if not p.text:
            return None
        out = {"text": p.text, "thought": True}
    elif isinstance(p, ToolCall):
        out = {"functionCall": {"id": p.id, "name": p.name, "args": p.arguments}}
    else:
        return None
    if p.gemini_signature:
        out["thoughtSignature"] = p.gemini_signature
    return out


def envelope(parts: list[Json], meta: ir.ClientMeta, rid: str, finish: str | None = None,
             usage: Usage | None = None) -> Json:
    cand: Json = {"index": 0}
    if parts or finish is None:
        cand["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        cand["finishReason"] = finish
    out: Json = {"candidates": [cand]}
    if usage is not None:
        out["usageMetadata"] = usage_object.write(usage)
    out["modelVersion"] = meta.model
    out["responseId"] = rid
    return out


def sealed_call(call: ir.ToolCall, blocks: list[list[str | None]]) -> ir.ToolCall:
    """The answer's first function call, carrying the answer's Anthropic thinking blocks when it has
    no Gemini signature of its own (the part a Gemini client keeps in its history)."""
    if blocks and not call.gemini_signature:
        return ToolCall(call.id, call.name, call.arguments, carry.seal({"a": blocks}))
    return call


def encode_response(resp: ir.Response, meta: ir.ClientMeta) -> Json:
    blocks = carry.anthropic_blocks(resp.parts)
    first = next((p for p in resp.parts if isinstance(p, ToolCall)), None)
    parts = [o for p in resp.parts
             if (o := encode_part(sealed_call(p, blocks) if p is first else p)) is not None]
    return envelope(parts, meta, resp.id, stop_out(resp.stop, resp.native_stop), resp.usage)
