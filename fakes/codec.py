"""What the protocol codecs share: the request facts, the answer, the interface.

A codec turns a recorded request into a ``Call`` (protocol-neutral facts:
model, streaming, prompt text) and renders an ``Answer`` back in its own wire
format, either whole or as a list of ready-to-send stream pieces. The server
never looks inside a protocol; the codecs never do I/O.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from fakes.http import Header
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply, ToolCall, Usage

_WORD = re.compile(r"\s*\S+|\s+")  # a word with its leading whitespace; trailing blanks alone
_JSON_TOKEN = re.compile(r"\w+|\W+")  # '{"city":"Paris"}' -> '{"', 'city', '":"', 'Paris', '"}'
_ID_ALPHABET = str.maketrans("-_", "xy")


class BadRequest(Exception):
    """The request is not valid for the protocol; rendered as its 400 error."""


class Kind(enum.Enum):
    GENERATE = "generate"
    COUNT = "count"
    MODELS = "models"


@dataclass(frozen=True, slots=True)
class Route:
    codec: Codec
    kind: Kind
    model: str | None = None  # Gemini carries the model in the path
    stream: bool = False  # Gemini carries streaming in the path


@dataclass(frozen=True, slots=True)
class Call:
    """The facts of one request that the answer depends on."""

    kind: Kind
    model: str
    stream: bool = False
    sse: bool = True  # False: Gemini streamGenerateContent without alt=sse (a JSON array)
    stream_usage: bool = False  # OpenAI stream_options.include_usage
    prompt: str = ""  # all prompt text (system and every turn), for token counts
    last_user: str = ""  # text of the last user turn, for the echo
    custom_tools: frozenset[str] = frozenset()  # Responses: tools declared custom (their calls are custom calls)
    encrypted_reasoning: bool = False  # Responses: include asks for reasoning.encrypted_content
    response_id: str = ""  # Responses: the answer's id, chosen with the request (an in-band error names it too)

    @property
    def prompt_tokens(self) -> int:
        return words(self.prompt) + PROMPT_OVERHEAD


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str | None  # protocol-native override


PROMPT_OVERHEAD = 3  # echo usage: input tokens = prompt words + this


def words(text: str) -> int:
    return len(text.split())


def text_pieces(text: str) -> list[str]:
    """Word-by-word stream pieces; joined they give ``text`` back exactly."""
    return _WORD.findall(text)


def json_pieces(text: str) -> list[str]:
    """Tool-argument fragments the way OpenAI streams them."""
    return _JSON_TOKEN.findall(text)


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + secrets.token_urlsafe(length)[:length].translate(_ID_ALPHABET)


def collect_text(value: Any, out: list[str]) -> list[str]:
    """Append every text found in a message content, whatever the protocol.

    Handles a plain string, and lists of blocks/parts carrying ``text``
    (OpenAI parts, Anthropic blocks, Gemini parts) or nested ``content``
    (Anthropic ``tool_result``).
    """
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                text = item.get("text")
                if isinstance(text, str):
                    out.append(text)
                elif "content" in item:
                    collect_text(item["content"], out)
    return out


def signature(text: str) -> str:
    """A stable fake reasoning signature (Anthropic ``signature``, Gemini ``thoughtSignature``)."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest() * 2).decode()


def valid_signature(text: str | None, sig: object) -> bool:
    """Whether ``sig`` is one the fake gave (for ``text``; any text when None), in standard or URL-safe
    base64 (google-genai re-encodes Gemini's bytes URL-safe): what a provider's check of its own
    signature comes down to. A signature sealed by another party, edited or for other text fails."""
    if not isinstance(sig, str):
        return False
    raw = sig.replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError:
        return False
    if len(data) != 64 or data[:32] != data[32:]:
        return False
    return text is None or data[:32] == hashlib.sha256(text.encode()).digest()


def json_object(request: RecordedRequest) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise BadRequest("We could not parse the JSON body of your request.")
    return body


def turns(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The request's list of turns (``messages`` / ``contents``), validated."""
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise BadRequest(f"{key}: Field required (a list of objects)")
    return value


def sse(data: bytes, event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data + b"\n\n"


class Codec(ABC):
    """One protocol's wire format; stateless, one shared instance per protocol."""

    name: ClassVar[str]
    json_headers: ClassVar[tuple[Header, ...]]
    sse_headers: ClassVar[tuple[Header, ...]]

    def stream_headers(self, call: Call) -> tuple[Header, ...]:
        return self.sse_headers

    def request_id_headers(self, request_id: str) -> list[Header]:
        """Headers naming the request id (none by default)."""
        return []

    def new_request_id(self) -> str:
        return random_id("req_", 24)

    def error_headers(self, err: ErrorReply) -> list[Header]:
        """Headers an HTTP error carries besides the body (Bedrock's ``x-amzn-ErrorType``); none by default."""
        return []

    @abstractmethod
    def parse(self, request: RecordedRequest, route: Route) -> Call:
        """Request facts; raises ``BadRequest`` for what the real API would refuse."""

    @abstractmethod
    def complete(self, call: Call, answer: Answer) -> bytes:
        """The non-streaming response body."""

    @abstractmethod
    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        """The streaming body as pieces, terminator included."""

    @abstractmethod
    def error(self, err: ErrorReply, request_id: str) -> bytes:
        """An HTTP error body."""

    @abstractmethod
    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        """An in-band error event for a stream that has sent ``after`` pieces."""

    @abstractmethod
    def frame(self, payload: Mapping[str, Any]) -> bytes:
        """A raw scripted event as one stream piece."""

    def count(self, call: Call) -> bytes:
        """The token-count response body (only routed for protocols that have one)."""
        raise NotImplementedError(f"{self.name} has no token-count endpoint")

    @abstractmethod
    def models(self, names: Sequence[str]) -> bytes:
        """The model-list response body."""
