"""Anthropic Messages, as api.anthropic.com sends it (protocols.md §3.2, §4.1).

Streams are named events in this order: ``message_start`` (input usage,
``output_tokens: 1``), per block ``content_block_start`` / deltas /
``content_block_stop`` with a ``ping`` right after the first block starts,
``message_delta`` (stop reason and cumulative usage), ``message_stop``.
Blocks come thinking (``thinking_delta`` then ``signature_delta``), text
(``text_delta``), tool_use (``input_json_delta``, the first one empty).

Requests are checked as the API checks them, with its messages: a ``system`` role
inside ``messages`` needs the ``mid-conversation-system`` beta; every thinking block
must carry the signature the fake gave its text (``signature``), every redacted block
data the fake could have given; with thinking on, the tool-use loop the request
continues must start with a thinking block; with it off, a trailing assistant message
may hold none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from fakes.codec import (
    Answer,
    BadRequest,
    Call,
    Codec,
    Kind,
    Route,
    collect_text,
    json_object,
    json_pieces,
    random_id,
    signature,
    sse,
    text_pieces,
    turns,
    valid_signature,
)
from fakes.http import Header
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply, Usage

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicCodec(Codec):
    name = "anthropic"
    json_headers = ((b"content-type", b"application/json"),)
    sse_headers = (
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    )

    def request_id_headers(self, request_id: str) -> list[Header]:
        return [(b"request-id", request_id.encode())]

    def new_request_id(self) -> str:
        return random_id("req_011C", 20)

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required")
        if route.kind is Kind.GENERATE and not isinstance(body.get("max_tokens"), int):
            raise BadRequest("max_tokens: Field required")
        prompt = collect_text(body.get("system"), [])
        last_user: list[str] = []
        if route.kind is Kind.GENERATE:
            check_history(turns(body, "messages"), body.get("thinking"), request.headers.get("anthropic-beta", ""))
        for message in turns(body, "messages"):
            texts = collect_text(message.get("content"), [])
            prompt += texts
            if message.get("role") == "user":
                last_user = texts
        return Call(
            route.kind,
            model,
            stream=body.get("stream") is True,
            prompt=" ".join(prompt),
            last_user=" ".join(last_user),
        )

    def complete(self, call: Call, answer: Answer) -> bytes:
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            content.append(
                {
                    "type": "thinking",
                    "thinking": answer.reasoning,
                    "signature": signature(answer.reasoning),
                }
            )
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        content += [
            {"type": "tool_use", "id": call_id, "name": name, "input": args} for call_id, name, args in _calls(answer)
        ]
        message = _message(call, content, answer)
        message["usage"] = _usage(answer.usage, final=True)
        return orjson.dumps(message)

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        start = _message(call, [], None)
        start["usage"] = _usage(answer.usage, final=False)
        pieces = [_event({"type": "message_start", "message": start})]
        blocks = _blocks(answer)
        for index, (block, deltas) in enumerate(blocks):
            pieces.append(_event({"type": "content_block_start", "index": index, "content_block": block}))
            if index == 0:
                pieces.append(_PING)
            pieces += [_event({"type": "content_block_delta", "index": index, "delta": delta}) for delta in deltas]
            pieces.append(_event({"type": "content_block_stop", "index": index}))
        if not blocks:
            pieces.append(_PING)
        usage = _usage(answer.usage, final=True)
        for key in ("cache_creation", "service_tier"):  # message_start-only fields
            del usage[key]
        delta = {"stop_reason": _stop_reason(answer), "stop_sequence": None}
        pieces.append(_event({"type": "message_delta", "delta": delta, "usage": usage}))
        pieces.append(_MESSAGE_STOP)
        return pieces

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        default = _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        error = {"type": err.type or default, "message": err.message}
        return orjson.dumps({"type": "error", "error": error, "request_id": request_id})

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        return sse(self.error(err, request_id), "error")

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        return _event(payload)

    def count(self, call: Call) -> bytes:
        return orjson.dumps({"input_tokens": call.prompt_tokens})

    def models(self, names: Sequence[str]) -> bytes:
        data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-05-14T00:00:00Z"} for n in names]
        first, last = (names[0], names[-1]) if names else (None, None)
        return orjson.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})


# The API's own words (2025-2026), so that the gateway's handling is tested against them.
_LOOP_WITHOUT_THINKING = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. When "
    "`thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from "
    "previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
_BAD_SIGNATURE = "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
_BAD_REDACTED = "messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
_THINKING_WHEN_OFF = (
    "messages.{i}.content.{j}: When thinking is disabled, an `assistant` message in the final position cannot "
    "contain `thinking`. To use thinking blocks, enable `thinking` in your request."
)
_THINKING = ("thinking", "redacted_thinking")


def check_history(messages: Sequence[Mapping[str, Any]], thinking: Any, betas: str) -> None:
    """Raise ``BadRequest`` for a conversation the API refuses (see the module docstring)."""
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant") and not (role == "system" and "mid-conversation-system" in betas):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = m.get("content")
        for j, b in enumerate(content if isinstance(content, list) else []):
            if not isinstance(b, dict):
                continue
            if b.get("type") == "thinking" and not valid_signature(str(b.get("thinking", "")), b.get("signature")):
                raise BadRequest(_BAD_SIGNATURE.format(i=i, j=j))
            if b.get("type") == "redacted_thinking" and not valid_signature(None, b.get("data")):
                raise BadRequest(_BAD_REDACTED.format(i=i, j=j))
    on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    blocks = [_blocks_of(m) for m in messages]
    if on and blocks and messages[-1].get("role") == "user" and any(b.get("type") == "tool_result"
                                                                    for b in blocks[-1]):
        start = 0  # the loop: everything since the last user message without a tool result
        for k in range(len(messages) - 1, -1, -1):
            if messages[k].get("role") == "user" and not any(b.get("type") == "tool_result" for b in blocks[k]):
                start = k + 1
                break
        first = next((k for k in range(start, len(messages)) if messages[k].get("role") == "assistant"), None)
        if first is not None and (not blocks[first] or blocks[first][0].get("type") not in _THINKING):
            found = blocks[first][0].get("type") if blocks[first] else "nothing"
            raise BadRequest(_LOOP_WITHOUT_THINKING.format(i=first, found=found))
    if not on and messages and messages[-1].get("role") == "assistant":
        for j, b in enumerate(blocks[-1]):
            if b.get("type") in _THINKING:
                raise BadRequest(_THINKING_WHEN_OFF.format(i=len(messages) - 1, j=j))


def _blocks_of(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _event(payload: Mapping[str, Any]) -> bytes:
    return sse(orjson.dumps(payload), str(payload.get("type", "message")))


def _message(call: Call, content: list[dict[str, Any]], answer: Answer | None) -> dict[str, Any]:
    return {
        "id": random_id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": _stop_reason(answer) if answer is not None else None,
        "stop_sequence": None,
    }


def _stop_reason(answer: Answer) -> str:
    return answer.finish_reason or ("tool_use" if answer.tool_calls else "end_turn")


def _calls(answer: Answer) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id or random_id("toolu_01", 22), c.name, dict(c.args)) for c in answer.tool_calls]


def _blocks(answer: Answer) -> list[tuple[dict[str, Any], list[dict[str, str]]]]:
    """(content_block_start block, its deltas) for every block of the answer."""
    blocks: list[tuple[dict[str, Any], list[dict[str, str]]]] = []
    if answer.reasoning:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in text_pieces(answer.reasoning)]
        deltas.append({"type": "signature_delta", "signature": signature(answer.reasoning)})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if answer.text:
        deltas = [{"type": "text_delta", "text": p} for p in text_pieces(answer.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for call_id, name, args in _calls(answer):
        fragments = ["", *json_pieces(orjson.dumps(args).decode())]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in fragments]
        blocks.append(({"type": "tool_use", "id": call_id, "name": name, "input": {}}, deltas))
    return blocks


def _usage(usage: Usage, *, final: bool) -> dict[str, Any]:
    """Usage as sent; before the answer (``message_start``) output is 1, as recorded."""
    out: dict[str, Any] = {
        "input_tokens": usage.input,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_total if final else 1,
        "service_tier": "standard",
    }
    if usage.reasoning and final:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return out
