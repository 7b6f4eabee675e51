"""OpenAI ``chat.completion`` responses <-> IR.

Only ``choices[0]`` exists in the IR (``n`` > 1 is refused at request time).
Reasoning goes out as the non-standard ``message.reasoning_content`` (plus
``thinking_blocks`` when there are Anthropic signatures), never inside ``content``.
A ``refusal`` is text in the IR with the refusal stop reason.
"""

from __future__ import annotations

from translator import ir
from translator.ir import Json, Stop, Text, Thinking, ToolCall
from translator.protocols.openai import usage
from translator.protocols.openai.request import call_id

STOP_IN: dict[str, Stop] = {
    "stop": Stop.END, "length": Stop.MAX_TOKENS, "tool_calls": Stop.TOOL_USE,
    "function_call": Stop.TOOL_USE, "content_filter": Stop.REFUSAL,
}
STOP_OUT: dict[Stop, str] = {
    Stop.END: "stop", Stop.STOP_SEQUENCE: "stop", Stop.PAUSE: "stop",
    Stop.MAX_TOKENS: "length", Stop.CONTEXT_WINDOW: "length", Stop.TOOL_USE: "tool_calls",
    Stop.REFUSAL: "content_filter", Stop.SAFETY: "content_filter",
    Stop.RECITATION: "content_filter", Stop.OTHER: "content_filter",
    Stop.TOOL_ERROR: "stop", Stop.NO_IMAGE: "stop",
}


def stop_out(stop: Stop, native: str | None) -> str:
    return ir.encode_stop(stop, native, STOP_IN, STOP_OUT)


def decode_response(body: Json) -> ir.Response:
    choices = ir.as_list(body.get("choices"), "choices")
    choice = ir.as_dict(choices[0], "choices[0]") if choices else {}
    msg = ir.as_dict(choice.get("message") or {}, "choices[0].message")
    parts: list[ir.Part] = []
    if isinstance(msg.get("reasoning_content"), str) and msg["reasoning_content"]:
        parts.append(Thinking(msg["reasoning_content"]))
    if isinstance(msg.get("content"), str) and msg["content"]:
        parts.append(Text(msg["content"]))
    refused = isinstance(msg.get("refusal"), str) and bool(msg["refusal"])
    if refused:
        parts.append(Text(msg["refusal"]))
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = ir.parse_args(fn.get("arguments") or "")
        # Arguments cut off by a length stop are not an object: keep the call, empty.
        parts.append(ToolCall(str(tc.get("id", "")), str(fn.get("name", "")), args or {}))
    native = choice.get("finish_reason")
    stop = STOP_IN.get(native, Stop.END) if isinstance(native, str) else Stop.END
    if refused and stop is Stop.END:
        stop = Stop.REFUSAL
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    return ir.Response(
        id=str(body.get("id") or ""), parts=parts, stop=ir.settle_stop(stop, has_calls),
        usage=usage.read(body.get("usage")),
        native_stop=native if isinstance(native, str) else None,
    )


def client_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"


def encode_response(resp: ir.Response, meta: ir.ClientMeta) -> Json:
    text = ir.text_of(resp.parts)
    message: Json = {"role": "assistant", "content": text or None, "refusal": None}
    calls = [{"id": call_id(p.id), "type": "function",
              "function": {"name": p.name, "arguments": ir.dumps(p.arguments)}}
             for p in resp.parts if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = calls
    thinking = [p for p in resp.parts if isinstance(p, Thinking)]
    if thinking:
        message["reasoning_content"] = "".join(p.text for p in thinking)
        blocks = [_thinking_block(p) for p in thinking if p.signature or p.redacted]
        if blocks:
            message["thinking_blocks"] = blocks
    return {
        "id": client_id(resp.id),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": stop_out(resp.stop, resp.native_stop)}],
        "usage": usage.write(resp.usage),
    }


def _thinking_block(p: Thinking) -> Json:
    if p.redacted is not None:
        return {"type": "redacted_thinking", "data": p.redacted}
    return {"type": "thinking", "thinking": p.text, "signature": p.signature}
