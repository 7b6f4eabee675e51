"""What a test scripts: one ``Reply`` per expected request, queued FIFO.

A ``Reply`` is protocol-neutral: the same reply is rendered as OpenAI, Anthropic
or Gemini depending on the endpoint that consumes it. Every field is optional;
``Reply()`` is the default "echo" answer. Precedence when several are given:

    error (or status >= 400)  -> an HTTP error in the protocol's error shape
                                 (with ``error_after`` on a stream: in-band,
                                 after that many stream events)
    body                      -> sent as-is (bytes/str) or JSON-encoded
    events                    -> a stream sent as-is (bytes/str) or framed (dict)
    otherwise                 -> text / reasoning / tool_calls rendered natively

Token-count endpoints consume replies too but only use the error, body,
events, headers and timing fields. ``ScriptQueue`` hands each request the
first queued reply that matches it.
``Reply.to_json`` / ``Reply.from_json`` are the control API's wire form.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

Event = bytes | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the fake model makes; ``id`` is generated when None."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in disjoint buckets, rendered with each protocol's semantics.

    ``input`` excludes cache reads and writes; ``output`` excludes reasoning.
    So OpenAI ``prompt_tokens = input + cache_read + cache_write`` and
    ``completion_tokens = output + reasoning``; Anthropic ``input_tokens = input``
    and ``output_tokens = output + reasoning``; Gemini ``promptTokenCount =
    input + cache_read + cache_write`` and ``candidatesTokenCount = output``.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def prompt_total(self) -> int:
        return self.input + self.cache_read + self.cache_write

    @property
    def output_total(self) -> int:
        return self.output + self.reasoning


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error rendered in the protocol's shape.

    ``type`` overrides the protocol-native type (OpenAI ``error.type``,
    Anthropic ``error.type``, Gemini ``error.status``); ``code`` is OpenAI's
    ``error.code``; ``retry_after`` adds a ``retry-after`` header (seconds).
    """

    status: int
    message: str = "fake upstream error"
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer; see the module docstring for precedence."""

    text: str | None = None  # None: "echo: <last user text>" unless tool_calls are given
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    finish_reason: str | None = None  # protocol-native, sent as-is
    usage: Usage | None = None  # None: deterministic word counts
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # bytes/str as-is, anything else JSON-encoded
    events: Sequence[Event] | None = None  # bytes/str as-is, dict framed as SSE
    error: ErrorReply | None = None
    error_after: int | None = None  # on a stream: send this many events, then the error in-band
    delay_first_byte: float = 0.0
    delay_between: float = 0.0
    disconnect_after: int | None = None  # pieces sent before the connection is dropped; -1: before the headers
    model: str | None = None  # match: only requests for this model
    path_contains: str | None = None  # match: only requests whose path?query contains this
    times: int | None = 1  # how many requests it answers; None = all, until reset

    def matches(self, model: str, target: str) -> bool:
        return (self.model is None or self.model == model) and (
            self.path_contains is None or self.path_contains in target
        )

    @property
    def effective_error(self) -> ErrorReply | None:
        """The error to send: ``error``, or a default one for a bare ``status >= 400``."""
        if self.error is not None:
            return self.error
        if self.status >= 400 and self.body is None and self.events is None:
            return ErrorReply(self.status)
        return None

    def to_json(self) -> dict[str, Any]:
        """The control API's JSON form (defaults left out, bytes decoded as UTF-8)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == _DEFAULTS[f.name]:
                continue
            if f.name == "tool_calls":
                value = [{"name": c.name, "args": dict(c.args), "id": c.id} for c in value]
            elif f.name in ("usage", "error"):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            elif f.name == "headers":
                value = dict(value)
            elif f.name == "body":
                value = _text(value)
            elif f.name == "events":
                value = [_text(e) for e in value]
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Reply:
        """Inverse of ``to_json``; raises ``ValueError`` on unknown or ill-typed fields."""
        unknown = set(obj) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
        kwargs = dict(obj)
        try:
            if "tool_calls" in kwargs:
                kwargs["tool_calls"] = tuple(ToolCall(**c) for c in kwargs["tool_calls"])
            if kwargs.get("usage") is not None:
                kwargs["usage"] = Usage(**kwargs["usage"])
            if kwargs.get("error") is not None:
                kwargs["error"] = ErrorReply(**kwargs["error"])
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_DEFAULTS: dict[str, Any] = {f.name: getattr(Reply(), f.name) for f in fields(Reply)}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class _Entry:
    reply: Reply
    remaining: int | None  # None: never used up


class ScriptQueue:
    """Thread-safe FIFO of replies; ``take`` consumes the first one that matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def push(self, reply: Reply) -> None:
        with self._lock:
            self._entries.append(_Entry(reply, reply.times))

    def take(self, model: str, target: str) -> Reply | None:
        with self._lock:
            for i, entry in enumerate(self._entries):
                if entry.reply.matches(model, target):
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining <= 0:
                            del self._entries[i]
                    return entry.reply
        return None

    def pending(self) -> list[Reply]:
        with self._lock:
            return [entry.reply for entry in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
