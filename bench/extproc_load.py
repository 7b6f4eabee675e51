"""One ext_proc server under load, without Envoy: its CPU per request, and what it adds to latency.

    python -m bench.extproc_load [--server translator|noop] [--requests 6000] [--concurrency 16]
                                 [--stream] [--long] [--to-anthropic] [--callgrind FILE [--cache-sim]]

Starts a Redis and one server on the bench's gateway config (``bench/gateway.py``) — a translator, or
the no-op floor (``bench/noop.py``) — and sends it, over real gRPC on its unix socket, the four messages
Envoy sends its router filter for a C request: the request headers (a bench key), the body, the
answer's body with the attributes Envoy adds, its end. ``--stream`` makes it a streamed request
(``"stream": true``, two SSE chunks, the usage chunk the gateway asks for); ``--long`` sends scenario L's coding-agent
turn (203 KiB) instead of the 100-byte question, and ``--to-anthropic`` names the Anthropic model (the body translated,
the answer an Anthropic message, as in D1 and L-D1). It reports the server's CPU
per request (utime + stime of all its threads, the warm-up left out) and the median round trip of the
first three messages (what the server adds to a stream's time to first token).

Why beside ``make bench``: Envoy's share and the machine's phases move whole-stack runs by ±10%; with
Envoy out of the picture, the translator and the floor taken in turns show what our code costs per
request (docs/performance.md, "Where the translator's time goes"). ``--callgrind FILE`` runs the
server under valgrind instead: instruction counts, which do not move with the machine — the
difference between two ``--requests`` counts, divided by theirs, is one request's; with ``--cache-sim``
also its first-level and last-level cache misses (docs/performance.md, "Work after the answer").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import orjson
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from google.protobuf.struct_pb2 import Struct

from bench import gateway, sse_server, upstream
from tokengate.procs import free_port, port_open
from translator.extproc.messages import ATTR_NAMESPACE
from translator.upstream_http import DEPLOYMENT_ATTR

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 50  # requests per concurrent caller before the measured ones


def messages(key: str, *, stream: bool, long: bool = False, anthropic: bool = False) -> list[pb.ProcessingRequest]:
    """What Envoy's router filter sends the server for one C request (the request id differs each time); with ``long``
    an L-C one, with ``anthropic`` a D1 (or L-D1) one."""
    headers = {":method": "POST", ":path": "/v1/chat/completions", ":authority": "127.0.0.1", ":scheme": "http",
               "content-type": "application/json", "authorization": f"Bearer {key}", "user-agent": "wrk",
               "x-request-id": os.urandom(8).hex(), "x-forwarded-proto": "http"}
    attrs = Struct()
    model = gateway.ANTHROPIC_MODEL if anthropic else gateway.OPENAI_MODEL
    attrs.update({"response.code": 200, "upstream.request_attempt_count": 1,
                  DEPLOYMENT_ATTR: "ant-fast" if anthropic else "oai-fast"})
    if stream and anthropic:
        raise ValueError("a streamed request to the Anthropic model is not among the messages this load sends")
    if stream:
        first = sse_server.content_event(gateway.OPENAI_MODEL, 1)
        last = sse_server.usage_event(gateway.OPENAI_MODEL, 1) + b"data: [DONE]\n\n"
    else:
        first, last = orjson.dumps(upstream.ANTHROPIC_RESPONSE if anthropic else upstream.OPENAI_RESPONSE), b""
    body = upstream.agent_request(model) if long else upstream.openai_request(model, stream=stream)
    answer = pb.ProcessingRequest(response_body=pb.HttpBody(body=first))
    answer.attributes[ATTR_NAMESPACE].CopyFrom(attrs)
    return [
        pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=HeaderMap(
            headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]))),
        pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True)),
        answer,
        pb.ProcessingRequest(response_body=pb.HttpBody(body=last, end_of_stream=True)),
    ]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(sock: str, key: str, requests: int, concurrency: int, stream: bool,
               pid: int, **shape: bool) -> dict[str, float]:
    async with grpc.aio.insecure_channel(sock) as channel:
        await asyncio.wait_for(channel.channel_ready(), 300)
        stub = pb_grpc.ExternalProcessorStub(channel)
        firsts: list[float] = []

        async def one() -> None:
            call = stub.Process(metadata=(("x-tokengate-filter", "router"),))
            start = time.perf_counter()
            for i, msg in enumerate(messages(key, stream=stream, **shape)):
                await call.write(msg)
                reply = await call.read()
                if reply is grpc.aio.EOF or reply.HasField("immediate_response"):
                    raise RuntimeError(f"the server did not route the request: {reply}")
                if i == 2:
                    firsts.append(time.perf_counter() - start)
            await call.done_writing()
            await call.code()

        async def caller(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(caller(WARM_UP) for _ in range(concurrency)))
        firsts.clear()
        per = requests // concurrency
        cpu, began = cpu_s(pid), time.perf_counter()
        await asyncio.gather(*(caller(per) for _ in range(concurrency)))
        took = time.perf_counter() - began
        await asyncio.sleep(1.5)  # what the server does after the answers (metering, its tally) counts too
        cpu = cpu_s(pid) - cpu
    n = per * concurrency
    return {"requests": n, "rps": n / took, "cpu_us_per_request": cpu / n * 1e6,
            "first_three_p50_us": statistics.median(firsts) * 1e6}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    os.environ.update(gateway.SECRETS)
    cfg = gateway.write(gateway.config(work, free_port(), free_port(), 1), work / "gateway.yaml")
    redis_port, sock = free_port(), f"unix:{work}/extproc.sock"
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    module = ["translator", "--redis-url", redis_url] if args.server == "translator" else ["bench.noop"]
    pre = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={args.callgrind}",
           *(["--cache-sim=yes"] if args.cache_sim else [])] if args.callgrind else []
    with (work / "server.log").open("wb") as log, contextlib.ExitStack() as stack:
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL)
        stack.callback(redis.wait)
        stack.callback(redis.kill)
        deadline = time.monotonic() + 10
        while not port_open(redis_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        key = asyncio.run(gateway.new_key(redis_url))
        server = subprocess.Popen([*pre, sys.executable, "-m", *module, "--config", str(cfg), "--listen", sock],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        stack.callback(server.wait)
        stack.callback(server.terminate)  # SIGTERM: callgrind writes its file as the server exits
        result = asyncio.run(load(sock, key, args.requests, args.concurrency, args.stream, server.pid,
                                  long=args.long, anthropic=args.to_anthropic))
    return {"server": args.server, "stream": args.stream, "long": args.long, "to_anthropic": args.to_anthropic,
            "concurrency": args.concurrency, **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.extproc_load", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--server", choices=("translator", "noop"), default="translator")
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--stream", action="store_true", help="a streamed request (two SSE chunks)")
    p.add_argument("--long", action="store_true", help="scenario L's body: a coding agent's 203 KiB turn")
    p.add_argument("--to-anthropic", action="store_true", help="the Anthropic model: the body translated (D1, L-D1)")
    p.add_argument("--callgrind", metavar="FILE", help="run the server under valgrind's callgrind, writing FILE")
    p.add_argument("--cache-sim", action="store_true",
                   help="with --callgrind: simulate the caches too (instruction and data cache misses per function)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tg-extproc-load-") as work:
        result = run(args, Path(work))
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
