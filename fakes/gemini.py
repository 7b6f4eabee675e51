"""Gemini generateContent, as generativelanguage.googleapis.com sends it (§3.3, §4.1).

``:streamGenerateContent?alt=sse`` streams ``data: <GenerateContentResponse>``
events only (no ``event:`` lines, no terminator); without ``alt=sse`` the same
chunks form one JSON array streamed piece by piece. Each chunk repeats
``modelVersion`` and ``responseId`` and carries ``usageMetadata`` with running
totals; the last one has ``finishReason`` (``STOP`` for function calls too).
Function calls arrive whole, one part each; with reasoning the first carries a
``thoughtSignature`` sibling — always, for a Gemini 3 model (a name with ``gemini-3``).

Gemini 3 models check requests as the API does, with its messages: every
``thoughtSignature`` must be one the fake gave (or Google's documented
``skip_thought_signature_validator``), and in the current turn (since the last user
content with text) each model content's first function call must carry one.
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

_GOOGLE: tuple[Header, ...] = (
    (b"vary", b"Origin, X-Origin, Referer"),
    (b"server", b"scaffolding on HTTPServer2"),
    (b"x-content-type-options", b"nosniff"),
)

_OPEN_MIDDLE = b'],"role":"model"},"index":0}],"usageMetadata":'  # a chunk without finishReason

_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiCodec(Codec):
    name = "gemini"
    json_headers = ((b"content-type", b"application/json; charset=UTF-8"), *_GOOGLE)
    sse_headers = (
        (b"content-type", b"text/event-stream"),
        (b"content-disposition", b"attachment"),
        *_GOOGLE,
    )

    def stream_headers(self, call: Call) -> tuple[Header, ...]:
        return self.sse_headers if call.sse else self.json_headers

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        inner = body.get("generateContentRequest")  # countTokens' alternative form
        if isinstance(inner, dict):
            body = inner
        system = body.get("systemInstruction", body.get("system_instruction"))
        prompt = collect_text(system.get("parts") if isinstance(system, dict) else None, [])
        last_user: list[str] = []
        if route.kind is Kind.GENERATE and "gemini-3" in (route.model or ""):
            check_signatures(turns(body, "contents"))
        for content in turns(body, "contents"):
            texts = collect_text(content.get("parts"), [])
            prompt += texts
            if content.get("role", "user") == "user":
                last_user = texts
        return Call(
            route.kind,
            route.model or "",
            stream=route.stream,
            sse=request.query.get("alt") == "sse",
            prompt=" ".join(prompt),
            last_user=" ".join(last_user),
        )

    def complete(self, call: Call, answer: Answer) -> bytes:
        return _chunks(call, answer, [_parts(call, answer, whole=True)])[0]

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        chunks = _chunks(call, answer, [[part] for part in _parts(call, answer, whole=False)])
        if call.sse:
            return [sse(c) for c in chunks]
        return [b"[" + chunks[0], *(b",\r\n" + c for c in chunks[1:]), b"]"]

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        default = _STATUSES.get(err.status, "INTERNAL" if err.status >= 500 else "INVALID_ARGUMENT")
        error = {"code": err.status, "message": err.message, "status": err.type or default}
        return orjson.dumps({"error": error})

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        body = self.error(err, request_id)
        if call.sse:
            return sse(body)
        return (b",\r\n" if after else b"[") + body + b"]"

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        return sse(orjson.dumps(payload))

    def count(self, call: Call) -> bytes:
        n = call.prompt_tokens
        return orjson.dumps({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]})

    def models(self, names: Sequence[str]) -> bytes:
        methods = ["generateContent", "streamGenerateContent", "countTokens"]
        models = [
            {
                "name": f"models/{n}",
                "version": "001",
                "displayName": n,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": methods,
            }
            for n in names
        ]
        return orjson.dumps({"models": models})


SKIP_SIGNATURE = "skip_thought_signature_validator"
_CORRUPTED = "Corrupted thought signature."
_MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
    "call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def _field(part: Mapping[str, Any], camel: str, snake: str) -> Any:
    return part.get(camel, part.get(snake))


def check_signatures(contents: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``BadRequest`` where Gemini 3 refuses the history (see the module docstring)."""
    parts = [[p for p in c.get("parts") or [] if isinstance(p, dict)] for c in contents]
    for ps in parts:
        for p in ps:
            sig = _field(p, "thoughtSignature", "thought_signature")
            if sig is not None and sig != SKIP_SIGNATURE and not valid_signature(None, sig):
                raise BadRequest(_CORRUPTED)
    start = 0
    for k, c in enumerate(contents):
        if c.get("role", "user") == "user" and any("text" in p for p in parts[k]) and not any(
                _field(p, "functionResponse", "function_response") for p in parts[k]):
            start = k + 1
    for k in range(start, len(contents)):
        if contents[k].get("role") != "model":
            continue
        first = next((p for p in parts[k] if _field(p, "functionCall", "function_call")), None)
        if first is not None and _field(first, "thoughtSignature", "thought_signature") is None:
            name = _field(first, "functionCall", "function_call").get("name")
            raise BadRequest(_MISSING.format(name=name, position=k + 1))


def _parts(call: Call, answer: Answer, *, whole: bool) -> list[dict[str, Any]]:
    """The answer's parts: whole texts, or one part per streamed word."""
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        thoughts = [answer.reasoning] if whole else text_pieces(answer.reasoning)
        parts += [{"text": p, "thought": True} for p in thoughts]
    if answer.text:
        parts += [{"text": p} for p in ([answer.text] if whole else text_pieces(answer.text))]
    for i, tool_call in enumerate(answer.tool_calls):
        function: dict[str, Any] = {"name": tool_call.name, "args": dict(tool_call.args)}
        if tool_call.id:
            function["id"] = tool_call.id
        part: dict[str, Any] = {"functionCall": function}
        if i == 0 and (answer.reasoning or "gemini-3" in call.model):
            part["thoughtSignature"] = signature(answer.reasoning or tool_call.name)
        parts.append(part)
    return parts or [{"text": ""}]


def _chunks(call: Call, answer: Answer, groups: list[list[dict[str, Any]]]) -> list[bytes]:
    """One GenerateContentResponse per group of parts; only the last one is finished.

    Built from precomputed byte templates: only the parts and the running usage
    are serialised per chunk.
    """
    tail = b',"modelVersion":%b,"responseId":%b}' % (
        orjson.dumps(call.model),
        orjson.dumps(random_id("", 23)),
    )
    last_middle = b'],"role":"model"},"finishReason":%b,"index":0}],"usageMetadata":' % (
        orjson.dumps(answer.finish_reason or "STOP")
    )
    usage, last = answer.usage, len(groups) - 1
    return [
        b'{"candidates":[{"content":{"parts":['
        + b",".join(map(orjson.dumps, parts))
        + (last_middle if i == last else _OPEN_MIDDLE)
        + orjson.dumps(_usage(usage, usage.output * (i + 1) // len(groups)))  # running total
        + tail
        for i, parts in enumerate(groups)
    ]


def _usage(usage: Usage, candidates: int) -> dict[str, Any]:
    prompt = usage.prompt_total
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + usage.reasoning,
    }
    if usage.cache_read:
        out["cachedContentTokenCount"] = usage.cache_read
    out["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if usage.reasoning:
        out["thoughtsTokenCount"] = usage.reasoning
    return out
