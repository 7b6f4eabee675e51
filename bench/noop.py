"""The floor of the design: a no-op ext_proc server answering only what routing needs.

``python -m bench.noop --config GATEWAY.yaml --listen unix:/path.sock`` serves Envoy's
ext_proc and gRPC health like a translator, on the same socket, so Envoy runs the
identical rendered config (same filters, phases, modes, attributes). Per message it
does the least the request needs to reach its upstream, the way the translator's
answers would shape it, and nothing else: no authentication, no admission, no
metering, no translation, no logging.

    router, request headers   continue
    router, request body      the routing header (and, on a direct route, the path and
                              credential the router sets), clear the route cache
    router, response body     continue (the chunk goes on unchanged)
    upstream, request headers the path and credential; skip the body (same protocol)

What tokengate costs above this server is "our code"; what this server costs above
bare Envoy is the design's floor.

``NOOP_BURN_US=<µs>`` in its environment makes it spend that much pure-Python CPU on each
request body before answering: the floor with a given amount of per-request Python, to
measure what each microsecond of the translator's own work costs the whole stack
(docs/performance.md, "What a microsecond of Python costs").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2

from core.config import load
from translator.endpoints import Kind, classify
from translator.extproc import messages as m
from translator.extproc.upstream import SKIP_BODY, attempt_headers
from translator.main import ext_proc_server
from translator.state import Target, direct_targets, targets
from translator.upstream_http import ROUTE_HEADER, direct_route

_MODEL = re.compile(rb'"model"\s*:\s*"([^"]+)"')


class NoOp(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, direct: dict[str, Target], targets: dict[str, Target]) -> None:
        self.direct = direct
        self.targets = targets

    async def Process(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProcessingResponse]:
        upstream = ("x-tokengate-filter", "upstream") in (context.invocation_metadata() or ())
        path_seen = ""
        async for req in request_iterator:
            kind = req.WhichOneof("request")
            if kind == "request_headers" and upstream:
                yield self._upstream_headers(req)
            elif kind == "request_headers":
                path_seen = next((h.raw_value.decode() for h in req.request_headers.headers.headers
                                  if h.key == ":path"), "")
                yield m.CONTINUE_REQUEST_HEADERS
            elif kind == "request_body":
                if BURN_STEPS:
                    spin(BURN_STEPS)
                yield self._route(path_seen, req.request_body.body)
            else:
                yield m.CONTINUE_RESPONSE_BODY
                if req.response_body.end_of_stream:
                    return  # like the translator: end the RPC when nothing more comes

    def _route(self, client_path: str, body: bytes) -> pb.ProcessingResponse:
        ep = classify("POST", client_path, {})
        found = _MODEL.search(body)
        model = ep.model if ep and ep.model else (found.group(1).decode() if found else "")
        t = self.direct.get(model)
        headers: dict[str, str] = {ROUTE_HEADER: model}
        remove: list[str] = []
        if ep is not None and t is not None:
            headers, remove = attempt_headers(ep.codec, ep.kind, False, ep.sse, t, ())
            headers[ROUTE_HEADER] = direct_route(model, ep.protocol)
        return m.routed(headers, remove)

    def _upstream_headers(self, req: pb.ProcessingRequest) -> pb.ProcessingResponse:
        meta = m.tokengate_metadata(str(m.attributes(req).get("xds.upstream_host_metadata") or ""))
        t = self.targets[meta.get("deployment", "")]  # answered like a same-protocol attempt
        headers = {":path": t.codec.upstream_path(t.base_path, Kind.CHAT, t.model, stream=False, sse=True),
                   **t.codec.credential(t.credential)}
        resp = m.request_headers(m.common(set_headers=headers))
        resp.mode_override.CopyFrom(SKIP_BODY)
        return resp


def spin(n: int) -> int:
    x = 0
    for i in range(n):
        x ^= i
    return x


def calibrated(seconds: float) -> int:
    """How many ``spin`` steps take ``seconds`` of CPU here (interpreter work holding the GIL, as a
    handler's is)."""
    if not seconds:
        return 0
    steps, start = 200_000, time.process_time()
    spin(steps)
    return int(steps * seconds / (time.process_time() - start))


BURN_STEPS = calibrated(float(os.environ.get("NOOP_BURN_US") or 0) / 1e6)


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.noop", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--listen", required=True, help="unix:/path.sock or host:port")
    args = p.parse_args(argv)
    cfg = load(args.config)
    by_deployment = targets(cfg, Path.cwd())
    server, health_servicer = ext_proc_server(NoOp(direct_targets(cfg, by_deployment), by_deployment), args.listen)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)
    return 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main(sys.argv[1:])))
