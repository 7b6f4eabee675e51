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

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from core.protocols import Protocol
from translator.endpoints import Kind
from translator.errors import UpstreamError
from translator.extproc import messages as m
from translator.protocols.convert import client_status, translate_count_request, translate_request
from translator.state import Gateway, Target
from translator.upstream_http import (
    ANTHROPIC_ONLY_HEADERS,
    ANTHROPIC_VERSION,
    CTX_HEADER,
    credential_headers,
    path,
)

CTX_ATTR = f"request.headers['{CTX_HEADER}']"
# The caller's headers a provider gets (besides what each attempt sets itself). x-forwarded-proto
# stays because Envoy finds no route for a request without it.
FORWARDED = frozenset({"content-type", "content-length", "accept", "user-agent", "x-request-id", "x-forwarded-proto"})
META_ATTR = "xds.upstream_host_metadata"
SKIP_BODY = ProcessingMode(request_body_mode=ProcessingMode.NONE)
# Another protocol: the body is translated, and the response status mapped (response headers sent).
_TRANSLATE = ProcessingMode(
    request_body_mode=ProcessingMode.BUFFERED,
    response_header_mode=ProcessingMode.SEND,
    response_body_mode=ProcessingMode.NONE,
)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What the router-level filter learnt about the caller (the x-tokengate-ctx header)."""

    protocol: Protocol
    kind: Kind
    stream: bool
    sse: bool
    model: str

    @classmethod
    def decode(cls, raw: str) -> Ctx:
        proto, kind, flags, model = raw.split("|", 3)
        return cls(Protocol(proto), Kind(kind), "s" in flags, "e" in flags, model)

    def encode(self) -> str:
        flags = ("s" if self.stream else "") + ("e" if self.sse else "")
        return f"{self.protocol.value}|{self.kind.value}|{flags}|{self.model}"


def client_protocol(req: pb.ProcessingRequest) -> Protocol:
    """The caller's protocol, for shaping an error; OpenAI when the context is unreadable."""
    proto = str(m.attributes(req).get(CTX_ATTR) or "").partition("|")[0]
    return Protocol.parse(proto) or Protocol.OPENAI


def attempt_headers(caller: Protocol, kind: Kind, stream: bool, sse: bool, t: Target,
                    client_headers: Collection[str]) -> tuple[dict[str, str], list[str]]:
    """The headers to set and remove for an attempt to ``t``: path, credential, protocol headers.

    ``client_headers``: the names of the headers the request carries. Only FORWARDED ones (and
    Anthropic's version and beta headers, to an Anthropic upstream of an Anthropic caller) go on:
    no cookie, client address, tracing or SDK header, no credential, and no accept-encoding (a
    compressed answer could not be read for usage).
    """
    same = caller is t.protocol
    # Translated Gemini streams are read as SSE; only a Gemini caller may ask for the array.
    headers = {
        ":path": path(t.protocol, t.base_path, kind, t.model, stream=stream, sse=sse if same else True),
        **credential_headers(t.protocol, t.credential),
    }
    keep = FORWARDED
    if t.protocol is Protocol.ANTHROPIC:
        if not same or "anthropic-version" not in client_headers:
            headers["anthropic-version"] = ANTHROPIC_VERSION
        if same:
            keep = FORWARDED | set(ANTHROPIC_ONLY_HEADERS)
    if not same:
        headers["content-type"] = "application/json"
    remove = [h for h in client_headers
              if h not in keep and h not in headers and not h.startswith((":", "x-tokengate-"))]
    return headers, remove


def needs_body(caller: Protocol, model: str, t: Target) -> bool:
    """Whether an attempt to ``t`` must rewrite the body (another protocol, or another model name)."""
    return caller is not t.protocol or (t.protocol is not Protocol.GEMINI and model != t.model)


def attempt_body(caller: Protocol, kind: Kind, stream: bool, t: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The caller's parsed body as ``t`` needs it."""
    if caller is t.protocol:
        return {**body, "model": t.model}
    if kind is Kind.COUNT_TOKENS:
        return translate_count_request(caller, t.protocol, body, upstream_model=t.model)
    return translate_request(caller, t.protocol, body, upstream_model=t.model, stream=stream)


class UpstreamAttempt:
    """One attempt: headers first, then (only if asked for) the body."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.target: Target | None = None
        self.ctx: Ctx | None = None

    def on_request_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        attrs = m.attributes(req)
        name = m.tokengate_metadata(str(attrs.get(META_ATTR) or "")).get("deployment")
        t = self.target = self.gw.targets.get(str(name))
        if t is None:
            raise UpstreamError(f"No deployment is known for upstream metadata {name!r}.")
        ctx = self.ctx = Ctx.decode(str(attrs.get(CTX_ATTR) or ""))
        headers, remove = attempt_headers(ctx.protocol, ctx.kind, ctx.stream, ctx.sse, t,
                                          m.header_map(req.request_headers).keys())
        resp = m.request_headers(m.common(set_headers=headers, remove_headers=remove))
        if ctx.protocol is not t.protocol:
            resp.mode_override.CopyFrom(_TRANSLATE)
        elif not needs_body(ctx.protocol, ctx.model, t):
            resp.mode_override.CopyFrom(SKIP_BODY)  # nothing in the body changes
        return resp

    def on_response_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        """Only for attempts to another protocol: its error status, as the caller's protocol spells it."""
        assert self.ctx is not None
        status = int(m.header_map(req.response_headers).get(":status", "0") or 0)
        mapped = client_status(self.ctx.protocol, status)
        headers = {":status": str(mapped)} if mapped != status else None
        return m.response_headers(m.common(set_headers=headers))

    def on_request_body(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        t, ctx = self.target, self.ctx
        assert t is not None and ctx is not None
        out = orjson.dumps(attempt_body(ctx.protocol, ctx.kind, ctx.stream, t, orjson.loads(req.request_body.body)))
        return m.request_body(m.common(body=out, set_headers={"content-length": str(len(out))}))
