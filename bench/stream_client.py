"""Scenario E's client: streams one chat completion at a time and times every chunk.

Per stream: time to first token (request written -> first content event read)
and, per content chunk, upstream write -> client read, from the CLOCK_MONOTONIC
stamp the SSE upstream puts in each chunk's text. The read timestamp is taken
when bytes arrive (``data_received``), before any parsing. ``ResponseReader`` is
the pure part (HTTP/1.1 head, chunked framing, SSE lines), fed bytes as they came.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.sse_server import now_ns

_STAMP = re.compile(rb'"(?:content|text)":"(\d{6,}) ')


class ResponseReader:
    """Incremental HTTP/1.1 response reader for one SSE response."""

    def __init__(self) -> None:
        self.status = 0
        self.done = False
        self.first_event_ns = 0
        self.latencies_ns: list[int] = []
        self.events = 0
        self._head = b""
        self._in_body = False
        self._chunked = False
        self._chunk_left = 0  # bytes of chunk data still to come
        self._pending = b""  # framing bytes not yet understood
        self._lines = b""  # body bytes not yet split into lines

    def feed(self, data: bytes, now: int) -> None:
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4:]
            self._in_body = True
            lines = head.split(b"\r\n")
            self.status = int(lines[0].split()[1])
            self._chunked = any(ln.lower().replace(b" ", b"") == b"transfer-encoding:chunked" for ln in lines[1:])
        self._body(self._dechunk(data) if self._chunked else data, now)

    def _dechunk(self, data: bytes) -> bytes:
        buf = self._pending + data
        out = bytearray()
        i = 0
        while i < len(buf) and not self.done:
            if self._chunk_left > 0:
                take = min(self._chunk_left, len(buf) - i)
                out += buf[i:i + take]
                i += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_left = -2  # the CRLF after the data
                continue
            if self._chunk_left < 0:  # -2: the CRLF after chunk data; -3: the CRLF ending the body
                if len(buf) - i < 2:
                    break
                i += 2
                self.done = self._chunk_left == -3
                self._chunk_left = 0
                continue
            eol = buf.find(b"\r\n", i)
            if eol < 0:
                break
            size = int(buf[i:eol].split(b";")[0], 16)
            i = eol + 2
            self._chunk_left = size if size else -3  # no trailers are expected after the last chunk
        self._pending = buf[i:]
        return bytes(out)

    def _body(self, data: bytes, now: int) -> None:
        self._lines += data
        *complete, self._lines = self._lines.split(b"\n")
        for line in complete:
            if not line.startswith(b"data:"):
                continue
            self.events += 1
            if b"[DONE]" in line:
                if not self._chunked:
                    self.done = True
                continue
            m = _STAMP.search(line)
            if m:
                if not self.first_event_ns:
                    self.first_event_ns = now
                self.latencies_ns.append(now - int(m.group(1)))


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = ResponseReader()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def reset(self) -> None:
        self.reader = ResponseReader()
        self.finished = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = now_ns()
        self.reader.feed(data, now)
        if self.reader.done and not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(f"connection closed mid-stream: {exc}"))


@dataclass
class StreamSamples:
    """Every stream's TTFT and every chunk's latency, in nanoseconds."""

    ttft_ns: list[int] = field(default_factory=list)
    chunk_ns: list[int] = field(default_factory=list)
    streams: int = 0
    failures: list[str] = field(default_factory=list)
    chunks_per_stream: list[int] = field(default_factory=list)


def request_bytes(host: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _worker(port: int, request: bytes, deadline: float, budget: list[int], out: StreamSamples,
                  timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_Protocol, "127.0.0.1", port)
    try:
        while budget[0] > 0 and loop.time() < deadline:
            budget[0] -= 1
            proto.reset()
            sent = now_ns()
            transport.write(request)
            try:
                await asyncio.wait_for(proto.finished, timeout_s)
            except (TimeoutError, ConnectionError) as exc:
                out.failures.append(f"{type(exc).__name__}: {exc}")
                return
            r = proto.reader
            if r.status != 200 or not r.first_event_ns:
                out.failures.append(f"status {r.status}, {r.events} events")
                return
            out.streams += 1
            out.ttft_ns.append(r.first_event_ns - sent)
            out.chunk_ns.extend(r.latencies_ns)
            out.chunks_per_stream.append(len(r.latencies_ns))
    finally:
        transport.close()


async def run(port: int, path: str, body: bytes, headers: Mapping[str, str], *, streams: int,
              concurrency: int, max_seconds: float, timeout_s: float = 30.0) -> StreamSamples:
    """``streams`` streams over ``concurrency`` keep-alive connections, stopping at ``max_seconds``."""
    out = StreamSamples()
    request = request_bytes(f"127.0.0.1:{port}", path, body, headers)
    deadline = asyncio.get_running_loop().time() + max_seconds
    budget = [streams]
    await asyncio.gather(*(_worker(port, request, deadline, budget, out, timeout_s) for _ in range(concurrency)))
    return out
