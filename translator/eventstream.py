"""AWS event-stream framing (``application/vnd.amazon.eventstream``): bytes -> frames, nothing Bedrock-specific.

A frame (AWS calls it a message) is::

    total length (u32) | headers length (u32) | prelude CRC32 (u32)     the 12-byte prelude
    headers                                                             name (u8 length + bytes), type (u8), value
    payload
    message CRC32 (u32)                                                 over everything before it

all big-endian. ``EventStreamDecoder.feed`` takes bytes exactly as they arrive (split anywhere) and
returns the whole frames seen so far; a CRC that does not match, a length out of bounds or a header
of an unknown type is an ``EventStreamError`` (a ``ValueError``: the upstream sent what the gateway
cannot read, its 502). Each ``Frame`` is an ``SSEEvent`` too (``event``: its ``:event-type``, or
``:exception-type`` / ``:error-code`` for the other message types; ``data``: the payload as text;
``raw``: its exact bytes), so a passthrough reads it like an SSE event (``Codec.stream_frames``).

``encode_frame`` writes one (string headers only), for tests and tools; the fakes have their own.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translator.sse import SSEEvent

PRELUDE = 12
MAX_FRAME = 24 * 1024 * 1024  # botocore's limit for a payload; a longer frame is not AWS's
_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">III")


class EventStreamError(ValueError):
    """Bytes that are not a valid event stream."""


@dataclass(frozen=True, slots=True)
class Frame(SSEEvent):
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def message_type(self) -> str:
        """``event``, ``exception`` (a modelled error: ``:exception-type``) or ``error`` (``:error-code``)."""
        return str(self.headers.get(":message-type", "event"))


def _frame_name(headers: Mapping[str, Any]) -> str | None:
    kind = headers.get(":message-type", "event")
    key = {"event": ":event-type", "exception": ":exception-type", "error": ":error-code"}.get(str(kind))
    value = headers.get(key) if key else None
    return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Incremental event-stream parser."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __repr__(self) -> str:
        return f"EventStreamDecoder(buffered={len(self._buf)}B)"

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        frames: list[SSEEvent] = []
        buf = self._buf
        start = 0
        while len(buf) - start >= PRELUDE:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, start)
            if zlib.crc32(buf[start:start + 8]) != prelude_crc:
                raise EventStreamError("event stream: prelude CRC mismatch")
            if total < PRELUDE + 4 + headers_len or total > MAX_FRAME:
                raise EventStreamError(f"event stream: frame length {total} out of bounds")
            if len(buf) - start < total:
                break
            end = start + total
            (crc,) = _U32.unpack_from(buf, end - 4)
            if zlib.crc32(buf[start:end - 4]) != crc:
                raise EventStreamError("event stream: message CRC mismatch")
            headers = _headers(bytes(buf[start + PRELUDE:start + PRELUDE + headers_len]))
            payload = bytes(buf[start + PRELUDE + headers_len:end - 4])
            frames.append(Frame(_frame_name(headers), payload.decode("utf-8", "replace"), bytes(buf[start:end]),
                                headers))
            start = end
        if start:
            del buf[:start]
        return frames

    def flush(self) -> list[SSEEvent]:
        """End of stream: a partial frame left over is dropped (the stream was cut inside it: the protocol's
        decoder sees no end and says so)."""
        self._buf.clear()
        return []


# header value types: 0 true, 1 false, 2 byte, 3 short, 4 int, 5 long, 6 bytes, 7 string, 8 timestamp, 9 uuid
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: struct.Struct(">q"),
          8: struct.Struct(">q")}


def _headers(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i, n = 0, len(raw)
    try:
        while i < n:
            name_len = raw[i]
            name = raw[i + 1:i + 1 + name_len].decode("utf-8")
            i += 1 + name_len
            kind = raw[i]
            i += 1
            value: Any
            if kind in (0, 1):
                value = kind == 0
            elif kind in _FIXED:
                s = _FIXED[kind]
                (value,) = s.unpack_from(raw, i)
                i += s.size
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", raw, i)
                data = raw[i + 2:i + 2 + length]
                if len(data) != length:
                    raise EventStreamError("event stream: header value runs past the headers")
                value = data.decode("utf-8") if kind == 7 else data
                i += 2 + length
            elif kind == 9:
                value = uuid.UUID(bytes=raw[i:i + 16])
                i += 16
            else:
                raise EventStreamError(f"event stream: unknown header type {kind}")
            out[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"event stream: unreadable headers ({exc})") from None
    if i != n:
        raise EventStreamError("event stream: header value runs past the headers")
    return out


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One frame with string headers."""
    head = b"".join(_string_header(k, v) for k, v in headers.items())
    total = PRELUDE + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + head + payload
    return body + _U32.pack(zlib.crc32(body))


def _string_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
