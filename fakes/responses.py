"""OpenAI Responses API (``POST /v1/responses``), as api.openai.com sends it.

A non-streamed answer is a ``response`` object whose ``output`` holds, in order, a ``reasoning``
item (its text as one summary part; ``encrypted_content`` when the request's ``include`` asks
for ``reasoning.encrypted_content``), a ``message`` item (one ``output_text`` part) and one
``function_call`` per tool call — a ``custom_tool_call`` (``input``: the call's ``input``
argument) for a tool the request declared ``custom``. A stream is ``event:``-named events, each
with its ``sequence_number``: ``response.created``, ``response.in_progress``, per item
``response.output_item.added`` / its deltas / ``response.output_item.done``, and
``response.completed`` (``response.incomplete`` when the script's ``finish_reason`` names an
incomplete reason, e.g. ``max_output_tokens``). Usage: ``input_tokens`` includes cached tokens,
``output_tokens`` includes reasoning. An in-band error is ``response.failed``. HTTP errors have
Chat Completions' shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
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
)
from fakes.http import Header
from fakes.openai import OpenAICodec
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply, Usage

_INCOMPLETE = frozenset({"max_output_tokens", "content_filter"})
# status -> the code response.failed carries when the script names none
_FAILED_CODES = {400: "invalid_prompt", 429: "rate_limit_exceeded"}


class ResponsesCodec(Codec):
    name = "openai-responses"
    json_headers = OpenAICodec.json_headers
    sse_headers = OpenAICodec.sse_headers
    _openai = OpenAICodec()

    def request_id_headers(self, request_id: str) -> list[Header]:
        return self._openai.request_id_headers(request_id)

    def new_request_id(self) -> str:
        return self._openai.new_request_id()

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("Missing required parameter: 'model'.")
        raw = body.get("input")
        if not isinstance(raw, str | list):
            raise BadRequest("Missing required parameter: 'input'.")
        prompt = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
        last_user: list[str] = []
        for item in [{"role": "user", "content": raw}] if isinstance(raw, str) else raw:
            if not isinstance(item, dict):
                raise BadRequest("Invalid type for 'input': expected an array of objects.")
            texts = collect_text(item.get("content"), []) + collect_text(item.get("output"), [])
            prompt += texts
            if item.get("role") == "user":
                last_user = texts
        tools = body.get("tools")
        tools = tools if isinstance(tools, list) else []
        include = body.get("include")
        include = include if isinstance(include, list) else []
        return Call(
            route.kind,
            model,
            stream=body.get("stream") is True,
            prompt=" ".join(prompt),
            last_user=" ".join(last_user),
            custom_tools=frozenset(t["name"] for t in tools if isinstance(t, dict) and t.get("type") == "custom"),
            encrypted_reasoning="reasoning.encrypted_content" in include,
            response_id=random_id("resp_", 48),
        )

    def complete(self, call: Call, answer: Answer) -> bytes:
        call = _with_id(call)
        items = [item for item, _ in _items(call, answer)]
        return orjson.dumps(_response(call, answer, _final_status(answer), items, _usage(answer.usage)))

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        call = _with_id(call)
        seq = _Sequence()
        pieces = [seq.event("response.created", response=_response(call, answer, "in_progress", [], None)),
                  seq.event("response.in_progress", response=_response(call, answer, "in_progress", [], None))]
        items = []
        for index, (item, deltas) in enumerate(_items(call, answer)):
            items.append(item)
            pieces.append(seq.event("response.output_item.added", output_index=index, item=_in_progress(item)))
            pieces += [seq.event(kind, **{"output_index": index, "item_id": item["id"], **fields})
                       for kind, fields in deltas]
            pieces.append(seq.event("response.output_item.done", output_index=index, item=item))
        status = _final_status(answer)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        pieces.append(seq.event(kind, response=_response(call, answer, status, items, _usage(answer.usage))))
        return pieces

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        return self._openai.error(err, request_id)

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        code = err.code or _FAILED_CODES.get(err.status, "server_error")
        error = {"code": code, "message": err.message}
        if err.type is not None:
            error["type"] = err.type
        resp = {**_response(call, None, "failed", [], None), "error": error}
        doc = {"type": "response.failed", "sequence_number": after, "response": resp}
        return sse(orjson.dumps(doc), "response.failed")

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        return sse(orjson.dumps(payload), str(payload.get("type", "message")))

    def models(self, names: Sequence[str]) -> bytes:
        return self._openai.models(names)


def _with_id(call: Call) -> Call:
    """``call`` with its answer's id (one parsed from a request has it already)."""
    return call if call.response_id else dataclasses.replace(call, response_id=random_id("resp_", 48))


class _Sequence:
    """Frames events, numbering them from 0."""

    def __init__(self) -> None:
        self.n = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        doc = {"type": kind, "sequence_number": self.n, **fields}
        self.n += 1
        return sse(orjson.dumps(doc), kind)


def _final_status(answer: Answer) -> str:
    return "incomplete" if answer.finish_reason in _INCOMPLETE else "completed"


def _response(call: Call, answer: Answer | None, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    incomplete = {"reason": answer.finish_reason} if answer is not None and status == "incomplete" else None
    return {
        "id": call.response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": None, "incomplete_details": incomplete, "instructions": None,
        "max_output_tokens": None, "model": call.model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": False,
        "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def encrypted(reasoning: str) -> str:
    """A stable stand-in for OpenAI's encrypted reasoning (opaque to everyone but OpenAI)."""
    return "gAAAAAB" + hashlib.sha256(b"encrypted:" + reasoning.encode()).hexdigest()


Deltas = list[tuple[str, dict[str, Any]]]


def _items(call: Call, answer: Answer) -> Iterator[tuple[dict[str, Any], Deltas]]:
    """Each output item whole, with the stream events between its ``added`` and ``done``."""
    if answer.reasoning:
        item: dict[str, Any] = {"id": random_id("rs_", 48), "type": "reasoning",
                                "summary": [{"type": "summary_text", "text": answer.reasoning}]}
        if call.encrypted_reasoning:
            item["encrypted_content"] = encrypted(answer.reasoning)
        part = {"summary_index": 0}
        deltas: Deltas = [("response.reasoning_summary_part.added", {**part, "part": {"type": "summary_text",
                                                                                     "text": ""}})]
        deltas += [("response.reasoning_summary_text.delta", {**part, "delta": p})
                   for p in text_pieces(answer.reasoning)]
        deltas += [("response.reasoning_summary_text.done", {**part, "text": answer.reasoning}),
                   ("response.reasoning_summary_part.done", {**part, "part": {"type": "summary_text",
                                                                             "text": answer.reasoning}})]
        yield item, deltas
    if answer.text:
        text = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
        item = {"id": random_id("msg_", 48), "type": "message", "status": "completed", "role": "assistant",
                "content": [text]}
        part = {"content_index": 0}
        deltas = [("response.content_part.added", {**part, "part": {**text, "text": ""}})]
        deltas += [("response.output_text.delta", {**part, "delta": p, "logprobs": []})
                   for p in text_pieces(answer.text)]
        deltas += [("response.output_text.done", {**part, "text": answer.text, "logprobs": []}),
                   ("response.content_part.done", {**part, "part": text})]
        yield item, deltas
    for c in answer.tool_calls:
        call_id = c.id or random_id("call_", 24)
        if c.name in call.custom_tools:
            value = str(c.args.get("input", ""))
            item = {"id": random_id("ctc_", 48), "type": "custom_tool_call", "status": "completed",
                    "call_id": call_id, "name": c.name, "input": value}
            deltas = [("response.custom_tool_call_input.delta", {"delta": p}) for p in text_pieces(value)]
            deltas.append(("response.custom_tool_call_input.done", {"input": value}))
        else:
            args = orjson.dumps(dict(c.args)).decode()
            item = {"id": random_id("fc_", 48), "type": "function_call", "status": "completed",
                    "arguments": args, "call_id": call_id, "name": c.name}
            deltas = [("response.function_call_arguments.delta", {"delta": p}) for p in json_pieces(args)]
            deltas.append(("response.function_call_arguments.done", {"name": c.name, "arguments": args}))
        yield item, deltas


def _in_progress(item: dict[str, Any]) -> dict[str, Any]:
    """An item as ``output_item.added`` shows it: nothing generated yet."""
    if item["type"] == "message":
        return {**item, "status": "in_progress", "content": []}
    if item["type"] == "reasoning":
        return {k: v for k, v in item.items() if k != "encrypted_content"} | {"summary": []}
    if item["type"] == "function_call":
        return {**item, "status": "in_progress", "arguments": ""}
    return {**item, "status": "in_progress", "input": ""}


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_total,
        "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output_total,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.prompt_total + usage.output_total,
    }
