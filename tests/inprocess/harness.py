"""The request path without Envoy: the translator's processors driven in process.

Real ``ProcessingRequest`` messages go straight to ``RouterProcessor``,
``UpstreamAttempt`` or ``Servicer.Process`` (an async iterator of messages and a
fake ``ServicerContext``: no gRPC, no network), against a ``Gateway`` built from the
end-to-end tests' config (``tests.harness.gateway_config``) and a real Redis. The
metering events the request writes are captured by the ``Meter`` (``meter.events``)
instead of going to the ``tg:metering`` stream, so tests assert on them at once.

    async with in_process(redis_url) as tg:
        key = await tg.key("acme")
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(doc),
                               response_body(answer, status=200, deployment="oai"),
                               response_body(b"", end=True)])
        ex.responses, ex.events
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import redis.asyncio as aioredis
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue, Metadata
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf import text_format
from google.protobuf.struct_pb2 import Struct

from core import keys
from core.config import GatewayConfig, parse
from core.event import MeteringEvent, as_json
from tests.harness import gateway_config
from translator.extproc.messages import ATTR_NAMESPACE
from translator.extproc.servicer import Servicer
from translator.extproc.upstream import CTX_ATTR, META_ATTR
from translator.metering import Meter
from translator.state import Gateway
from translator.upstream_http import CTX_HEADER, DEPLOYMENT_ATTR

T = TypeVar("T")
Then = Literal["end", "cancel", "forbid"]  # what the request stream does after its messages (see ``feed``)
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
NANO_PER_USD = 1_000_000_000
# A model on a per-attempt route (two providers), besides the direct models of the e2e config.
FAILOVER_MODEL = {"name": "failover-test", "deployments": ["ant", "oai"], "price": {"input": 3, "output": 15}}


def gemini_path(model: str, method: str = "generateContent") -> str:
    return f"/v1beta/models/{model}:{method}"


def config() -> GatewayConfig:
    """The end-to-end tests' gateway config (providers nobody calls here), ``FAILOVER_MODEL`` added."""
    doc = gateway_config(1, Path("/nonexistent"))  # no provider is called and nothing is written
    doc["models"].append(FAILOVER_MODEL)
    # Nothing goes idle or stale while a test runs, however slow the machine: outcomes never depend on time.
    doc["billing"]["lease"] = {"idle_s": 3600, "key_cache_s": 3600}
    return parse(doc, "tests/inprocess")


class CapturedMeter(Meter):
    """A Meter whose events are kept in ``events``, each as its JSON object (never written to Redis)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis)
        self.events: list[dict[str, Any]] = []

    def record(self, ev: MeteringEvent) -> None:
        self.events.append(as_json(ev))


class FakeContext:
    """The one thing ``Servicer.Process`` reads from its ``grpc.aio.ServicerContext``."""

    def __init__(self, filter_name: str | None = None) -> None:
        self._metadata = (("x-tokengate-filter", filter_name),) if filter_name else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


@dataclass
class Exchange:
    """What one ext_proc stream answered, and the metering events written by the time it ended."""

    responses: list[pb.ProcessingResponse]
    events: list[dict[str, Any]]


@dataclass
class InProcess:
    gw: Gateway
    redis: aioredis.Redis
    meter: CapturedMeter
    servicer: Servicer = field(init=False)

    def __post_init__(self) -> None:
        self.servicer = Servicer(self.gw)

    async def key(self, account: str, *, usd: float = 100, **kw: Any) -> str:
        """A new key for ``account``, which is credited ``usd`` first (0: not at all)."""
        if usd:
            await self.gw.billing.credit(account, int(usd * NANO_PER_USD), kind="topup",
                                         ref=uuid.uuid4().hex, reason="test")
        return await keys.create_key(self.redis, account, **kw)

    async def process(self, messages: Iterable[pb.ProcessingRequest], *, filter_name: str | None = None,
                      then: Then = "end") -> Exchange:
        """Feed ``messages`` to one ``Servicer.Process`` stream (``then``: see ``feed``); every response
        until the stream ends, and the metering events written by then."""
        before = len(self.meter.events)
        out = []
        try:
            async for resp in self.servicer.Process(feed(messages, then), FakeContext(filter_name)):
                out.append(resp)
        except asyncio.CancelledError:
            if then != "cancel":
                raise
        self.gw.run_later()  # what the stream's end left for a moment later (Gateway.later): its metering event
        return Exchange(out, self.meter.events[before:])

    def stream(self, messages: Iterable[pb.ProcessingRequest], *, filter_name: str | None = None,
               then: Then = "forbid") -> AsyncGenerator[pb.ProcessingResponse, None]:
        """One ``Servicer.Process`` stream, to be stepped through by the test (``anext``, ``aclose``)."""
        agen = self.servicer.Process(feed(messages, then), FakeContext(filter_name))
        assert isinstance(agen, AsyncGenerator)  # declared an AsyncIterator; it is an async generator
        return agen


@contextlib.asynccontextmanager
async def in_process(redis_url: str, cfg: GatewayConfig | None = None) -> AsyncIterator[InProcess]:
    """A Gateway (``config()`` unless ``cfg``) on the Redis at ``redis_url``, emptied first."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        await r.flushdb()
        meter = CapturedMeter(r)
        tg = InProcess(Gateway(cfg or config(), r, meter, Path.cwd()), r, meter)
        yield tg
    finally:
        await r.aclose()


def run(redis_url: str, scenario: Callable[[InProcess], Awaitable[T]]) -> T:
    """``scenario`` on a fresh in-process gateway, in its own event loop."""
    async def main() -> T:
        async with in_process(redis_url) as tg:
            return await scenario(tg)

    return asyncio.run(main())


async def feed(messages: Iterable[pb.ProcessingRequest], then: Then = "end") -> AsyncIterator[pb.ProcessingRequest]:
    """The request stream as grpc.aio hands it to the servicer: ``messages``, and then

    - ``"end"``: the stream ends (Envoy half-closed it);
    - ``"cancel"``: ``asyncio.CancelledError``, as when Envoy resets the stream (the client went away);
    - ``"forbid"``: the test fails, for a servicer that should have ended the RPC itself.
    """
    for msg in messages:
        yield msg
    if then == "cancel":
        raise asyncio.CancelledError
    if then == "forbid":
        raise AssertionError("the servicer waited for a message after the request was answered")


# --- messages Envoy sends -----------------------------------------------------------------------


def _attributes(req: pb.ProcessingRequest, attrs: Mapping[str, Any]) -> pb.ProcessingRequest:
    s = Struct()
    s.update(dict(attrs))
    req.attributes[ATTR_NAMESPACE].CopyFrom(s)
    return req


def _header_map(headers: Mapping[str, str]) -> HeaderMap:
    return HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode("latin-1")) for k, v in headers.items()])


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def request_headers(path: str, headers: Mapping[str, str] | None = None, *, method: str = "POST",
                    end_of_stream: bool = False) -> pb.ProcessingRequest:
    """The request headers as the router filter sees them (pseudo-headers and what an SDK sends)."""
    base = {":method": method, ":path": path, ":authority": "gateway.test", ":scheme": "http",
            "content-type": "application/json", "accept": "application/json", "user-agent": "sdk/1.0",
            "x-request-id": "req-" + uuid.uuid4().hex[:12], "x-forwarded-proto": "http"}
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(
        headers=_header_map({**base, **(headers or {})}), end_of_stream=end_of_stream))


def request_body(body: bytes | Mapping[str, Any]) -> pb.ProcessingRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=raw, end_of_stream=True))


def response_body(chunk: bytes | Mapping[str, Any], *, end: bool = False, status: int | None = None,
                  deployment: str | None = None, attempts: int = 1) -> pb.ProcessingRequest:
    """A response body chunk; with ``status`` it is the first one and carries the router's attributes."""
    raw = chunk if isinstance(chunk, bytes) else orjson.dumps(chunk)
    req = pb.ProcessingRequest(response_body=pb.HttpBody(body=raw, end_of_stream=end))
    if status is None:
        return req
    attrs: dict[str, Any] = {"response.code": status, "upstream.request_attempt_count": attempts}
    if deployment is not None:
        attrs[DEPLOYMENT_ATTR] = deployment
    return _attributes(req, attrs)


def host_metadata(deployment: str, protocol: str) -> str:
    """``xds.upstream_host_metadata`` as Envoy sends it: the proto text format of Metadata."""
    md = Metadata()
    md.filter_metadata["tokengate"].update({"deployment": deployment, "protocol": protocol})
    return text_format.MessageToString(md, as_one_line=True)


def attempt_headers(deployment: str, protocol: str, headers: Mapping[str, str]) -> pb.ProcessingRequest:
    """The request headers of one attempt to ``deployment``, as the upstream filter sees them: with the
    endpoint's metadata and the ``x-tokengate-ctx`` header (when there is one) as attributes."""
    req = pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=_header_map(headers)))
    attrs = {META_ATTR: host_metadata(deployment, protocol)}
    if CTX_HEADER in headers:
        attrs[CTX_ATTR] = headers[CTX_HEADER]
    return _attributes(req, attrs)


def attempt_response_headers(status: int) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(response_headers=pb.HttpHeaders(
        headers=_header_map({":status": str(status), "content-type": "application/json"})))


# --- reading what the translator answered -------------------------------------------------------


def common(resp: pb.ProcessingResponse) -> pb.CommonResponse:
    """The CommonResponse of a headers or body reply."""
    kind = resp.WhichOneof("response")
    assert kind in ("request_headers", "request_body", "response_headers", "response_body"), kind
    reply: pb.CommonResponse = getattr(resp, kind).response
    return reply


def set_headers(resp: pb.ProcessingResponse) -> dict[str, str]:
    return {h.header.key: h.header.raw_value.decode("latin-1")
            for h in common(resp).header_mutation.set_headers}


def removed_headers(resp: pb.ProcessingResponse) -> set[str]:
    return set(common(resp).header_mutation.remove_headers)


def mutated(headers: Mapping[str, str], resp: pb.ProcessingResponse) -> dict[str, str]:
    """``headers`` as Envoy has them after applying the reply's header mutation."""
    removed = removed_headers(resp)
    return {**{k: v for k, v in headers.items() if k not in removed}, **set_headers(resp)}


def new_body(resp: pb.ProcessingResponse) -> bytes | None:
    """The body a reply puts in place of Envoy's (None: left as it is)."""
    c = common(resp)
    return c.body_mutation.body if c.HasField("body_mutation") else None


def delivered(sent: Iterable[pb.ProcessingRequest], replies: Iterable[pb.ProcessingResponse]) -> bytes:
    """The response body the client gets: each chunk Envoy sent, as the reply to it left it."""
    out = b""
    for req, resp in zip(sent, replies, strict=True):
        c = common(resp)
        if c.body_mutation.clear_body:
            continue
        out += c.body_mutation.body if c.HasField("body_mutation") else req.response_body.body
    return out


def immediate(resp: pb.ProcessingResponse) -> tuple[int, dict[str, str], Any]:
    """Status, headers and parsed JSON body of an immediate response."""
    assert resp.WhichOneof("response") == "immediate_response", resp
    ir = resp.immediate_response
    headers = {h.header.key: h.header.raw_value.decode("latin-1") for h in ir.headers.set_headers}
    return ir.status.code, headers, orjson.loads(ir.body)
