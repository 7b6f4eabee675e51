"""OpenAI-compatible providers that check what their real counterparts check (docs/providers.md, "Quirks").

    POST /mistral/v1/chat/completions   Mistral: a field it does not know is a 422 ``extra_forbidden``
                                        (``stream_options``, ``max_completion_tokens``, an assistant's
                                        ``reasoning_content`` / ``thinking_blocks``), a ``developer`` message
                                        a 422 ``union_tag_invalid``, a tool-call id that is not 9 of
                                        [a-zA-Z0-9] a 400 ``invalid_function_call``; its own tool-call ids
                                        are 9 characters; a stream's last chunk carries usage unasked.
    POST /deepseek/chat/completions     DeepSeek (thinking mode): a ``developer`` message, ``max_tokens``
                                        above 8192, an assistant tool-call message without
                                        ``reasoning_content`` are 400s with DeepSeek's messages; answers
                                        carry ``reasoning_content`` (``Reply(reasoning=…)``).
    POST /quiet/v1/chat/completions     an OpenAI-compatible server that reports no usage in a stream,
                                        whatever ``stream_options`` says.

The bodies are the OpenAI fake's (``fakes.openai``); the errors are the ones these providers answer, as
quoted in their users' bug reports (docs/providers.md lists them).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import string
from collections.abc import Callable
from typing import Any

import orjson

from fakes.codec import Answer, BadRequest, Call, Kind, Route, json_object, sse
from fakes.http import Response
from fakes.openai import OpenAICodec
from fakes.recording import RecordedRequest

_JSON = [(b"content-type", b"application/json")]
_ID9 = re.compile(r"[A-Za-z0-9]{9}")
_ALNUM = string.ascii_letters + string.digits
DEEPSEEK_MAX_TOKENS = 8192


class MistralCodec(OpenAICodec):
    """Mistral's answers: 9-character tool-call ids, usage on a stream's last chunk without being asked."""

    def complete(self, call: Call, answer: Answer) -> bytes:
        return super().complete(call, _nine(answer))

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        pieces = super().stream(dataclasses.replace(call, stream_usage=False), _nine(answer))
        last = orjson.loads(pieces[-2].removeprefix(b"data: "))  # the finish chunk, before [DONE]
        u = answer.usage
        last["usage"] = {"prompt_tokens": u.prompt_total, "total_tokens": u.prompt_total + u.output_total,
                         "completion_tokens": u.output_total}
        pieces[-2] = sse(orjson.dumps(last))
        return pieces


class QuietCodec(OpenAICodec):
    """A server that never sends a usage chunk."""

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        return super().stream(dataclasses.replace(call, stream_usage=False), answer)


MISTRAL, QUIET, DEEPSEEK = MistralCodec(), QuietCodec(), OpenAICodec()


def _nine(answer: Answer) -> Answer:
    calls = tuple(dataclasses.replace(c, id=c.id or "".join(secrets.choice(_ALNUM) for _ in range(9)))
                  for c in answer.tool_calls)
    return dataclasses.replace(answer, tool_calls=calls)


def _assistants(body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    msgs = body.get("messages")
    return [(i, m) for i, m in enumerate(msgs if isinstance(msgs, list) else [])
            if isinstance(m, dict) and m.get("role") == "assistant"]


def _mistral(body: dict[str, Any]) -> Response | None:
    extra: list[tuple[list[str | int], Any]] = [(["body", k], body[k]) for k in ("stream_options",
                                                                                "max_completion_tokens") if k in body]
    extra += [(["body", "messages", i, "assistant", k], m[k]) for i, m in _assistants(body)
              for k in ("reasoning_content", "thinking_blocks") if k in m]
    if extra:
        detail = [{"type": "extra_forbidden", "loc": loc, "msg": "Extra inputs are not permitted", "input": v}
                  for loc, v in extra]
        return _mistral_error(422, {"detail": detail}, "invalid_request_error", None)
    for i, m in enumerate(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "developer":
            msg = ("Input tag 'developer' found using 'role' does not match any of the expected tags: "
                   "'system', 'user', 'assistant', 'tool'")
            detail = [{"type": "union_tag_invalid", "loc": ["body", "messages", i], "msg": msg, "input": m}]
            return _mistral_error(422, {"detail": detail}, "invalid_request_error", None)
        ids = [c.get("id") for c in m.get("tool_calls") or [] if isinstance(c, dict)] if isinstance(m, dict) else []
        ids += [m.get("tool_call_id")] if isinstance(m, dict) and m.get("role") == "tool" else []
        for cid in ids:
            if not isinstance(cid, str) or not _ID9.fullmatch(cid):
                return _mistral_error(400, f"Tool call id was {cid} but must be a-z, A-Z, 0-9, with a length of 9.",
                                      "invalid_function_call", "3280")
    return None


def _mistral_error(status: int, message: Any, kind: str, code: str | None) -> Response:
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    return Response(status, list(_JSON), [orjson.dumps(body)])


def _deepseek(body: dict[str, Any]) -> Response | None:
    for i, m in enumerate(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "developer":
            return _deepseek_error(f"Failed to deserialize the JSON body into the target type: messages[{i}].role: "
                                   "unknown variant `developer`, expected one of `system`, `user`, `assistant`, "
                                   "`tool`")
    limit = body.get("max_tokens")
    if isinstance(limit, int) and not 1 <= limit <= DEEPSEEK_MAX_TOKENS:
        return _deepseek_error(f"Invalid max_tokens value, the valid range of max_tokens is [1, {DEEPSEEK_MAX_TOKENS}]")
    for i, m in _assistants(body):
        if m.get("tool_calls") and "reasoning_content" not in m:
            return _deepseek_error(f"Missing `reasoning_content` field in the assistant message at message index {i}")
    return None


def _deepseek_error(message: str) -> Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}
    return Response(400, list(_JSON), [orjson.dumps({"error": error})])


_ROUTES: dict[str, tuple[OpenAICodec, Callable[[dict[str, Any]], Response | None]]] = {
    "/mistral/v1/chat/completions": (MISTRAL, _mistral),
    "/deepseek/chat/completions": (DEEPSEEK, _deepseek),
    "/quiet/v1/chat/completions": (QUIET, lambda body: None),
}


def serves(path: str) -> bool:
    return path in _ROUTES


def route(request: RecordedRequest) -> Route | Response | None:
    """The route for one of these providers' paths, or the error the provider answers the body with."""
    found = _ROUTES.get(request.path) if request.method == "POST" else None
    if found is None:
        return None
    codec, check = found
    try:
        body = json_object(request)
    except BadRequest:  # the codec's parse answers an unreadable body
        return Route(codec, Kind.GENERATE)
    return check(body) or Route(codec, Kind.GENERATE)
