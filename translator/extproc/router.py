"""The router-level filter: one instance per HTTP request, on Envoy's HCM chain.

    request headers  classify the path, find the key (401 without one); answer the
                     bodiless listing endpoints; otherwise wait for the body.
    request body     parse, resolve the model, admit (key, allow-list, rate limits,
                     balance: one Lua call placing a hold); then set the routing
                     header and clear the route cache so Envoy picks the model's route.
                     When every attempt goes to one provider and model
                     (``Gateway.direct``), it also does what the upstream filter would
                     — path, credential, the body translated or renamed — and picks the
                     *direct* route, whose cluster has no per-attempt filter: one gRPC
                     stream, not two (a Lua snippet on the route maps error statuses
                     into the caller's protocol, as that filter would).
    response body    (STREAMED; response headers skipped, their facts come as
                     attributes) pick the handler for the deployment that answered,
                     pass or translate each chunk, read usage; at the end write the
                     request's one metering event.
"""

from __future__ import annotations

import logging
import time
from enum import Enum
from typing import Any

import orjson
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from core.event import VERSION as EVENT_VERSION
from core.event import MeteringEvent, as_json, new_id, set_usage
from core.protocols import Protocol
from core.store import KeyInfo
from core.usage import Usage
from translator import embeddings, listing, metrics
from translator.admission import estimate_hold
from translator.auth import NO_KEY, authenticate
from translator.endpoints import Endpoint, Kind, classify, client_key
from translator.errors import (
    BadRequest,
    HeadersTooLarge,
    ModelNotFound,
    NotFound,
    Unauthorized,
    UserFacingError,
    kind_for_status,
)
from translator.extproc import messages as m
from translator.extproc.upstream import (
    Ctx,
    attempt_body,
    attempt_headers,
    needs_body,
    renamed,
    renames_only,
    signed,
    waited,
)
from translator.passthrough import array_error
from translator.protocols import REGISTRY
from translator.protocols.base import Codec, estimate_tokens
from translator.protocols.embeddings import EmbedMeta
from translator.protocols.embeddings import meta as embed_meta
from translator.responses import ResponseHandler, handler_for
from translator.state import Gateway, Target
from translator.tracing import Trace, fail, phase
from translator.upstream_http import (
    CLIENT_CREDENTIAL_HEADERS,
    CTX_HEADER,
    DEPLOYMENT_ATTR,
    ROUTE_HEADER,
    direct_route,
)

log = structlog.get_logger("tokengate.request")
# How a request ended (RouterProcessor._settle): status, usage, estimated, cost, duration, cut short.
Settled = tuple[int, Usage, bool, int, float, bool]

MAX_HEADER_BYTES = 64 * 1024  # Envoy reads up to 1 MiB (max_request_headers_kb) so that this 431 has the caller's shape
MAX_DIRECT_HEADERS = 4096  # request shapes whose direct-route headers are kept (Gateway.direct_headers)
MAX_DEPTH = 128  # JSON nesting a request may have: orjson writes at most 254, translation adds a few
COUNT_BELOW = 4096  # bytes: a body this long or shorter has its brackets counted before its nesting is walked
_PROTOCOLS = {p.value: p for p in Protocol}  # a codec's name -> the name metering and the context carry


_CONTAINERS = frozenset((dict, list))  # what orjson parses a JSON object and array into


def _depth(doc: Any) -> int:
    """How deep containers nest in a parsed JSON object or array, ``doc`` the first: one level at a time (no recursion
    limit), each level's containers picked out in one comprehension. A coding agent's 674 KB conversation in
    0.5–0.6 ms, where walking it node by node took 2.5–5 ms (and parsing it takes 0.5–0.9)."""
    level, todo = 0, [doc]
    while todo:
        level += 1
        todo = [c for node in todo for c in (node.values() if type(node) is dict else node) if type(c) in _CONTAINERS]
    return level


def _appended(raw: bytes, key: str, value: Any) -> bytes:
    """``raw`` (a JSON object with keys, ``key`` not among them) with ``key: value`` added last: the caller's own
    bytes copied, where serializing the parsed body again costs six times as much (9 against 62 µs at 175 KB)."""
    end = raw.rindex(b"}")
    return b"".join((raw[:end], b",", orjson.dumps(key), b":", orjson.dumps(value), raw[end:]))


class Phase(Enum):
    REQUEST = "request"
    ROUTED = "routed"
    RESPONDING = "responding"
    DONE = "done"


class RouterProcessor:
    role = "router"
    # A request's state starts as these class attributes; __init__ sets only what differs per request
    # (the hot path makes one of these a request: each attribute set in __init__ costs it).
    first_byte: float = 0.0  # monotonic: the response's first chunk reached us (time to first token)
    request_id: str = ""  # Envoy's x-request-id, for correlating logs (a client may choose it)
    hold: int = 0
    lease_id: str = ""  # admitted against this process's lease on the account (no hold of its own)
    body_len: int = 0
    endpoint: Endpoint | None = None
    api_key: str | None = None
    key: KeyInfo | None = None
    model: str = ""  # the model's own name (an alias resolved): metering, prices, allow-lists
    asked: str = ""  # the caller's spelling of it: what its body says and its answer names
    stream: bool = False
    include_usage: bool = False
    status: int = 0
    deployment: str = ""
    attempts: int = 0  # upstream attempts Envoy made (retries and failovers included)
    upstream_protocol: Protocol | None = None
    target: Target | None = None  # the deployment that answered (None: Envoy's own reply)
    handler: ResponseHandler | None = None
    tool_names: tuple[str, ...] = ()
    header_names: tuple[str, ...] = ()  # what the caller sent (only some go on to a provider)
    direct: Target | None = None  # the one deployment of a direct route
    embed: EmbedMeta | None = None  # an embeddings request: what its answer needs
    ended: bool = False  # the response's last chunk was answered: meter() does not call it cut short
    _ev: MeteringEvent | None = None  # the metering event, built once (see _event)
    _settled: tuple[bool, Settled] | None = None  # the request's end as computed (see _settle)
    _recorded: Settled | None = None  # its event recorded with the last reply, the rest of its end due at close
    error: str = ""  # the kind of the error the caller was answered with
    logged: bool = False  # Envoy's access log carries the request (its last reply set the metadata)
    trace: Trace | None = None  # this stream's span, when Envoy traces the request (translator/tracing.py)
    _response_span: Any = None  # first to last response chunk

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.phase = Phase.REQUEST
        self.started = time.monotonic()
        self.event_id = new_id()  # the hold and the event are keyed by it

    def __repr__(self) -> str:
        return (f"RouterProcessor(request_id={self.request_id!r}, phase={self.phase.value}, model={self.model!r}, "
                f"status={self.status})")

    async def on(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        """One message of the request's stream (the servicer's dispatch; response chunks first, the hot path)."""
        kind = req.WhichOneof("request")
        if kind == "response_body":
            return self.on_response_body(req)
        if kind == "request_body":
            return await self.on_request_body(req)
        if kind == "request_headers":
            return await self.on_request_headers(req)
        raise RuntimeError(f"unexpected ext_proc message {kind!r}")

    def answered(self, req: pb.ProcessingRequest, resp: pb.ProcessingResponse) -> bool:
        """Envoy sends nothing more after an immediate response or the response's last chunk."""
        kind = resp.WhichOneof("response")
        return kind == "immediate_response" or (kind == "response_body" and bool(req.response_body.end_of_stream))

    def close(self) -> None:
        """The stream is over: the request is metered (a no-op when an error already did). Its event is recorded
        by now (with the last reply, or here when the stream was cut short: a kill after this loses nothing); its
        lease, log line and metrics follow a moment later, with the other requests that ended meanwhile
        (``Gateway.later``) — a traced request's all here, so that its span ends on time."""
        if self.trace is not None:
            self.meter(cut_short=not self.ended)
            self._end_trace(self.trace)
        elif (settled := self._record(not self.ended) or self._recorded) is not None:
            self.gw.later(lambda: self._account(*settled))

    def fail(self, req: pb.ProcessingRequest, err: UserFacingError) -> pb.ProcessingResponse:
        """``err`` in the caller's protocol: in band once the response started, else instead of it."""
        if self.phase is Phase.RESPONDING:
            return self.stream_error(err)
        return self.error_response(err)

    @property
    def codec(self) -> Codec:
        """The caller's protocol (the registry's fallback until the path says otherwise)."""
        return self.endpoint.codec if self.endpoint else REGISTRY.fallback

    @property
    def protocol(self) -> Protocol:
        """The caller's protocol's name, as metering and the upstream filter's context carry it."""
        return _PROTOCOLS[self.codec.name]

    # --- request ----------------------------------------------------------------

    async def on_request_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        headers = m.header_map(req.request_headers)
        self.request_id = headers.get("x-request-id", "")
        ep = self.endpoint = classify(headers.get(":method", ""), headers.get(":path", ""), headers)
        if " x-tokengate-" in " " + " ".join(headers):  # one scan of the names (none has a space)
            raise BadRequest("Headers named x-tokengate-* are reserved for the gateway.")
        if ep is None:
            raise NotFound("Unknown request URL.")
        if req.request_headers.headers.ByteSize() > MAX_HEADER_BYTES:
            raise HeadersTooLarge(f"The request's headers are larger than {MAX_HEADER_BYTES // 1024} KiB.")
        if ep.kind.has_body:
            self.header_names = tuple(headers)
            self.api_key = client_key(ep, headers)
            if not self.api_key:
                raise Unauthorized(NO_KEY)
            if req.request_headers.end_of_stream:
                raise BadRequest("A JSON request body is required.")
            return m.CONTINUE_REQUEST_HEADERS  # the rest waits for the body
        key = await authenticate(self.gw.redis, client_key(ep, headers))
        self.key = key
        if ep.kind is Kind.LIST_MODELS:
            doc = listing.list_models(ep.codec, self.gw.models, self.gw.owners, key.models)
        else:
            doc = listing.get_model(ep.codec, ep.model or "", self.gw.models, self.gw.owners, key.models)
        self.phase = Phase.DONE
        return m.immediate(200, {"content-type": "application/json"}, orjson.dumps(doc), "tokengate_models")

    async def on_request_body(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        ep = self.endpoint
        if ep is None:
            raise NotFound("Unknown request URL.")
        raw = req.request_body.body
        self.body_len = len(raw)
        try:
            body = self._parse(raw)
            asked = self._model(ep, body)
            if ep.kind.embeds:  # what the answer needs (and a 400 for a body that is no embeddings request)
                self.embed = embed_meta(ep.codec, ep.kind, body, asked)
        except UserFacingError:
            await authenticate(self.gw.redis, self.api_key)  # a bad key is a 401 before a bad body is a 400
            raise
        model = self.gw.models[asked].name  # an alias is resolved once, here
        codec = ep.codec
        if ep.kind is Kind.COUNT_TOKENS and not any(c.counts_tokens for c in self.gw.codecs[model]):
            # No count endpoint upstream: estimate here, and say it is an estimate.
            await self.gw.admitter.admit(self.api_key, model, hold=0, hold_id=self.event_id)
            self.phase = Phase.DONE
            doc = codec.encode_count(codec.estimate_prompt(body))
            return m.immediate(200, {"content-type": "application/json", "x-tokengate-token-count": "estimated"},
                               orjson.dumps(doc), "tokengate_count_estimate")
        hold = 0
        if ep.kind is Kind.CHAT:
            cap = codec.output_cap(body)
            limit = self.gw.max_output[model]
            hold = estimate_hold(self.gw.prices[model], len(raw), min(cap, limit) if cap is not None else limit)
        elif ep.kind.embeds:  # input tokens only
            hold = estimate_hold(self.gw.prices[model], len(raw), 0)
        self.hold, self.model = hold, model
        unfinished = self._unfinished_charge()
        with phase(self.trace, "tokengate.admission"):
            admitted = await self.gw.admitter.admit(self.api_key, model, hold=hold, hold_id=self.event_id,
                                                    reap_charge=unfinished[1])
        self.key, self.lease_id = admitted.key, admitted.lease_id
        self.asked = asked
        if "tools" in body:
            self.tool_names = codec.tool_names(body)
        self.stream = ep.stream if ep.stream is not None else body.get("stream") is True
        self.include_usage = codec.asks_stream_usage(body)
        self.phase = Phase.ROUTED
        if self.gw.inflight is not None:  # the event it gets should it never end: status 0, cut short, what it costs
            usage, cost = unfinished
            ev = self._ev = self._new_event(cut_short=True, usage_estimated=cost > 0, cost_nano=cost, ts=time.time())
            set_usage(ev, usage)
            self.gw.inflight.started(self.event_id, ev)
        # Usage is always asked of the upstream (Codec.stream_usage_option); an event the caller did not ask for is
        # removed on the way back. A key the body did not have goes last, spliced onto the caller's own bytes.
        option = codec.stream_usage_option if self.stream and not self.include_usage else None
        own: bytes | None = raw  # the body as it goes on, while only splices change the caller's bytes
        if option is not None:
            key, value = option
            own = _appended(raw, key, value) if body and key not in body else None  # None: serialized from body
            have = body.get(key)
            body[key] = {**have, **value} if isinstance(have, dict) else dict(value)  # never the codec's own
        changed = option is not None
        direct = self.gw.direct.get(model)
        if direct is not None:  # one provider and model: set once what every attempt needs (no upstream filter)
            self.direct = direct
            headers, remove = await self._direct_headers(codec, ep, direct, model)
            if needs_body(codec, asked, direct, ep.kind):
                changed = True  # a body only renamed stays the caller's bytes with the model's name replaced
                own = renamed(own, asked, direct.model) if own and renames_only(codec, direct, ep.kind) else None
                if own is None:
                    body = attempt_body(codec, ep.kind, self.stream, direct, body)
        else:
            ctx = Ctx(self.protocol, ep.kind, self.stream, ep.sse, asked)
            headers, remove = {ROUTE_HEADER: model, CTX_HEADER: ctx.encode()}, list(CLIENT_CREDENTIAL_HEADERS)
        if not changed:
            return m.routed(headers, remove)
        out = orjson.dumps(body) if own is None else own
        if direct is not None and direct.flavour.needs_body:  # signed over this request's own bytes
            headers["content-length"] = str(len(out))
            headers.update(signed(direct, headers, out))
            return m.request_body(m.common(body=out, set_headers=headers, remove_headers=remove,
                                           clear_route_cache=True))
        return m.routed(headers, remove, out)

    async def _direct_headers(self, codec: Codec, ep: Endpoint, t: Target,
                              model: str) -> tuple[dict[str, str], list[str]]:
        """The headers every attempt of a direct route to ``t`` sets (its route header included) and removes. Where
        the provider's flavour fixes them (``Flavour.fixed_headers``) they are built once per request shape and
        shared: a caller never mutates them (one that would, a signed attempt, gets its own)."""
        key = (codec.name, ep.kind, self.stream, ep.sse, model, t.name, self.header_names)
        cache = self.gw.direct_headers
        if (hit := cache.get(key)) is not None:
            return hit
        headers, remove = await waited(
            lambda: attempt_headers(codec, ep.kind, self.stream, ep.sse, t, self.header_names))
        headers[ROUTE_HEADER] = direct_route(model, codec.name)
        if t.flavour.fixed_headers:
            if len(cache) >= MAX_DIRECT_HEADERS:  # many shapes (clients sending ever other headers): afresh
                cache.clear()
            cache[key] = (headers, remove)
        return headers, remove

    def _model(self, ep: Endpoint, body: dict[str, Any]) -> str:
        model = ep.model if ep.model is not None else body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("The request has no 'model'.", param="model")
        model = model.removeprefix("models/")
        if model not in self.gw.models:
            raise ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.",
                                param="model")
        m = self.gw.models[model]
        if m.kind != "chat" or ep.kind is not Kind.CHAT:  # a chat request to a chat model checks nothing more
            embeddings.check_kind(ep.kind, m, model)
        return model

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any]:
        if not raw:
            raise BadRequest("A JSON request body is required.")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        # orjson reads up to 1024 levels but writes only 254: anything near that could not be sent on. A short body
        # with few brackets is not walked; a long one is at once (counting its brackets, 0.4 ms at 660 KB, would
        # cost as much as the walk and find more than 128 anyway).
        if (len(raw) > COUNT_BELOW or raw.count(b"{") + raw.count(b"[") > MAX_DEPTH) and _depth(body) > MAX_DEPTH:
            raise BadRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.")
        return body

    # --- response ---------------------------------------------------------------

    def on_response_body(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        chunk = req.response_body.body
        if self.phase is Phase.DONE:
            return m.body_reply(b"")  # after an in-band error: swallow the rest
        if self.phase is Phase.REQUEST:
            # Envoy answered before the request was admitted (413: body over the limit): its own reply,
            # already in the caller's shape; nobody to charge, so no metering event, only a count.
            if req.response_body.end_of_stream:
                self.phase = Phase.DONE
                metrics.REJECTED.labels(self.codec.name, "envoy_local_reply").inc()
            return m.CONTINUE_RESPONSE_BODY
        if self.handler is None:
            self._start_response(req)
        assert self.handler is not None
        out = self.handler.feed(chunk)
        if req.response_body.end_of_stream:
            if tail := self.handler.flush():
                out = (chunk if out is None else out) + tail
            self.ended = True
            if self._response_span is not None:
                self._response_span.end()
            if self.trace is None:  # its event recorded before the caller has the end (a traced one's: at close)
                self._recorded = self._record(False)
            if self.gw.access_log:  # the request's facts for Envoy's access log, with the last reply
                resp = m.body_reply(out)
                self._settle(False)  # computed by _record already, unless traced (recorded at close)
                return self._log_in_envoy(resp)
        elif self.handler.complete and not self.logged and self.gw.access_log:
            # The answer's own last event (a stream's [DONE], message_stop …) is in this chunk: its reply
            # carries the facts too, since a client that has it all may hang up before Envoy hands over
            # the end of the stream, and Envoy then logs the request with the metadata it has. A snapshot:
            # the end of the stream (or meter()) computes the request's figures again.
            self._settle(False)
            resp = self._log_in_envoy(m.body_reply(out))
            self._settled = None
            return resp
        if out is None:
            return m.CONTINUE_RESPONSE_BODY
        return m.body_reply(out)

    def _start_response(self, req: pb.ProcessingRequest) -> None:
        self.first_byte = time.monotonic()
        self.phase = Phase.RESPONDING
        self.status, self.attempts, self.deployment = m.response_facts(req, DEPLOYMENT_ATTR)
        # No deployment: Envoy's own reply (no healthy upstream), shaped by the request headers as they
        # went upstream. On a direct route those are the deployment's (its path and version header),
        # so the reply is read as that protocol's error; elsewhere they are the caller's own.
        t = self.target = self.gw.targets.get(self.deployment) or self.direct
        self.upstream_protocol = t.protocol if t else None
        if self.trace is not None:
            self._response_span = self.trace.begin("tokengate.response", {
                "tokengate.upstream_protocol": t.protocol.value if t else "",
                "tokengate.translated": bool(t and t.codec is not self.codec), "tokengate.stream": self.stream})
        ep = self.endpoint
        assert ep is not None
        if self.embed is not None:
            self.handler = embeddings.handler(ep.codec, t.codec if t else None, self.status, self.embed)
            return
        self.handler = handler_for(
            ep.codec, t.codec if t else None, self.status, stream=self.stream, sse=ep.sse,
            include_usage=self.include_usage, model=self.asked, tool_names=self.tool_names,
            count=ep.kind is Kind.COUNT_TOKENS, upstream_model=t.model if t else None,
            respell_errors=t is not None and t.flavour.respells_errors,
            reframer=t.flavour.reframe(t.codec, ep.kind, self.status, self.stream) if t is not None else None)

    # --- end --------------------------------------------------------------------

    def meter(self, *, cut_short: bool = False) -> None:
        """Write the request's one metering event (every admitted request has one) and account for it, now; later
        calls do nothing. (A response that ran to its end has its event recorded with its last reply, the rest at
        ``close``.)"""
        if self.phase not in (Phase.ROUTED, Phase.RESPONDING):
            return
        with phase(self.trace, "tokengate.metering"):
            if (settled := self._record(cut_short)) is not None:
                self._account(*settled)

    def _record(self, cut_short: bool) -> Settled | None:
        """The request's event built and recorded (the spool, the writer's buffer) and its in-flight line crossed
        off: from here a killed process loses nothing. How the request ended, or None when it was metered already."""
        if self.phase not in (Phase.ROUTED, Phase.RESPONDING):
            return None
        settled = status, usage, estimated, cost, duration, cut_short = self._settle(cut_short)
        h = self.handler
        event = self._event(status, usage, estimated, cost, complete=bool(h and h.complete) and not cut_short,
                            cut_short=cut_short, finish=h.finish if h else None, duration_s=duration)
        self.phase = Phase.DONE
        self.gw.meter.record(event)
        if self.gw.inflight is not None:
            self.gw.inflight.ended(self.event_id)
        return settled

    def _account(self, status: int, usage: Usage, estimated: bool, cost: int, duration: float,
                 cut_short: bool) -> None:
        """The rest of a recorded request's end: its lease told what it cost, its log line, its metrics."""
        if self.lease_id and self.key:
            self.gw.admitter.finished(self.key.account, self.lease_id, self.hold, cost)
        # Envoy's access log has the request: this line only at debug (docs/observability.md).
        level = logging.DEBUG if self.logged else logging.INFO
        if log.is_enabled_for(level) and self._ev is not None:  # the event as a dict only for a line written
            log.log(level, "request", **as_json(self._ev))
        self._metrics(status, usage, estimated, cost, duration, cut_short)

    def _settle(self, cut_short: bool) -> Settled:
        """How the request ended: status, usage, whether estimated, cost, duration, cut short. Computed once: with
        the last reply (its event recorded, the access log's facts), or when the request is metered later."""
        h = self.handler
        # The answer's own last event was seen and passed on: a stream closed after that (the client
        # hung up once it had everything, before Envoy handed over the end of stream) is not cut short.
        cut_short = cut_short and not (h and h.complete)
        if self._settled is not None and self._settled[0] == cut_short:
            return self._settled[1]
        responded = self.phase is Phase.RESPONDING
        usage = h.usage if h else Usage()
        estimated = False
        counting = self.endpoint is not None and self.endpoint.kind is Kind.COUNT_TOKENS
        if counting:
            usage = Usage()  # counting tokens is free
        elif usage.input is None and self.status < 400:
            # The upstream may have charged for a prompt it never reported (cut short before the
            # usage arrived): bill the prompt as estimated from its size, and say so.
            usage = usage.merge(self._estimated_prompt())
            estimated = True
        status = self.status if responded else 0
        cost = self.gw.prices[self.model].cost_nano(usage) if self.model else 0
        duration = time.monotonic() - self.started
        settled = (status, usage, estimated, cost, duration, cut_short)
        self._settled = (cut_short, settled)
        return settled

    def _metrics(self, status: int, usage: Usage, estimated: bool, cost: int, duration: float,
                 cut_short: bool) -> None:
        """The request's samples (translator/metrics.py): one cached lookup of every child, then the values
        added to the process's tally."""
        error = "" if 0 < status < 400 and not cut_short else (
            kind_for_status(status) if status >= 400 else "no_response" if not status else "cut_short")
        t = self.target
        kind = self.endpoint.kind.value if self.endpoint else ""
        codec = self.codec
        s = metrics.series(self.model, self.deployment, codec.name, str(status), kind, codec.gen_ai_operation,
                           t.gen_ai_provider if t else "", t.model if t else "", error)
        tally = metrics.TALLY
        tally.inc(s.requests)
        tally.observe(s.duration, duration)
        tally.observe(s.gen_ai_duration, duration)
        for bucket, n in usage.as_dict().items():
            tally.inc(s.tokens[bucket], n)
        if cost:
            tally.inc(s.cost, cost)
        if self.attempts:
            tally.inc(s.attempts, self.attempts)
            if self.attempts > 1:
                tally.inc(s.failovers)
        ttft = self.first_byte - self.started if self.stream and not error and self.first_byte else None
        if ttft is not None:
            tally.observe(s.ttft, ttft)
        if usage.is_empty or estimated:
            return  # the conventions: no token usage (nor time per token) from counts the upstream never gave
        if usage.input is not None or usage.cache_read is not None or usage.cache_write is not None:
            tally.observe(s.gen_ai_input, usage.prompt_total)
        output = usage.completion_total
        if usage.output is not None or usage.reasoning is not None:  # none: an embeddings request
            tally.observe(s.gen_ai_output, output)
        if ttft is not None and output > 1:
            tally.observe(s.tpot, (duration - ttft) / (output - 1))

    def _event(self, status: int, usage: Usage, estimated: bool, cost: int, *, complete: bool, cut_short: bool,
               finish: str | None, duration_s: float) -> MeteringEvent:
        """The request's metering event (core/event.py). One message per request: built at its first use (the
        in-flight file's event, at admission), then given what each use says of its end. Each use serializes it
        at once, so the reuse changes nothing already written."""
        ev = self._ev
        if ev is None:
            ev = self._ev = self._new_event()
        ev.deployment = self.deployment
        ev.attempts = self.attempts
        ev.upstream_protocol = self.upstream_protocol or ""  # a StrEnum: its value
        ev.status = status
        ev.complete = complete
        ev.cut_short = cut_short
        if finish is None:
            ev.ClearField("finish")
        else:
            ev.finish = finish
        set_usage(ev, usage)
        ev.usage_estimated = estimated
        ev.cost_nano = cost
        ev.duration_ms = round(duration_s * 1000, 3)
        ev.ts = time.time()
        return ev

    def _new_event(self, **fields: Any) -> MeteringEvent:
        """A new metering event of this request, with ``fields`` too (one constructor call: 4.7 µs with the
        in-flight file's line made, against 6.9 for its fields set one by one)."""
        key = self.key
        return MeteringEvent(
            version=EVENT_VERSION, event_id=self.event_id, request_id=self.request_id,
            account=key.account if key else "", key_id=key.key_id if key else "", model=self.model,
            protocol=self.codec.name, stream=self.stream, hold_nano=self.hold, lease=self.lease_id, **fields)

    def _estimated_prompt(self) -> Usage:
        """The prompt as estimated from the body's size (an embeddings request: from its inputs), for a
        request whose upstream never reported it."""
        return Usage(input=self.embed.prompt_estimate if self.embed else estimate_tokens(self.body_len))

    def _unfinished_charge(self) -> tuple[Usage, int]:
        """What this request is charged should it never report (its process died, or its hold was
        reaped), as billing.reaped_holds says: nothing, or its estimated prompt — the same estimate a
        request cut short before its usage arrived is billed."""
        if self.gw.cfg.billing.reaped_holds != "charge_prompt" or self.hold <= 0:
            return Usage(), 0
        usage = self._estimated_prompt()
        return usage, self.gw.prices[self.model].cost_nano(usage)

    def stream_error(self, err: UserFacingError) -> pb.ProcessingResponse:
        """The error in band: the client already has the status line and maybe chunks."""
        log.warning("stream_error", request_id=self.request_id, kind=err.kind, message=err.message)
        self.error, self.logged = err.kind, self.gw.access_log
        self.meter(cut_short=True)
        if not self.stream:
            body = self.codec.error_response(err)[2]
        elif self.handler is not None:  # framed after what the answer sent (a JSON array's last element)
            body = self.handler.abort(err)
        elif self.endpoint is not None and not self.endpoint.sse:
            body = array_error(self.codec.error_body(err), b"")
        else:
            body = self.codec.error_event(err)
        resp = m.body_reply(body)
        return self._log_in_envoy(resp) if self.logged else resp

    def error_response(self, err: UserFacingError) -> pb.ProcessingResponse:
        """The error as the caller's protocol spells it, before anything was sent."""
        status, headers, body = self.codec.error_response(err)
        self.error, self.logged = err.kind, self.gw.access_log  # this reply carries it to Envoy's access log
        level = logging.DEBUG if self.logged else logging.INFO
        if log.is_enabled_for(level):
            log.log(level, "rejected", request_id=self.request_id, status=status, kind=err.kind,
                    model=self.model or None, protocol=self.codec.name)
        if self.phase is Phase.ROUTED:  # admitted (a hold is placed): the request still gets its event
            self.status = status
            self.phase = Phase.RESPONDING
            self.meter()
        else:
            metrics.REJECTED.labels(self.codec.name, err.kind).inc()
        self.phase = Phase.DONE
        resp = m.immediate(status, headers, body, f"tokengate_{err.kind}")
        return self._log_in_envoy(resp) if self.logged else resp

    # --- observability (docs/observability.md) -------------------------------------

    def _log_in_envoy(self, resp: pb.ProcessingResponse) -> pb.ProcessingResponse:
        """``resp`` carrying the request's facts as dynamic metadata (namespace ``tokengate``), which
        Envoy's access log reads when the request ends; what is not known is left out."""
        self.logged = True
        f = m.metadata(resp, "tokengate")
        f["event_id"].string_value = self.event_id
        f["protocol"].string_value = self.codec.name
        if self.key is not None:
            f["account"].string_value, f["key_id"].string_value = self.key.account, self.key.key_id
        if self.model:
            f["model"].string_value = self.model
        if self.error:
            f["error"].string_value = self.error
        if self._settled is not None:
            _, usage, _, cost, _, _ = self._settled[1]
            f["attempts"].number_value, f["cost_usd"].number_value = self.attempts, cost / 1e9
            f["stream"].bool_value = self.stream
            if self.deployment:
                f["deployment"].string_value = self.deployment
                f["upstream_protocol"].string_value = self.upstream_protocol or ""
            for bucket, n in usage.as_dict().items():
                f[f"{bucket}_tokens"].number_value = n
        if self.first_byte:
            f["ttft_ms"].number_value = round((self.first_byte - self.started) * 1000, 3)
        return resp

    def _end_trace(self, t: Trace) -> None:
        """The stream's span gets what the request came to (GenAI names where the conventions have one)."""
        span, target = t.span, self.target
        op = metrics.gen_ai_operation(self.endpoint.kind.value, self.codec.gen_ai_operation) if self.endpoint else ""
        span.set_attribute("tokengate.protocol", self.codec.name)
        if self.model:
            span.update_name(f"{op} {self.asked or self.model}")
            span.set_attributes({"gen_ai.operation.name": op, "gen_ai.request.model": self.asked or self.model,
                                 "tokengate.model": self.model})
        if self.key is not None:
            span.set_attributes({"tokengate.account": self.key.account, "tokengate.key_id": self.key.key_id})
        if target is not None:
            span.set_attributes({"gen_ai.provider.name": target.gen_ai_provider, "gen_ai.response.model": target.model,
                                 "tokengate.deployment": target.name,
                                 "tokengate.upstream_protocol": target.protocol.value})
        if self._settled is not None:
            status, usage, estimated, cost, _, _ = self._settled[1]
            span.set_attributes({"tokengate.attempts": self.attempts, "tokengate.cost_usd": cost / 1e9,
                                 "http.response.status_code": status, "tokengate.event_id": self.event_id,
                                 "tokengate.usage_estimated": estimated})
            if usage.input is not None or usage.cache_read is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_total)
            if usage.output is not None or usage.reasoning is not None:
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_total)
            if self.handler is not None and self.handler.finish:
                span.set_attribute("gen_ai.response.finish_reasons", [self.handler.finish])
        if self.first_byte:
            span.set_attribute("tokengate.ttft_ms", round((self.first_byte - self.started) * 1000, 3))
        if self._response_span is not None and not self.ended:
            self._response_span.end()  # cut short
        status = self._settled[1][0] if self._settled is not None else 0
        if self.error or status >= 400:
            fail(span, self.error or kind_for_status(status))
        span.end()
