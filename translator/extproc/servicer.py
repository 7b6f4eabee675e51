"""The gRPC servicer: one ``Process`` stream per HTTP request per filter.

Thin on purpose: it picks the processor for the filter that opened the stream
(router or upstream, told by the ``x-tokengate-filter`` initial metadata), hands
each message to it, and holds the one ``try`` where exceptions become answers
(``boundary.py``).

It ends each router-filter RPC itself, with status OK, as soon as Envoy will
send nothing more for the request (an immediate response, the response's last
body chunk), and Envoy takes the stream as done. The upstream filter's RPCs end
when Envoy half-closes them (ending those early made Envoy answer 500 on 1.40).
Envoy half-closes rather than resets (``ext_proc_graceful_grpc_close`` in the
template), so no status goes out on a reset call: the path on which grpc.aio
leaks native memory (grpc/grpc#43360; docs/performance.md, "Soak").
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from translator.extproc.boundary import Processor, user_facing
from translator.extproc.router import RouterProcessor
from translator.extproc.upstream import UpstreamAttempt
from translator.state import Gateway


class Servicer(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def Process(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProcessingResponse]:
        upstream = ("x-tokengate-filter", "upstream") in (context.invocation_metadata() or ())
        proc: Processor = UpstreamAttempt(self.gw) if upstream else RouterProcessor(self.gw)
        if self.gw.tracing is not None:  # off: this test is all tracing costs (translator/tracing.py)
            name = "tokengate.attempt" if upstream else "tokengate.router"  # the router's: renamed at its end
            proc.trace = self.gw.tracing.start(name, context.invocation_metadata())
        try:
            async for req in request_iterator:
                try:
                    resp = await proc.on(req)
                except Exception as exc:  # the one boundary (boundary.py)
                    resp = proc.fail(req, user_facing(exc, proc, req))
                yield resp
                if proc.answered(req, resp):
                    return  # the request is answered: nothing more comes
        finally:
            # After the last answer went out (the generator resumes once gRPC has sent it), or when
            # Envoy or the client gave up first: the router meters the request (once; its lease, log line and
            # metrics a moment later).
            proc.close()
