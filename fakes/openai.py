"""OpenAI Chat Completions, as api.openai.com sends it (protocols.md §3.1, §4.1).

Streams are ``data: <chunk>\\n\\n`` events: a first chunk carrying the role,
content / ``reasoning_content`` / tool-call fragments (id and name on the first
fragment of each call only), one chunk with ``finish_reason``, with
``stream_options.include_usage`` a ``"usage": null`` on every chunk plus a final
``{"choices": [], "usage": {...}}`` chunk, and ``data: [DONE]``. A ``user`` longer
than 64 characters is refused, as the API refuses it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from fakes.codec import (
    Answer,
    BadRequest,
    Call,
    Codec,
    Route,
    collect_text,
    json_object,
    json_pieces,
    random_id,
    sse,
    text_pieces,
    turns,
)
from fakes.http import Header
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply, Usage

FINGERPRINT = "fp_fake0001"
_COMMON: tuple[Header, ...] = ((b"openai-version", b"2020-10-01"), (b"openai-processing-ms", b"1"))
_DONE = b"data: [DONE]\n\n"

# status -> (error.type, error.code) when the script does not say
_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class OpenAICodec(Codec):
    name = "openai"
    json_headers = ((b"content-type", b"application/json"), *_COMMON)
    sse_headers = ((b"content-type", b"text/event-stream; charset=utf-8"), *_COMMON)

    def request_id_headers(self, request_id: str) -> list[Header]:
        return [(b"x-request-id", request_id.encode())]

    def new_request_id(self) -> str:
        return "req_" + secrets.token_hex(16)

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter")
        user = body.get("user")
        if isinstance(user, str) and len(user) > 64:
            raise BadRequest(f"Invalid 'user': string too long. Expected a string with maximum length 64, "
                             f"but got a string with length {len(user)} instead.")
        prompt: list[str] = []
        last_user: list[str] = []
        for message in turns(body, "messages"):
            texts = collect_text(message.get("content"), [])
            prompt += texts
            if message.get("role") == "user":
                last_user = texts
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return Call(
            route.kind,
            model,
            stream=stream,
            stream_usage=stream and include_usage,
            prompt=" ".join(prompt),
            last_user=" ".join(last_user),
        )

    def complete(self, call: Call, answer: Answer) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if answer.text or not answer.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                for call_id, name, args in _calls(answer)
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _finish(answer),
        }
        return orjson.dumps(
            {
                **_envelope(call, "chat.completion"),
                "choices": [choice],
                "usage": _usage(answer.usage),
            }
        )

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        envelope = orjson.dumps(_envelope(call, "chat.completion.chunk"))[:-1]
        usage_null = b',"usage":null}\n\n' if call.stream_usage else b"}\n\n"
        head = b"data: " + envelope + b',"choices":[{"index":0,"delta":'
        open_tail = b',"logprobs":null,"finish_reason":null}]' + usage_null
        pieces = [head + orjson.dumps(delta) + open_tail for delta in _deltas(answer)]
        finish = orjson.dumps(_finish(answer))
        pieces.append(head + b'{},"logprobs":null,"finish_reason":' + finish + b"}]" + usage_null)
        if call.stream_usage:
            usage = orjson.dumps(_usage(answer.usage))
            pieces.append(b"data: " + envelope + b',"choices":[],"usage":' + usage + b"}\n\n")
        pieces.append(_DONE)
        return pieces

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        default_type, default_code = _ERROR_TYPES.get(
            err.status, ("server_error" if err.status >= 500 else "invalid_request_error", None)
        )
        error = {
            "message": err.message,
            "type": err.type or default_type,
            "param": None,
            "code": err.code or default_code,
        }
        return orjson.dumps({"error": error})

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        return sse(self.error(err, request_id))

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        return sse(orjson.dumps(payload))

    def models(self, names: Sequence[str]) -> bytes:
        data = [{"id": n, "object": "model", "created": 1686935002, "owned_by": "system"} for n in names]
        return orjson.dumps({"object": "list", "data": data})


def _envelope(call: Call, kind: str) -> dict[str, Any]:
    return {
        "id": random_id("chatcmpl-", 29),
        "object": kind,
        "created": int(time.time()),
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _finish(answer: Answer) -> str:
    return answer.finish_reason or ("tool_calls" if answer.tool_calls else "stop")


def _calls(answer: Answer) -> list[tuple[str, str, str]]:
    """(id, name, arguments JSON) per tool call."""
    return [(c.id or random_id("call_", 24), c.name, orjson.dumps(dict(c.args)).decode()) for c in answer.tool_calls]


def _deltas(answer: Answer) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"reasoning_content": p} for p in text_pieces(answer.reasoning)]
    deltas += [{"content": p} for p in text_pieces(answer.text)]
    if deltas or not answer.tool_calls:
        deltas.insert(0, {"role": "assistant", "content": "", "refusal": None})
    for index, (call_id, name, args) in enumerate(_calls(answer)):
        function = {"name": name, "arguments": ""}
        first = {"index": index, "id": call_id, "type": "function", "function": function}
        if deltas:
            deltas.append({"tool_calls": [first]})
        else:  # an answer that starts with a tool call carries the role on it
            deltas.append({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in json_pieces(args)]
    return deltas


def _usage(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cache_read, "audio_tokens": 0}
    if usage.cache_write:
        prompt_details["cache_write_tokens"] = usage.cache_write
    return {
        "prompt_tokens": usage.prompt_total,
        "completion_tokens": usage.output_total,
        "total_tokens": usage.prompt_total + usage.output_total,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
