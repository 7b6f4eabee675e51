"""Quirks of OpenAI-compatible servers (docs/providers.md, "Quirks"): what the gateway changes in a Chat
Completions body for a provider whose ``quirks`` name them, whether the body was translated from
another protocol or is the caller's own (same protocol). Each is a function of the body, in place.

- ``reasoning_content``: the provider wants the reasoning of earlier turns sent back as assistant
  ``reasoning_content`` (DeepSeek's thinking mode answers 400 "Missing `reasoning_content` field in the
  assistant message at message index N" for a tool-call turn without it). A translated body gets it
  from the IR's thinking (``request.encode_request`` reads ``Request.quirks``); a caller's own body
  keeps what it sent. Reading ``reasoning_content`` in answers is not a quirk: the decoders always do.
- ``no_reasoning_history``: the provider refuses those fields (Mistral: 422 ``extra_forbidden``):
  ``reasoning_content`` and ``thinking_blocks`` are dropped from assistant messages.
- ``tool_call_id_9_alnum``: ids must be 9 characters of ``[a-zA-Z0-9]`` (Mistral): every other id is
  replaced by 9 characters of a hash of it, the same in the assistant's ``tool_calls`` and in the
  ``tool`` message answering it.
- ``no_stream_options``: ``stream_options`` is dropped (usage then is what the provider reports on
  its own, or the metering estimate: docs/providers.md).
- ``max_tokens_only``: ``max_completion_tokens`` is sent as ``max_tokens``.
- ``no_developer_role``: a ``developer`` message is sent as ``system``.
- ``no_strict_tools``: ``strict`` is dropped from tool definitions and a ``json_schema`` response format.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Collection
from typing import Any

Json = dict[str, Any]

_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = string.ascii_letters + string.digits


def id9(call_id: str) -> str:
    """A tool-call id of 9 characters of [a-zA-Z0-9]: ``call_id`` itself when it is one, else from its hash."""
    if _ALNUM9.fullmatch(call_id):
        return call_id
    n = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


def _messages(body: Json, role: str) -> list[Json]:
    msgs = body.get("messages")
    return [m for m in msgs if isinstance(m, dict) and m.get("role") == role] if isinstance(msgs, list) else []


def _no_reasoning_history(body: Json) -> None:
    for m in _messages(body, "assistant"):
        m.pop("reasoning_content", None)
        m.pop("thinking_blocks", None)


def _tool_call_id_9_alnum(body: Json) -> None:
    for m in _messages(body, "assistant"):
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                call["id"] = id9(call["id"])
    for m in _messages(body, "tool"):
        if isinstance(m.get("tool_call_id"), str):
            m["tool_call_id"] = id9(m["tool_call_id"])


def _no_stream_options(body: Json) -> None:
    body.pop("stream_options", None)


def _max_tokens_only(body: Json) -> None:
    if "max_completion_tokens" in body:
        limit = body.pop("max_completion_tokens")
        body.setdefault("max_tokens", limit)


def _no_developer_role(body: Json) -> None:
    for m in _messages(body, "developer"):
        m["role"] = "system"


def _no_strict_tools(body: Json) -> None:
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            tool["function"].pop("strict", None)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
        fmt["json_schema"].pop("strict", None)


# name -> what it changes in a body (reasoning_content: nothing here, the encoder writes it)
APPLY: dict[str, Callable[[Json], None] | None] = {
    "reasoning_content": None,
    "no_reasoning_history": _no_reasoning_history,
    "tool_call_id_9_alnum": _tool_call_id_9_alnum,
    "no_stream_options": _no_stream_options,
    "max_tokens_only": _max_tokens_only,
    "no_developer_role": _no_developer_role,
    "no_strict_tools": _no_strict_tools,
}


def apply(body: Json, quirks: Collection[str]) -> Json:
    """``body`` changed in place as ``quirks`` ask (names the config checked against ``APPLY``)."""
    for q in quirks:
        fn = APPLY[q]
        if fn is not None:
            fn(body)
    return body


def limit_output(body: Json, cap: int) -> Json:
    """At most ``cap`` output tokens: a limit the body sets above it is lowered; none set stays none."""
    for key in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(key), int) and body[key] > cap:
            body[key] = cap
    return body
