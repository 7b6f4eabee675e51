"""Wire flavours: how a provider differs from its protocol's plain form (docs/providers.md).

Most providers speak their protocol as its codec writes it: the codec's path under the base URL,
its credential header, the body as translated. A cloud serves the same protocol with its own
request line, credential or signature, and small body changes (Azure OpenAI's deployment paths
and ``api-key``; Vertex AI's and Bedrock's paths, tokens, signatures and ``anthropic_version``).
A ``Flavour`` is that difference, one object per provider, built once at start-up; the request
path asks it on every attempt (``translator/extproc/upstream.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.config import Provider
from translator.endpoints import Kind
from translator.errors import ServiceUnavailable
from translator.protocols.base import Codec

Json = dict[str, Any]
# How long an attempt waits for a credential still being fetched at start (NotReady) before its 503.
NOT_READY_WAIT_S = 10.0


class NotReady(ServiceUnavailable):
    """The attempt's credential is still being fetched for the first time (a translator just started):
    the attempt may wait for the fetch to end, ``wait(timeout)`` (blocking), and ask again once."""

    def __init__(self, message: str, wait: Callable[[float], bool]) -> None:
        super().__init__(message)
        self.wait = wait


class Flavour:
    """The plain form: everything as the codec says."""

    # The body must be seen (and so buffered) on every attempt, even one that changes nothing in it
    # for the protocol: a signature over it, or a field the flavour adds.
    needs_body = False
    # Some of its error answers are not in its protocol's shape (a cloud's own, e.g. Vertex AI's Google-shaped
    # 401 or 429 in front of a Claude model): the router rewrites a same-protocol error in the caller's shape.
    respells_errors = False

    def __repr__(self) -> str:
        return type(self).__name__

    @property
    def fixed_headers(self) -> bool:
        """Whether an attempt's headers depend on the request's shape alone (no token refreshed, no signature over
        the body, no body of its own): the router then builds a direct route's once per shape."""
        return type(self).credential is Flavour.credential and type(self).sign is Flavour.sign and not self.needs_body

    def upstream_path(self, codec: Codec, base_path: str, kind: Kind, model: str, *, stream: bool,
                      sse: bool) -> str:
        """The request path (and query) of an attempt."""
        return codec.upstream_path(base_path, kind, model, stream=stream, sse=sse)

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        """The credential headers of an attempt (called on every attempt: a token may be refreshed)."""
        return codec.credential(key)

    def ready(self, timeout: float) -> None:
        """Wait (blocking, at most ``timeout`` seconds) for what the flavour fetches at start, e.g. a
        first access token; called once before the translator reports itself healthy."""

    def rewrites(self, kind: Kind) -> bool:
        """Whether ``body`` changes a request of this kind, so that its body must be read (always with
        ``needs_body``; a flavour may change only some kinds, e.g. token counts)."""
        return self.needs_body

    def body(self, codec: Codec, body: Json, kind: Kind, stream: bool) -> Json:
        """The upstream body as the codec wrote it, changed as the flavour needs (when ``rewrites(kind)``)."""
        return body

    def sign(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """Headers that depend on the final request (a signature), given its path, the headers the
        attempt sets and the body bytes (only with ``needs_body``)."""
        return {}

    def stream_content_type(self, codec: Codec) -> str:
        """The content type of its streams: the protocol's, unless the provider frames them its own way."""
        return codec.stream_content_type

    def reframe(self, codec: Codec, kind: Kind, status: int, stream: bool) -> Reframer | None:
        """What turns its answer into the protocol's own bytes, before anything reads it (None: it is already;
        Bedrock's InvokeModel wraps each Anthropic event in an event-stream frame, its errors are AWS's)."""
        return None


class Reframer(Protocol):
    """A provider's answer -> the same answer in its protocol's wire form, chunk by chunk (sans-I/O)."""

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


PLAIN = Flavour()


def for_provider(p: Provider, base: Path = Path(".")) -> Flavour:
    """The provider's flavour (its config says which); ``base``: where relative credential files are found (the
    translator's working directory, as for ``api_key``)."""
    if p.azure is not None:
        from translator.flavours.azure import AzureFlavour
        return AzureFlavour(p.azure)
    if p.vertex is not None:
        from translator.flavours import vertex
        return vertex.flavour(p.vertex, p.protocol.vertex_publisher or "", p.vertex.credentials_file)
    if p.aws is not None:
        from translator.flavours.bedrock import BedrockFlavour
        return BedrockFlavour(p, base)
    return PLAIN
