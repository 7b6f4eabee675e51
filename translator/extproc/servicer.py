"""The gRPC servicer: one ``Process`` stream per HTTP request per filter.

Thin on purpose: it picks the processor for the filter that opened the stream
(router or upstream, told by the ``x-tokengate-filter`` initial metadata), hands
each message to it, and is the one place where exceptions become responses.

It ends each router-filter RPC itself, with status OK, as soon as Envoy will
send nothing more for the request (an immediate response, the response's last
body chunk), and Envoy takes the stream as done. Left to Envoy, the stream is
reset after the response while the handler still waits for a message, and the
handler's status then goes out on a cancelled call: the path on which grpc.aio
leaks native memory (grpc/grpc#43360). The upstream filter's RPCs are left to
Envoy: ending those early made Envoy answer 500 on 1.40.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from translator.errors import UserFacingError
from translator.extproc import messages as m
from translator.extproc.router import Phase, RouterProcessor
from translator.extproc.upstream import UpstreamAttempt, client_protocol
from translator.state import Gateway

log = structlog.get_logger("tokengate.extproc")
_INTERNAL = UserFacingError("The gateway failed to process this request.", status=500)


class Servicer(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def Process(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProcessingResponse]:
        if ("x-tokengate-filter", "upstream") in (context.invocation_metadata() or ()):
            attempt = UpstreamAttempt(self.gw)
            async for req in request_iterator:
                yield self._upstream(attempt, req)
            return
        proc = RouterProcessor(self.gw)
        try:
            async for req in request_iterator:
                resp = await self._router(proc, req)
                yield resp
                if resp.HasField("immediate_response") or req.response_body.end_of_stream:
                    return  # the request is answered: nothing more comes
        finally:
            # After the last answer went out (the generator resumes once gRPC has sent it), or when
            # Envoy or the client gave up first; a no-op after an error already metered the request.
            proc.meter(cut_short=not proc.ended)

    async def _router(self, proc: RouterProcessor, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        kind = req.WhichOneof("request")
        try:
            if kind == "request_body":
                return await proc.on_request_body(req)
            if kind == "response_body":
                return proc.on_response_body(req)
            if kind == "request_headers":
                return await proc.on_request_headers(req)
            raise RuntimeError(f"unexpected ext_proc message {kind!r}")
        except Exception as exc:
            err = exc if isinstance(exc, UserFacingError) else _INTERNAL
            if err is _INTERNAL:
                log.exception("router_failed", request_id=proc.request_id, message=kind)
            if proc.phase is Phase.RESPONDING:
                return proc.stream_error(err)
            return proc.error_response(err)

    def _upstream(self, attempt: UpstreamAttempt, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        kind = req.WhichOneof("request")
        try:
            if kind == "request_headers":
                return attempt.on_request_headers(req)
            if kind == "request_body":
                return attempt.on_request_body(req)
            if kind == "response_headers":
                return attempt.on_response_headers(req)
            raise RuntimeError(f"unexpected ext_proc message {kind!r}")
        except Exception as exc:
            err = exc if isinstance(exc, UserFacingError) else _INTERNAL
            if err is _INTERNAL:
                log.exception("upstream_failed", message=kind)
            status, headers, body = err.render(client_protocol(req))
            return m.immediate(status, headers, body, f"tokengate_{err.kind}")
