"""The streaming upstream for scenario E: ``python -m bench.sse_server --port N``.

Answers every POST with an OpenAI chat-completion stream: ``--chunks`` content
chunks ``--gap-ms`` apart on an absolute schedule (no drift), then a finish
chunk, a usage chunk when the request asked for one, and ``[DONE]``. Each
content chunk's text starts with the CLOCK_MONOTONIC nanoseconds at which it was
written (``"content":"<ns> "``), so a client on this machine measures
upstream-write to client-read for every chunk, through any translation that
keeps the text. HTTP/1.1 keep-alive, chunked transfer encoding, no parsing
beyond what that needs: its own overhead is what scenario E-A measures.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import orjson

_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
         b"transfer-encoding: chunked\r\n\r\n")


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def frame(event: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(event), event)


def _chunk(model: str, delta: dict[str, object], finish: str | None = None) -> bytes:
    doc = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def content_event(model: str, ts_ns: int) -> bytes:
    return _chunk(model, {"content": f"{ts_ns} "})


def usage_event(model: str, chunks: int) -> bytes:
    doc = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
           "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": chunks, "total_tokens": 14 + chunks}}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


class Server:
    def __init__(self, chunks: int, gap_s: float) -> None:
        self.chunks = chunks
        self.gap_s = gap_s

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                await self._stream(writer, body)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            req = {}
        model = str(req.get("model") or "gpt-stream")
        opts = req.get("stream_options")
        wants_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        loop = asyncio.get_running_loop()
        writer.write(_HEAD)
        start = loop.time()
        for i in range(self.chunks):
            delay = start + i * self.gap_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(frame(content_event(model, now_ns())))
            await writer.drain()
        tail = _chunk(model, {}, "stop")
        if wants_usage:
            tail += usage_event(model, self.chunks)
        writer.write(frame(tail) + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


async def serve(host: str, port: int, chunks: int, gap_ms: float) -> int:
    srv = Server(chunks, gap_ms / 1000)
    server = await asyncio.start_server(srv.handle, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sse_server: listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sse_server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=200)
    p.add_argument("--gap-ms", type=float, default=5.0)
    args = p.parse_args(argv)
    import uvloop

    return uvloop.run(serve(args.host, args.port, args.chunks, args.gap_ms))


if __name__ == "__main__":
    sys.exit(main())
