"""Bedrock ``ConverseResponse`` <-> IR: ``output.message.content`` blocks, ``stopReason``, ``usage``.

Stop reasons: ``guardrail_intervened`` and ``content_filtered`` are the refusal and safety stops,
``malformed_tool_use`` the tool-error stop, ``malformed_model_output`` "other".
"""

from __future__ import annotations

import uuid

from translator import ir
from translator.ir import Json, Stop, ToolCall
from translator.protocols.bedrock_converse import usage
from translator.protocols.bedrock_converse.request import _block, decode_block

STOP_IN: dict[str, Stop] = {
    "end_turn": Stop.END, "tool_use": Stop.TOOL_USE, "max_tokens": Stop.MAX_TOKENS,
    "stop_sequence": Stop.STOP_SEQUENCE, "guardrail_intervened": Stop.REFUSAL, "content_filtered": Stop.SAFETY,
    "malformed_model_output": Stop.OTHER, "malformed_tool_use": Stop.TOOL_ERROR,
    "model_context_window_exceeded": Stop.CONTEXT_WINDOW,
}
STOP_OUT: dict[Stop, str] = {
    Stop.END: "end_turn", Stop.STOP_SEQUENCE: "stop_sequence", Stop.PAUSE: "end_turn", Stop.MAX_TOKENS: "max_tokens",
    Stop.CONTEXT_WINDOW: "model_context_window_exceeded", Stop.TOOL_USE: "tool_use",
    Stop.REFUSAL: "guardrail_intervened", Stop.SAFETY: "content_filtered", Stop.RECITATION: "content_filtered",
    Stop.OTHER: "malformed_model_output", Stop.TOOL_ERROR: "malformed_tool_use", Stop.NO_IMAGE: "end_turn",
}


def decode_stop(native: object) -> Stop:
    return STOP_IN.get(native, Stop.END) if isinstance(native, str) else Stop.END


def decode_response(body: Json) -> ir.Response:
    output = ir.as_dict(body.get("output") or {}, "output")
    message = ir.as_dict(output.get("message") or {}, "output.message")
    names: dict[str, str] = {}
    parts = [p for i, b in enumerate(ir.as_list(message.get("content"), "content"))
             if isinstance(b, dict) and (p := decode_block(b, f"content[{i}]", names)) is not None]
    native = body.get("stopReason")
    return ir.Response(
        id=f"bedrock-{uuid.uuid4().hex}",  # Converse answers carry no id
        parts=parts,
        stop=ir.settle_stop(decode_stop(native), any(isinstance(p, ToolCall) for p in parts)),
        usage=usage.read(body.get("usage")),
        native_stop=native if isinstance(native, str) else None,
    )


def encode_response(resp: ir.Response, meta: ir.ClientMeta) -> Json:
    content = [b for p in resp.parts if (b := _block(p)) is not None]
    return {"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": ir.encode_stop(resp.stop, resp.native_stop, STOP_IN, STOP_OUT),
            "usage": usage.write(resp.usage), "metrics": {"latencyMs": 0}}
