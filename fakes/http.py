"""HTTP/1.1 on asyncio streams, framed by h11 (sans-I/O, as httpcore uses it).

One coroutine per connection reads requests (content-length or chunked bodies,
``Expect: 100-continue``), hands each to the application as a
``RecordedRequest`` and writes the ``Response`` it returns: a status, headers
and body pieces, either one body with ``content-length`` or a chunked stream
written piece by piece. Connections are kept alive until the client closes.

Scripted faults live here because only this layer can do them: a delay before
the first byte, a delay between pieces, and dropping the connection after N
pieces without the terminating chunk (the client sees an incomplete body).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import http
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import h11

from fakes.recording import RecordedRequest

Header = tuple[bytes, bytes]
App = Callable[[RecordedRequest], Awaitable["Response"]]

_READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[Header]
    pieces: list[bytes]
    stream: bool = False  # chunked, one write per piece; else one body with content-length
    delay_first_byte: float = 0.0
    delay_between: float = 0.0
    disconnect_after: int | None = None  # pieces written before the connection is dropped (-1: no headers either)


@functools.cache
def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
    """Serve requests on one connection until either side closes it."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await _read_request(conn, reader, writer)
            if request is None:
                return
            response = await app(request)
            if request.method == "HEAD":  # the status and headers only (Claude Code sends HEAD / first)
                response = dataclasses.replace(response, pieces=[], stream=False)
            if not await _write_response(conn, writer, response):
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # h11 says the connection cannot be reused
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                body = str(exc).encode()
                headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
                head = conn.send(h11.Response(status_code=400, headers=headers))
                writer.write(head + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> RecordedRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            conn.receive_data(await reader.read(_READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return _recorded(head, bytes(body))
        else:  # ConnectionClosed (PAUSED cannot happen at the start of a cycle)
            return None


def _recorded(head: h11.Request, body: bytes) -> RecordedRequest:
    target = head.target.decode("latin-1")
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return RecordedRequest(
        method=head.method.decode("ascii"),
        target=target,
        path=path,
        query=dict(parse_qsl(query, keep_blank_values=True)),
        headers=headers,
        body=body,
    )


async def _write_response(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> bool:
    """Write the response; False when the connection was dropped on purpose."""
    if response.delay_first_byte:
        await asyncio.sleep(response.delay_first_byte)
    if response.disconnect_after is not None and response.disconnect_after < 0:
        return False  # dropped before the status line: an upstream reset before headers
    headers = response.headers
    if not response.stream:
        headers = [*headers, (b"content-length", b"%d" % sum(map(len, response.pieces)))]
    head = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
    limit = response.disconnect_after
    if not response.stream and limit is None:  # the common case: one write
        body = conn.send(h11.Data(data=b"".join(response.pieces)))
        writer.write(head + body + conn.send(h11.EndOfMessage()))
        await writer.drain()
        return True
    writer.write(head)
    for i, piece in enumerate(response.pieces):
        if limit is not None and i >= limit:
            break
        if i and response.delay_between:
            await asyncio.sleep(response.delay_between)
        writer.write(conn.send(h11.Data(data=piece)))
        await writer.drain()
    if limit is not None:
        await writer.drain()
        return False  # no terminating chunk: the client sees a cut-off body
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
    return True
