"""The upstream-level filter: runs once per attempt, inside the deployment's cluster.

Envoy hands it the attempt's endpoint metadata (which deployment, which protocol)
with the request headers, and the original client body on every attempt. It sets
everything the deployment needs on every attempt — path, credential, body —
because header mutations of an earlier attempt persist into the next one.

When the body needs no change (same protocol, same model name) the reply to the
headers switches the body mode to NONE: one round trip, and the body goes
upstream untouched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.message import DecodeError

from core._gen.tokengate.routing.v1 import context_pb2
from core.protocols import Protocol
from translator.endpoints import Kind
from translator.errors import GatewayError, UpstreamError, UserFacingError
from translator.extproc import messages as m
from translator.flavours import NOT_READY_WAIT_S, NotReady
from translator.protocols import REGISTRY, embeddings
from translator.protocols.base import Codec
from translator.protocols.convert import translate_count_request, translate_request
from translator.state import Gateway, Target
from translator.tracing import Trace, fail
from translator.upstream_http import CTX_HEADER, RESPONSE_TYPE_HEADER

T = TypeVar("T")
CTX_ATTR = f"request.headers['{CTX_HEADER}']"
# The caller's headers a provider gets (besides what each attempt sets itself). x-forwarded-proto
# stays because Envoy finds no route for a request without it.
FORWARDED = frozenset({"content-type", "content-length", "accept", "user-agent", "x-request-id", "x-forwarded-proto"})
META_ATTR = "xds.upstream_host_metadata"
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})  # Envoy's, for this attempt: kept only when configured
SKIP_BODY = ProcessingMode(request_body_mode=ProcessingMode.NONE)
# Another protocol: the body is translated, and the response status mapped (response headers sent).
_TRANSLATE = ProcessingMode(
    request_body_mode=ProcessingMode.BUFFERED,
    response_header_mode=ProcessingMode.SEND,
    response_body_mode=ProcessingMode.NONE,
)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What the router-level filter learnt about the caller: the x-tokengate-ctx header, an
    ``UpstreamContext`` message in unpadded base64url."""

    protocol: Protocol
    kind: Kind
    stream: bool
    sse: bool
    model: str

    @classmethod
    def decode(cls, raw: str) -> Ctx:
        """ValueError for a header that holds no context."""
        return _decode(raw)

    def encode(self) -> str:
        return _encode(self)


# A few distinct contexts (protocol, kind, flags, model) make up all traffic: each is encoded and
# parsed once per process, then found by its value.
@functools.lru_cache(maxsize=1024)
def _decode(raw: str) -> Ctx:
    try:
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
        msg = context_pb2.UpstreamContext.FromString(data)
        return Ctx(Protocol(msg.protocol), Kind(msg.kind), msg.stream, msg.sse, msg.model)
    except (binascii.Error, DecodeError, ValueError) as exc:
        raise ValueError(f"unreadable {CTX_HEADER} header: {exc!r}") from None


@functools.lru_cache(maxsize=1024)
def _encode(ctx: Ctx) -> str:
    msg = context_pb2.UpstreamContext(protocol=ctx.protocol.value, kind=ctx.kind.value, stream=ctx.stream,
                                      sse=ctx.sse, model=ctx.model)
    return base64.urlsafe_b64encode(msg.SerializeToString()).rstrip(b"=").decode()


def client_codec(req: pb.ProcessingRequest) -> Codec:
    """The caller's protocol, for shaping an error; the registry's fallback when the context is unreadable."""
    try:
        return REGISTRY.get(Ctx.decode(str(m.attributes(req).get(CTX_ATTR) or "")).protocol)
    except (ValueError, GatewayError):
        return REGISTRY.fallback


def attempt_headers(caller: Codec, kind: Kind, stream: bool, sse: bool, t: Target,
                    client_headers: Collection[str]) -> tuple[dict[str, str], list[str]]:
    """The headers to set and remove for an attempt to ``t``: path, credential, protocol headers.

    ``client_headers``: the names of the headers the request carries. Only FORWARDED ones (and
    those the upstream's protocol adds, such as Anthropic's version and beta headers to an Anthropic
    upstream of an Anthropic caller) go on: no cookie, client address, tracing or SDK header, no
    credential, and no accept-encoding (a compressed answer could not be read for usage).
    """
    up = t.codec
    same = caller is up
    # Translated streams are read as SSE; only a caller of the upstream's own protocol may ask for another framing.
    f = t.flavour
    headers = {":path": f.upstream_path(up, t.base_path, kind, t.model, stream=stream, sse=sse if same else True),
               **f.credential(up, t.credential)}
    extra, also_kept = up.upstream_headers(client_headers, same=same)
    headers.update(extra)
    keep = FORWARDED | also_kept if also_kept else FORWARDED
    if not same:
        headers["content-type"] = "application/json"
    if stream and ((not same and not sse) or reframes(caller, t)):
        # the translated stream is one JSON array, or SSE where the upstream's framing is another (AWS's)
        headers[RESPONSE_TYPE_HEADER] = stream_type(caller, sse)
    # x-envoy-*: Envoy refuses an ext_proc's change to them (counted as rejected_header_mutations); the one it
    # adds itself, the client's address, the provider's route removes (docs/architecture.md)
    remove = [h for h in client_headers
              if h not in keep and h not in headers and not h.startswith((":", "x-tokengate-", "x-envoy-"))]
    return headers, remove


async def waited(call: Callable[[], T]) -> T:
    """``call()``; when a credential it needs is still being fetched for the first time (``NotReady``: a
    translator just started), once more after that fetch ended, waited for off the event loop and at
    most ``NOT_READY_WAIT_S``."""
    try:
        return call()
    except NotReady as exc:
        await asyncio.to_thread(exc.wait, NOT_READY_WAIT_S)
        return call()


def reframes(caller: Codec, t: Target) -> bool:
    """Whether a stream from ``t`` is framed otherwise than ``caller`` reads one (AWS event streams), so its content
    type is set to the caller's."""
    return t.flavour.stream_content_type(t.codec) != caller.stream_content_type


def stream_type(caller: Codec, sse: bool) -> str:
    """The content type of a translated stream as ``caller`` reads it: its protocol's stream framing, or one JSON
    array (Gemini without ``alt=sse``)."""
    return caller.stream_content_type if sse else "application/json"


def needs_body(caller: Codec, model: str, t: Target, kind: Kind) -> bool:
    """Whether an attempt to ``t`` must see the body: to rewrite it (another protocol, or another model
    name; a Gemini batch of embeddings names the model in each request), or because the provider's
    flavour changes or signs it."""
    return (caller is not t.codec or _adjusts(t, kind) or t.flavour.rewrites(kind)
            or ((t.codec.model_in_body or kind.embeds) and model != t.model))


def attempt_body(caller: Codec, kind: Kind, stream: bool, t: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The caller's parsed body as ``t`` needs it."""
    if kind.embeds:
        out = embeddings.translate_request(caller, t.codec, body, kind, upstream_model=t.model)
    elif caller is t.codec:
        out = t.codec.with_model(body, t.model)
    elif kind is Kind.COUNT_TOKENS:
        out = translate_count_request(caller, t.codec, body, upstream_model=t.model)
    else:
        out = translate_request(caller, t.codec, body, upstream_model=t.model, stream=stream, quirks=t.quirks)
    if _adjusts(t, kind):  # the provider's quirks and the deployment's output cap, whatever the caller's protocol
        out = t.codec.apply_quirks(out, t.quirks)
        if t.max_output is not None:
            out = t.codec.limit_output(out, t.max_output)
    return t.flavour.body(t.codec, out, kind, stream) if t.flavour.rewrites(kind) else out


def renames_only(caller: Codec, t: Target, kind: Kind) -> bool:
    """Whether the one change an attempt to ``t`` makes to the caller's body is the model's name (``renamed``)."""
    return caller is t.codec and not kind.embeds and not _adjusts(t, kind) and not t.flavour.rewrites(kind)


_FIRST_MODEL = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"model"[ \t\r\n]*:[ \t\r\n]*')  # a body's first key, "model"


def renamed(raw: bytes, asked: str, model: str) -> bytes | None:
    """``raw``, a valid JSON body whose ``"model"`` is ``asked``, naming ``model`` instead: the caller's own bytes
    with that one string replaced, where serializing a coding agent's 200 KB conversation again costs 50 µs warm
    and several times that in the stack. Only when ``"model"`` is the body's first key, spelled plainly, and
    ``asked`` its value spelled as orjson would (as Claude Code, Codex CLI and most callers write it): that
    much the bytes show at once, while finding the key elsewhere for certain would mean scanning them all.
    None otherwise: then the caller serializes."""
    head = _FIRST_MODEL.match(raw)
    old = orjson.dumps(asked)
    if head is None or not raw.startswith(old, head.end()):
        return None
    return b"".join((raw[:head.end()], orjson.dumps(model), raw[head.end() + len(old):]))


def _adjusts(t: Target, kind: Kind) -> bool:
    """Whether the attempt's body changes for the provider's quirks or the deployment's output cap."""
    return kind is Kind.CHAT and (bool(t.quirks) or t.max_output is not None)


def signed(t: Target, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """What the flavour computes over the final request: ``headers`` are all the attempt sets (``:path``
    among them), ``body`` the bytes it sends."""
    return t.flavour.sign(headers[":path"], headers, body) if t.flavour.needs_body else {}


class UpstreamAttempt:
    """One attempt: headers first, then (only if asked for) the body."""

    role = "upstream"

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.target: Target | None = None
        self.ctx: Ctx | None = None
        self.caller: Codec | None = None
        self.headers: dict[str, str] = {}  # what the headers message set (path, credential)
        self.trace: Trace | None = None  # the attempt's span, when Envoy traces the request

    def __repr__(self) -> str:
        return f"UpstreamAttempt(target={self.target.name if self.target else None!r}, ctx={self.ctx})"

    async def on(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        """One message of the attempt's stream (the servicer's dispatch)."""
        kind = req.WhichOneof("request")
        if kind == "request_headers":
            return await waited(lambda: self.on_request_headers(req))
        if kind == "request_body":
            return self.on_request_body(req)
        if kind == "response_headers":
            return self.on_response_headers(req)
        raise RuntimeError(f"unexpected ext_proc message {kind!r}")

    def answered(self, req: pb.ProcessingRequest, resp: pb.ProcessingResponse) -> bool:
        return False  # ending the upstream filter's RPC early made Envoy answer 500 (1.40): Envoy ends it

    def close(self) -> None:
        if self.trace is not None:
            self.trace.span.end()

    def fail(self, req: pb.ProcessingRequest, err: UserFacingError) -> pb.ProcessingResponse:
        """``err`` for the caller (nothing was sent yet: the attempt has not reached its provider)."""
        status, headers, body = (self.caller or client_codec(req)).error_response(err)
        if self.trace is not None:
            fail(self.trace.span, err.kind)
        return m.immediate(status, headers, body, f"tokengate_{err.kind}")

    def on_request_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        attrs = m.attributes(req)
        name = m.tokengate_metadata(str(attrs.get(META_ATTR) or "")).get("deployment")
        t = self.target = self.gw.targets.get(str(name))
        if t is None:
            raise UpstreamError(f"No deployment is known for upstream metadata {name!r}.")
        ctx = self.ctx = Ctx.decode(str(attrs.get(CTX_ATTR) or ""))
        caller = self.caller = REGISTRY.get(ctx.protocol)
        names: Collection[str] = m.header_map(req.request_headers).keys()
        if self.gw.forward_trace:  # not among the caller's headers: not removed
            names = [n for n in names if n not in TRACE_HEADERS]
        headers, remove = attempt_headers(caller, ctx.kind, ctx.stream, ctx.sse, t, names)
        self.headers = headers
        resp = m.request_headers(m.common(set_headers=headers, remove_headers=remove))
        if self.trace is not None:
            self.trace.span.set_attributes({
                "tokengate.deployment": t.name, "gen_ai.provider.name": t.gen_ai_provider,
                "gen_ai.request.model": t.model, "tokengate.upstream_protocol": t.protocol.value,
                "tokengate.protocol": caller.name, "tokengate.translated": caller is not t.codec})
        if caller is not t.codec or (ctx.stream and reframes(caller, t)):  # the status (and a stream's type) mapped
            resp.mode_override.CopyFrom(_TRANSLATE)
        elif not needs_body(caller, ctx.model, t, ctx.kind):
            resp.mode_override.CopyFrom(SKIP_BODY)  # nothing in the body changes
        return resp

    def on_response_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        """Only for attempts to another protocol: its error status, as the caller's protocol spells it, and
        the content type of a stream the caller reads as one JSON array."""
        assert self.caller is not None and self.ctx is not None
        status = int(m.header_map(req.response_headers).get(":status", "0") or 0)
        mapped = self.caller.client_status(status)
        if self.trace is not None:
            self.trace.span.set_attribute("http.response.status_code", status)
            if status >= 400:
                fail(self.trace.span, str(status))
        headers = {":status": str(mapped)} if mapped != status else {}
        if self.ctx.stream and not self.ctx.sse:
            headers["content-type"] = "application/json"
        elif self.ctx.stream and status == 200 and self.target is not None and reframes(self.caller, self.target):
            headers["content-type"] = stream_type(self.caller, True)
        return m.response_headers(m.common(set_headers=headers or None))

    def on_request_body(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        t, ctx, caller = self.target, self.ctx, self.caller
        assert t is not None and ctx is not None and caller is not None
        raw = req.request_body.body
        out = renamed(raw, ctx.model, t.model) if renames_only(caller, t, ctx.kind) else None
        if out is None:
            out = orjson.dumps(attempt_body(caller, ctx.kind, ctx.stream, t, orjson.loads(raw)))
        headers = {"content-length": str(len(out))}
        headers.update(signed(t, {**self.headers, **headers}, out))  # over the path the headers message set
        return m.request_body(m.common(body=out, set_headers=headers))
