"""Responses ``response`` objects <-> IR, and the output items both answers and streams are made of.

A client gets one output item per piece of the answer, in order: ``reasoning`` (one per thinking
part: its text as a summary, its signature sealed in ``encrypted_content``, ``reasoning.py``),
``message`` (consecutive text, one ``output_text`` part), ``function_call`` — or ``custom_tool_call``
for a tool the client declared as custom, its ``input`` the call's one string argument. A length stop
is ``status: incomplete`` with ``incomplete_details.reason: max_output_tokens``; a refusal or safety
stop ``content_filter``.
"""

from __future__ import annotations

import uuid

from translator import ir
from translator.ir import Json, Stop, Text, Thinking, ToolCall
from translator.protocols.base import dicts
from translator.protocols.openai_responses import reasoning, usage
from translator.protocols.openai_responses.errors import decode_stream_error
from translator.protocols.openai_responses.request import CUSTOM_ARG

_LENGTH = frozenset({Stop.MAX_TOKENS, Stop.CONTEXT_WINDOW})
_FILTERED = frozenset({Stop.REFUSAL, Stop.SAFETY, Stop.RECITATION})
INCOMPLETE_IN = {"max_output_tokens": Stop.MAX_TOKENS, "content_filter": Stop.REFUSAL}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def item_id(prefix: str, resp_id: str, index: int) -> str:
    """An output item's id: stable for a response's id and the item's place in it."""
    return f"{prefix}_{ir.short_hash(resp_id, index)}"


def status_for(stop: Stop) -> tuple[str, Json | None]:
    """``status`` and ``incomplete_details`` of an answer that ended with ``stop``."""
    if stop in _LENGTH:
        return "incomplete", {"reason": "max_output_tokens"}
    if stop in _FILTERED:
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def stop_for(body: Json, has_calls: bool) -> tuple[Stop, str | None]:
    """The IR stop of a Responses answer (its status, the reason it is incomplete) and its own spelling."""
    status = body.get("status")
    details = body.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if status == "incomplete":
        stop = INCOMPLETE_IN.get(reason, Stop.OTHER) if isinstance(reason, str) else Stop.OTHER
        return ir.settle_stop(stop, has_calls), reason if isinstance(reason, str) else "incomplete"
    return ir.settle_stop(Stop.END, has_calls), status if isinstance(status, str) else None


def envelope(resp_id: str, meta: ir.ClientMeta, status: str, output: list[Json], usage_doc: Json | None, *,
             error: Json | None = None, incomplete: Json | None = None) -> Json:
    """A ``response`` object (what the answer, and each lifecycle event of a stream, carries)."""
    return {"id": resp_id, "object": "response", "created_at": meta.created, "status": status, "error": error,
            "incomplete_details": incomplete, "model": meta.model, "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage_doc, "metadata": {}}


# --- output items --------------------------------------------------------------------


def text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str) -> Json:
    content = [] if text is None else [text_part(text)]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, text: str | None, sealed: str | None) -> Json:
    item: Json = {"id": item_id, "type": "reasoning",
                  "summary": [] if not text else [{"type": "summary_text", "text": text}]}
    if sealed is not None:
        item["encrypted_content"] = sealed
    return item


def call_item(item_id: str, cid: str, name: str, value: str, status: str, *, custom: bool) -> Json:
    if custom:
        return {"id": item_id, "type": "custom_tool_call", "call_id": cid, "name": name, "input": value}
    return {"id": item_id, "type": "function_call", "status": status, "arguments": value, "call_id": cid,
            "name": name}


def custom_input(arguments: Json) -> str:
    """A custom tool's input, from the one-argument function call another protocol made."""
    value = arguments.get(CUSTOM_ARG)
    if isinstance(value, str):
        return value
    return ir.dumps(arguments) if arguments else ""


def output_items(resp_id: str, parts: list[ir.Part], custom: frozenset[str]) -> list[Json]:
    out: list[Json] = []
    for p in parts:
        if isinstance(p, Text) and p.text:
            if out and out[-1]["type"] == "message":
                out[-1]["content"][0]["text"] += p.text
            else:
                out.append(message_item(item_id("msg", resp_id, len(out)), p.text, "completed"))
        elif isinstance(p, Thinking):
            out.append(reasoning_item(item_id("rs", resp_id, len(out)), p.text, reasoning.thinking_seal(p)))
        elif isinstance(p, ToolCall):
            if p.gemini_signature:
                sealed = reasoning.call_seal(p.gemini_signature)
                out.append(reasoning_item(item_id("rs", resp_id, len(out)), None, sealed))
            is_custom = p.name in custom
            value = custom_input(p.arguments) if is_custom else ir.dumps(p.arguments)
            out.append(call_item(item_id("ctc" if is_custom else "fc", resp_id, len(out)), p.id, p.name, value,
                                 "completed", custom=is_custom))
    return out


# --- whole answers -------------------------------------------------------------------


def decode_response(body: Json) -> ir.Response:
    if body.get("status") == "failed":
        raise decode_stream_error(body.get("error"))
    parts: list[ir.Part] = []
    refused = False
    for item in dicts(body.get("output")):
        kind = item.get("type")
        if kind == "reasoning":
            text = "\n\n".join(str(s.get("text", "")) for s in dicts(item.get("summary")) if s.get("text"))
            text = text or "".join(str(c.get("text", "")) for c in dicts(item.get("content")))
            if text:
                parts.append(Thinking(text))
        elif kind == "message":
            for c in dicts(item.get("content")):
                if c.get("type") == "output_text" and c.get("text"):
                    parts.append(Text(str(c["text"])))
                elif c.get("type") == "refusal" and c.get("refusal"):
                    refused = True
                    parts.append(Text(str(c["refusal"])))
        elif kind == "function_call":
            args = ir.parse_args(str(item.get("arguments") or ""))
            parts.append(ToolCall(str(item.get("call_id", "")), str(item.get("name", "")), args or {}))
        elif kind == "custom_tool_call":
            parts.append(ToolCall(str(item.get("call_id", "")), str(item.get("name", "")),
                                  {CUSTOM_ARG: str(item.get("input", ""))}))
    stop, native = stop_for(body, any(isinstance(p, ToolCall) for p in parts))
    if refused and stop is Stop.END:
        stop = Stop.REFUSAL
    return ir.Response(id=str(body.get("id") or ""), parts=parts, stop=stop, usage=usage.read(body.get("usage")),
                       native_stop=native)


def client_id(upstream_id: str | None) -> str:
    """The response's id: the upstream's, with the ``resp_`` prefix when it has none."""
    if not upstream_id:
        return new_id("resp")
    return upstream_id if upstream_id.startswith("resp_") else f"resp_{upstream_id}"


def encode_response(resp: ir.Response, meta: ir.ClientMeta) -> Json:
    status, incomplete = status_for(resp.stop)
    rid = client_id(resp.id)
    return envelope(rid, meta, status, output_items(rid, resp.parts, meta.custom_tools), usage.write(resp.usage),
                    incomplete=incomplete)
