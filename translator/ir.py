"""The canonical intermediate representation every protocol codec decodes into.

    client body --decode--> Request --encode--> upstream body
    upstream body --decode--> Response --encode--> client body
    upstream SSE --StreamDecoder--> [Event] --StreamEncoder--> client stream

A codec (``protocols/<name>/``, the interface in ``protocols/base.py``) decodes
its protocol into these types and encodes them back; the facade in
``protocols/convert.py`` chains two codecs. Rules for what one protocol cannot
express live in each codec's module docstring.

Signatures are provider-private: ``Thinking.signature`` is an Anthropic
signature, ``gemini_signature`` fields carry Gemini ``thoughtSignature``s.
Each encoder only ever emits its own kind.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

import orjson

from core.usage import Usage
from translator import errors
from translator.errors import BadRequest, UserFacingError

Json = dict[str, Any]


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Stop(StrEnum):
    """Why generation ended; encoders map each value with a table (docs/protocols.md, "Stop reasons")."""

    END = "end"  # natural end of turn
    STOP_SEQUENCE = "stop_sequence"
    PAUSE = "pause"  # Anthropic pause_turn
    MAX_TOKENS = "max_tokens"
    CONTEXT_WINDOW = "context_window"  # Anthropic model_context_window_exceeded
    TOOL_USE = "tool_use"
    REFUSAL = "refusal"  # OpenAI content_filter, Anthropic refusal
    SAFETY = "safety"  # Gemini safety family and blocked prompts
    RECITATION = "recitation"
    OTHER = "other"  # Gemini OTHER, IMAGE_OTHER, LANGUAGE
    TOOL_ERROR = "tool_error"  # Gemini MALFORMED_FUNCTION_CALL and friends
    NO_IMAGE = "no_image"


_LENGTH = frozenset({Stop.MAX_TOKENS, Stop.CONTEXT_WINDOW})


def settle_stop(stop: Stop, has_tool_calls: bool) -> Stop:
    """Tool calls force the tool stop reason; only a length stop wins over them."""
    if has_tool_calls and stop not in _LENGTH:
        return Stop.TOOL_USE
    return stop


def encode_stop(
    stop: Stop, native: str | None, own: dict[str, Stop], table: dict[Stop, str]
) -> str:
    """Map ``stop`` to a protocol's value, keeping ``native`` when it is that protocol's own
    spelling of the same reason (so Gemini ``BLOCKLIST`` survives Gemini to Gemini)."""
    if native is not None and own.get(native) is stop:
        return native
    return table[stop]


# --- content ------------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str
    gemini_signature: str | None = None


@dataclass(slots=True)
class SystemText(Text):
    """A system message inside the conversation (Anthropic's ``system`` role in ``messages``), kept
    where it was, in a user turn. An encoder with a system message of its own places it there
    (OpenAI); one with a single system prompt hoists it there in order (``hoist_system``); an
    encoder that knows nothing of it sends it as the user text it is a subclass of."""


@dataclass(slots=True)
class Media:
    """An image, PDF or audio clip: inline base64 ``data`` or a ``url``."""

    media_type: str
    data: str | None = None
    url: str | None = None
    filename: str | None = None


@dataclass(slots=True)
class Thinking:
    text: str
    signature: str | None = None  # Anthropic signature
    redacted: str | None = None  # Anthropic redacted_thinking data
    gemini_signature: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Json
    gemini_signature: str | None = None


@dataclass(slots=True)
class ToolResult:
    call_id: str
    name: str | None
    content: list[Text | Media]
    is_error: bool = False


Part = Text | Media | Thinking | ToolCall | ToolResult


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]


# --- request ------------------------------------------------------------------------


@dataclass(slots=True)
class ToolDef:
    name: str
    description: str | None
    parameters: Json
    strict: bool | None = None


class ToolMode(StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


class CustomToolName(str):
    """A declared tool's name (``Codec.tool_names``) that marks it as a *custom* tool: free-form
    input, not JSON arguments (the Responses API's ``custom`` tools). Another protocol sees it as a
    function with one string argument; the client's encoder turns such calls back into custom calls
    (``ClientMeta.custom_tools``)."""

    __slots__ = ()


@dataclass(slots=True)
class ToolChoice:
    mode: ToolMode
    names: tuple[str, ...] = ()  # restricts the callable tools; REQUIRED + one name = named


@dataclass(slots=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    schema: Json | None = None
    name: str | None = None
    strict: bool | None = None


# Reasoning effort <-> thinking budget (docs/protocols.md, "Thinking and reasoning").
EFFORT_BUDGET: dict[str, int] = {
    "minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384,
}


def effort_for_budget(budget: int) -> str:
    if budget <= 0:
        return "none"
    for effort, floor in (("max", 16384), ("xhigh", 8192), ("high", 4096), ("medium", 2048)):
        if budget >= floor:
            return effort
    return "low" if budget >= 1024 else "minimal"


@dataclass(slots=True)
class Reasoning:
    """Either an ``effort`` word or a token ``budget`` (0 = off, -1 = dynamic)."""

    effort: str | None = None
    budget: int | None = None
    include_thoughts: bool | None = None

    @property
    def off(self) -> bool:
        return self.effort == "none" or self.budget == 0

    def as_budget(self, default: int = 4096) -> int:
        if self.budget is not None and self.budget > 0:
            return self.budget
        if self.effort in EFFORT_BUDGET:
            return EFFORT_BUDGET[self.effort]
        return default

    def as_effort(self) -> str:
        if self.effort is not None:
            return self.effort
        if self.budget is not None and self.budget >= 0:
            return effort_for_budget(self.budget)
        return "medium"


@dataclass(slots=True)
class Request:
    messages: list[Message]
    system: list[Text] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    # The upstream provider's quirks (docs/providers.md, "Quirks"), for an encoder that acts on one
    quirks: frozenset[str] = frozenset()


# --- response -----------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    id: str
    parts: list[Part]
    stop: Stop
    usage: Usage
    native_stop: str | None = None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ClientMeta:
    """What a response encoder needs to know about the client's side of the exchange."""

    model: str
    created: int
    include_usage: bool = True  # OpenAI: the client asked for the usage chunk
    sse: bool = True  # the client reads SSE (Gemini without alt=sse reads one JSON array)
    custom_tools: frozenset[str] = frozenset()  # Responses: tools declared as custom (free-form input)


# --- stream events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    id: str | None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    gemini_signature: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str
    gemini_signature: str | None = None


@dataclass(frozen=True, slots=True)
class SignatureDelta:
    signature: str  # Anthropic signature of the thinking block being streamed


@dataclass(frozen=True, slots=True)
class RedactedThinking:
    data: str


@dataclass(frozen=True, slots=True)
class ToolStart:
    index: int  # tool ordinal in the response: 0, 1, 2 …
    id: str
    name: str
    gemini_signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolArgs:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class ToolDone:
    index: int


@dataclass(frozen=True, slots=True)
class UsageSeen:
    usage: Usage  # cumulative; merged field by field


@dataclass(frozen=True, slots=True)
class Finished:
    stop: Stop
    native: str | None = None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The upstream ended the stream properly (after ``Finished``)."""


@dataclass(frozen=True, slots=True)
class Failed:
    error: UserFacingError


def cut_short() -> Failed:
    """What an encoder sends when the upstream stream ended without a proper end."""
    return Failed(errors.cut_short())


Event = (
    Started | TextDelta | ThinkingDelta | SignatureDelta | RedactedThinking | ToolStart
    | ToolArgs | ToolDone | UsageSeen | Finished | Ended | Failed
)


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...
    def flush(self) -> list[Event]: ...


class StreamEncoder(Protocol):
    def encode(self, events: list[Event]) -> bytes: ...
    def close(self) -> bytes: ...


# --- helpers shared by codecs -------------------------------------------------------


def short_hash(*parts: object, n: int = 24) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:n]


def fit_name(
    name: str, bad: re.Pattern[str], limit: int, *, lead: re.Pattern[str] | None = None
) -> str:
    """``name`` if valid, else a deterministic valid stand-in: cleaned prefix + 8 hex.

    The same function maps definitions, calls and ``tool_choice``, so a request stays
    consistent; the facade reverses it on the response using the client's tool names.
    """
    ok = name and not bad.search(name) and len(name) <= limit
    if ok and (lead is None or lead.match(name)):
        return name
    clean = bad.sub("_", name) or "tool"
    if lead is not None and not lead.match(clean):
        clean = "_" + clean
    return f"{clean[: min(limit, 64) - 9]}_{short_hash(name, n=8)}"


def fit_id(call_id: str, bad: re.Pattern[str], limit: int) -> str:
    """A tool-call id valid for a protocol; applied identically to calls and results."""
    if call_id and not bad.search(call_id) and len(call_id) <= limit:
        return call_id
    return f"call_{short_hash(call_id, n=min(limit - 5, 32))}"


def media_kind(media_type: str) -> Literal["image", "pdf", "audio", "other"]:
    if media_type.startswith("image/"):
        return "image"
    if media_type == "application/pdf":
        return "pdf"
    if media_type.startswith("audio/"):
        return "audio"
    return "other"


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<data>`` -> (mime, data)."""
    m = re.match(r"data:([\w.+/-]+);base64,(.*)\Z", url, re.S)
    return (m.group(1).lower(), m.group(2)) if m else None


def text_of(parts: Sequence[Part]) -> str:
    return "".join(p.text for p in parts if isinstance(p, Text))


def merge_turns(messages: list[Message]) -> list[Message]:
    """Consecutive turns of the same role become one turn (parts in order)."""
    out: list[Message] = []
    for m in messages:
        if out and out[-1].role is m.role:
            out[-1].parts.extend(m.parts)
        else:
            out.append(Message(m.role, list(m.parts)))
    return out


W = TypeVar("W")


def tidy_turns(turns: list[tuple[Role, list[W]]], placeholder: Callable[[], W], *,
               ends_with_user: bool) -> list[tuple[Role, list[W]]]:
    """Encoded turns as Anthropic and Gemini want them (docs/protocols.md).

    Turns left empty by encoding are dropped and the neighbours that become adjacent are
    merged; a ``placeholder()`` user turn starts a conversation that would start with the
    assistant, and ends one whose last user turn was left empty (a trailing assistant turn
    would otherwise be read as a prefill).
    """
    out: list[tuple[Role, list[W]]] = []
    for role, wire in turns:
        if not wire:
            continue
        if out and out[-1][0] is role:
            out[-1][1].extend(wire)
        else:
            out.append((role, list(wire)))
    if not out or out[0][0] is Role.ASSISTANT:
        out.insert(0, (Role.USER, [placeholder()]))
    if ends_with_user and out[-1][0] is Role.ASSISTANT:
        out.append((Role.USER, [placeholder()]))
    return out


def hoist_system(req: Request) -> list[Text]:
    """The system prompt with every ``SystemText`` of the conversation appended in order; they are
    removed from the turns (a turn left empty is dropped by ``tidy_turns``)."""
    extra: list[Text] = []
    for m in req.messages:
        if any(isinstance(p, SystemText) for p in m.parts):
            extra += [Text(p.text) for p in m.parts if isinstance(p, SystemText)]
            m.parts = [p for p in m.parts if not isinstance(p, SystemText)]
    return [*req.system, *extra]


def rename_tools(req: Request, fn: Callable[[str], str]) -> None:
    """Apply a tool-name mapping to definitions, choice and history, in place."""
    for t in req.tools:
        t.name = fn(t.name)
    if req.tool_choice is not None:
        req.tool_choice.names = tuple(fn(n) for n in req.tool_choice.names)
    for m in req.messages:
        for p in m.parts:
            if isinstance(p, ToolCall):
                p.name = fn(p.name)
            elif isinstance(p, ToolResult) and p.name is not None:
                p.name = fn(p.name)


def parse_args(raw: str) -> Json | None:
    """Tool arguments as an object: ``""`` -> ``{}``; invalid or non-object JSON -> None."""
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def args_complete(raw: str) -> bool:
    """Whether streamed tool arguments already form a whole JSON object (no more can follow)."""
    return bool(raw.strip()) and parse_args(raw) is not None


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def as_dict(value: Any, where: str) -> Json:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def as_number(value: Any, where: str, *, integer: bool = False) -> Any:
    """``value`` when it is a number (an integer if asked) or absent (None); else a 400."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                         and (not integer or isinstance(value, int))):
        return value
    raise BadRequest(f"{where} must be {'an integer' if integer else 'a number'}")


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be an array")
    return value


def parse_json(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
