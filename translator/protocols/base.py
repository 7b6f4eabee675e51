"""The codec interface: everything one wire protocol means to the gateway.

A protocol is one folder, ``translator/protocols/<name>/``, whose ``CODEC`` is an
instance of a ``Codec`` subclass, listed once in the registry
(``translator/protocols/__init__.py``). The rest of the translator asks a codec;
it never tests which protocol it holds.

    endpoints      which request this is (path, method, headers)    endpoint(), body_routes, listing_routes,
                                                                     key_headers, envoy_match
    upstream       how a provider of the protocol is called          upstream_path(), credential(),
                                                                     upstream_headers(), model_in_body, with_model()
    translation    bodies and streams <-> IR (``translator/ir.py``)  decode_/encode_request, decode_/encode_response,
                                                                     stream_decoder(), stream_encoder(), tool_name()
    request facts  what admission and metering read in a body      output_cap(), tool_names(), asks_stream_usage(),
                                                                     stream_usage_option
    errors         the caller's error shape, in-band error events,  errors (its ``ErrorTable``), error_body(),
                   upstream errors                                   error_event(), decode_error()
    usage          the protocol's usage object                      read_usage(), write_usage()
    passthrough    reading a same-protocol answer as it passes      observer(), stream_frames()
    count tokens   count requests and answers                       counts_tokens, count_request(), decode_count(),
                                                                     encode_count_request(), encode_count()
    listing        ``GET /v1/models`` in the caller's shape         model_entry(), model_list()
    embeddings     its embeddings endpoints, if it has any          embedder (``protocols/embeddings.py``)

Methods with a body here are the common case; a protocol overrides what differs.
Everything is sans-I/O: a codec reads and writes bytes and dicts, nothing else.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

import orjson

from core.usage import Usage
from translator import ir
from translator.errors import ErrorTable, GatewayError, UserFacingError
from translator.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from translator.protocols.embeddings import Embedder

Json = dict[str, Any]
Query = Mapping[str, list[str]]  # the parsed query string (urllib.parse.parse_qs)
BYTES_PER_TOKEN = 4
SSE_CONTENT_TYPE = "text/event-stream"


def estimate_tokens(size: int) -> int:
    """About how many tokens ``size`` bytes (or characters) of prompt are: the gateway's one
    estimator, the same for every protocol (a count for a model that cannot count, the prompt of
    a request that never reported its usage, and — with its own margin — a hold)."""
    return size // BYTES_PER_TOKEN


class Kind(Enum):
    CHAT = "chat"  # a generation: chat/completions, messages, generateContent
    COUNT_TOKENS = "count_tokens"
    EMBED = "embed"  # embeddings of one input (Gemini's embedContent)
    EMBED_BATCH = "embed_batch"  # embeddings of any number of inputs (/v1/embeddings, Gemini's batchEmbedContents)
    LIST_MODELS = "list_models"
    GET_MODEL = "get_model"

    @property
    def embeds(self) -> bool:
        return self is Kind.EMBED or self is Kind.EMBED_BATCH

    @property
    def has_body(self) -> bool:
        return self is not Kind.LIST_MODELS and self is not Kind.GET_MODEL


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A request the gateway serves: whose protocol, which kind, and what its path said."""

    codec: Codec
    kind: Kind
    model: str | None = None  # when the path names the model (Gemini)
    stream: bool | None = None  # when the path says it (Gemini); else the body does
    sse: bool = True  # a stream the client reads as SSE (Gemini without alt=sse: one JSON array)
    query_key: str | None = None  # a key in the query string (Gemini's ?key=)

    @property
    def protocol(self) -> str:
        return self.codec.name


class FrameDecoder(TypingProtocol):
    """A stream's framing: bytes as they come -> whole frames (each with its ``raw`` bytes)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...
    def flush(self) -> list[SSEEvent]: ...


class Observer:
    """Reads a same-protocol answer as it passes, nothing re-serialised: usage, the finish
    reason, and whether the protocol's own last event came. One per response."""

    strips = False  # it drops some events (OpenAI's usage chunk a caller did not ask for)

    def __init__(self) -> None:
        self.usage = Usage()
        self.finish: str | None = None  # the protocol's own spelling
        self.complete = False
        # The stream ended with the protocol's own error event, which ends it for good (the Responses
        # API's response.failed): unfinished, but nothing is to be appended after it.
        self.failed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(finish={self.finish!r}, complete={self.complete})"

    def document(self, doc: Json) -> None:
        """A whole JSON answer, or one element of a stream sent as a JSON array."""
        raise NotImplementedError

    def event(self, ev: SSEEvent) -> bool:
        """One event of a stream; whether it goes on to the client."""
        raise NotImplementedError

    def error_event(self, err: UserFacingError) -> bytes | None:
        """``err`` in band after what passed, when framing it needs to know what passed (the Responses
        API numbers its events); None: the codec's ``error_event``."""
        return None


class Codec(ABC):
    """One wire protocol. Subclasses set the class attributes and implement the abstract methods."""

    name: str  # the registry key, the config's provider ``protocol`` and metering's protocol field
    errors: ErrorTable  # how the protocol spells each error kind (its folder's errors.py)
    # Envoy route matches (docs/architecture.md, "Routes"): body-carrying endpoints, and bodiless listings.
    body_routes: Mapping[str, Json] = {}
    listing_routes: Mapping[str, Json] = {}
    # Header matchers by which Envoy tells this protocol's callers, to shape its own replies (404, 413, 503 …);
    # the first also picks the not-found route. The registry's fallback protocol needs none.
    envoy_match: tuple[Json, ...] = ()
    key_headers: tuple[str, ...] = ()  # where its clients put their key, besides ``Authorization: Bearer``
    model_in_body: bool = True  # False: the upstream path names the model, the body never does
    counts_tokens: bool = False  # the protocol has a count-tokens endpoint
    array_streams: bool = False  # a caller may read a stream as one JSON array (Gemini without alt=sse)
    gen_ai_operation: str = "chat"  # gen_ai.operation.name of its chat requests (translator/metrics.py)
    # The protocol's embeddings endpoints (protocols/embeddings.py); None: it has none.
    embedder: Embedder | None = None
    renames_model: bool = False  # a passed-through stream names the client's model (``rename_model``)
    # The content type of its streams (its ``stream_frames``' framing); a translated stream the client reads is SSE.
    stream_content_type: str = SSE_CONTENT_TYPE

    def __repr__(self) -> str:
        return f"<codec {self.name}>"

    # --- endpoints ------------------------------------------------------------------

    @abstractmethod
    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        """This protocol's endpoint for the request, or None when it is not one of ours. A POST's may
        depend on its path and query only (the registry remembers it per path); ``headers`` tell GETs apart."""

    # --- upstream -------------------------------------------------------------------

    @abstractmethod
    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        """The request path under a provider's base URL path."""

    @abstractmethod
    def credential(self, key: str | None) -> dict[str, str]:
        """The header(s) carrying a provider's key (none without a key)."""

    def upstream_headers(self, client_headers: Collection[str], *, same: bool) -> tuple[Mapping[str, str],
                                                                                        frozenset[str]]:
        """Headers this protocol's upstreams need set, and caller headers they may get besides the
        common allow-list; ``same``: the caller speaks this protocol too."""
        return _NO_HEADERS, frozenset()

    def with_model(self, body: Json, model: str) -> Json:
        """A same-protocol body naming the upstream's model (only asked when ``model_in_body``)."""
        return {**body, "model": model}

    # --- translation ----------------------------------------------------------------

    @abstractmethod
    def decode_request(self, body: Json) -> ir.Request: ...

    @abstractmethod
    def encode_request(self, req: ir.Request, model: str, stream: bool) -> Json: ...

    @abstractmethod
    def decode_response(self, body: Json) -> ir.Response: ...

    @abstractmethod
    def encode_response(self, resp: ir.Response, meta: ir.ClientMeta) -> Json: ...

    @abstractmethod
    def stream_decoder(self) -> ir.StreamDecoder:
        """Upstream stream bytes -> IR events (``feed``/``flush``)."""

    @abstractmethod
    def stream_encoder(self, meta: ir.ClientMeta) -> ir.StreamEncoder:
        """IR events -> client stream bytes (``encode``/``close``); frames ``ir.Failed`` in band."""

    @abstractmethod
    def tool_name(self, name: str) -> str:
        """A tool name this protocol accepts for ``name`` (itself when valid), deterministically."""

    # --- request facts --------------------------------------------------------------

    @abstractmethod
    def tool_names(self, body: Json) -> tuple[str, ...]:
        """The tool names a request declares (to map shortened names back in the answer)."""

    @abstractmethod
    def output_cap(self, body: Json) -> int | None:
        """The caller's own cap on output tokens, if it set one."""

    def limit_output(self, body: Json, cap: int) -> Json:
        """``body`` (this protocol's request) asking for at most ``cap`` output tokens: a larger limit it sets
        is lowered (and whatever must stay below it); none set stays none. A deployment's ``max_output_tokens``."""
        raise NotImplementedError(f"protocol {self.name} cannot cap a request's output tokens yet")

    # The provider quirks it acts on (core.protocols.Protocol.quirks; a test checks the two agree)
    quirks: frozenset[str] = frozenset()

    def apply_quirks(self, body: Json, quirks: Collection[str]) -> Json:
        """``body`` (this protocol's request) changed as the provider's ``quirks`` ask (docs/providers.md)."""
        return body

    def asks_stream_usage(self, body: Json) -> bool:
        """Whether a streaming caller asked for a usage event it would otherwise not get."""
        return False

    # The top-level key and value a streaming request needs for its upstream to report usage (merged into a
    # value of the caller's own); None: this protocol's streams always report it.
    stream_usage_option: tuple[str, dict[str, Any]] | None = None

    # --- errors ---------------------------------------------------------------------

    @abstractmethod
    def error_body(self, err: UserFacingError) -> Json:
        """``err`` in this protocol's error shape."""

    def error_event(self, err: UserFacingError) -> bytes:
        """``err`` in band, for a stream the client is already reading (a ``data:`` event)."""
        return b"data: " + orjson.dumps(self.error_body(err)) + b"\n\n"

    def error_response(self, err: UserFacingError) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of ``err`` as a whole answer."""
        return err.status, {"content-type": "application/json", **err.headers}, orjson.dumps(self.error_body(err))

    @abstractmethod
    def decode_error(self, status: int, body: bytes) -> UserFacingError:
        """An upstream's error answer (any shape, even not JSON) as an error of the gateway's tree."""

    def for_client(self, err: UserFacingError) -> UserFacingError:
        """An upstream's error as this protocol's client gets it (its status and code for the kind)."""
        return self.errors.respell(err)

    def client_status(self, status: int) -> int:
        """An upstream's error status as this protocol's client gets it."""
        return self.errors.client_status(status)

    # --- usage ----------------------------------------------------------------------

    @abstractmethod
    def read_usage(self, raw: Any) -> Usage:
        """The protocol's usage object -> disjoint buckets (anything else: empty)."""

    @abstractmethod
    def write_usage(self, usage: Usage) -> Json: ...

    def stream_frames(self) -> FrameDecoder:
        """The framing of this protocol's streams, to read one as it passes: SSE. (A binary framing,
        such as AWS event streams, gives each frame as an ``SSEEvent`` too: type, payload, raw bytes.)"""
        return SSEDecoder()

    def rename_model(self, ev: SSEEvent, model: str) -> bytes | None:
        """A passed-through stream's first event naming ``model`` (only asked when ``renames_model``);
        None: it names no model."""
        return None

    @abstractmethod
    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        """A reader for one same-protocol answer; ``strip_usage_chunk``: the caller did not ask for
        the usage the gateway asked of the upstream on its behalf."""

    # --- count tokens ---------------------------------------------------------------

    def count_request(self, body: Json) -> Json:
        """The generation request inside a count-tokens request of this protocol."""
        return body

    def encode_count_request(self, req: ir.Request, model: str) -> Json:
        raise GatewayError(f"{self.name} has no token-count endpoint")

    def encode_count(self, tokens: int) -> Json:
        raise GatewayError(f"{self.name} has no token-count endpoint")

    def decode_count(self, doc: Json) -> object:
        """The number in an upstream's count-tokens answer (anything else when there is none)."""
        raise GatewayError(f"{self.name} has no token-count endpoint")

    def estimate_prompt(self, body: Json) -> int:
        """A local count of a count-tokens request's prompt, for a model no upstream can count:
        ``estimate_tokens`` over every string in the request but the model's name."""
        return max(1, estimate_tokens(_text_size(body)))

    # --- listing --------------------------------------------------------------------

    @abstractmethod
    def model_entry(self, name: str, owner: str) -> Json:
        """One model as ``GET /v1/models/{name}`` answers it."""

    @abstractmethod
    def model_list(self, entries: list[Json], names: list[str]) -> Json:
        """The answer to ``GET /v1/models``."""


_NO_HEADERS: Mapping[str, str] = {}

# ``GET /v1/models`` and ``/v1/models/{id}``: OpenAI's and Anthropic's SDKs (and a Gemini client with a base
# URL ending in /v1) share the path; their headers tell who asks. Rendered into Envoy's routes.
_V1_MODEL = re.compile(r"^/v1/models/(?P<model>[^/]+)$")
_GET = [{"name": ":method", "string_match": {"exact": "GET"}}]
V1_LISTING_ROUTES: Mapping[str, Json] = {
    "/v1/models": {"path": "/v1/models", "headers": _GET},
    "/v1/models/{id}": {"safe_regex": {"regex": _V1_MODEL.pattern}, "headers": _GET},
}


def v1_listing(codec: Codec, path: str, query_key: str | None) -> Endpoint | None:
    """``codec``'s endpoint for a ``GET`` of the shared ``/v1/models`` paths, or None."""
    if path == "/v1/models":
        return Endpoint(codec, Kind.LIST_MODELS, query_key=query_key)
    if m := _V1_MODEL.match(path):
        return Endpoint(codec, Kind.GET_MODEL, model=m["model"], query_key=query_key)
    return None


def query_value(query: Query, name: str) -> str | None:
    return query.get(name, [None])[0]


def dicts(value: Any) -> list[Json]:
    """The objects in a JSON array (nothing when ``value`` is not one)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text_size(v: Any) -> int:
    if isinstance(v, str):
        return len(v)
    if isinstance(v, dict):
        return sum(_text_size(x) for k, x in v.items() if k != "model")
    if isinstance(v, list):
        return sum(_text_size(x) for x in v)
    return 0
