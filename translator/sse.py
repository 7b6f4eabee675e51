"""Server-sent events framing: bytes <-> events, nothing protocol-specific.

``SSEDecoder.feed`` takes bytes exactly as they arrive (split anywhere, even
inside a UTF-8 character or between ``\\r`` and ``\\n``) and returns the
complete events seen so far. Each event keeps its exact raw bytes, so a
passthrough can re-emit what it does not change byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|[\r\n]")  # a line ends at CRLF, LF or CR (a CR at a chunk's end waits for the next)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str
    raw: bytes


class SSEDecoder:
    """Incremental SSE parser (WHATWG rules: ``\\n``, ``\\r\\n`` or ``\\r`` end a line)."""

    __slots__ = ("_buf", "_lines", "_raw", "_carry_cr")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes of the current, unfinished line
        self._lines: list[bytes] = []  # finished lines of the current event
        self._raw = bytearray()  # raw bytes of the current event so far
        self._carry_cr = False  # chunk ended in \r: wait to see whether \n follows

    def __repr__(self) -> str:
        return f"SSEDecoder(lines={len(self._lines)}, partial={len(self._buf)}B)"

    def feed(self, chunk: bytes, *, final: bool = False) -> list[SSEEvent]:
        if self._carry_cr:
            chunk = b"\r" + chunk
            self._carry_cr = False
        if chunk.endswith(b"\r") and not final:
            chunk = chunk[:-1]
            self._carry_cr = True
        events: list[SSEEvent] = []
        start = 0
        for eol in _EOL.finditer(chunk):
            i, line_end = eol.span()
            self._buf += chunk[start:i]
            self._raw += chunk[start:line_end]
            start = line_end
            if self._buf:
                self._lines.append(bytes(self._buf))
                self._buf.clear()
            elif self._lines or self._raw.strip():
                ev = self._dispatch()
                if ev is not None:
                    events.append(ev)
            else:
                self._raw.clear()  # stray blank line between events
        if start < len(chunk):
            self._buf += chunk[start:]
            self._raw += chunk[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: an event left without its blank line is still an event."""
        events = self.feed(b"", final=True) if self._carry_cr else []
        if self._buf:
            self._lines.append(bytes(self._buf))
            self._buf.clear()
        if not self._lines:
            self._raw.clear()
            return events
        ev = self._dispatch()
        return events + [ev] if ev is not None else events

    def _dispatch(self) -> SSEEvent | None:
        event: str | None = None
        data: list[str] = []
        for line in self._lines:
            name, sep, value = line.partition(b":")
            if not name and sep:
                continue  # comment
            if value.startswith(b" "):
                value = value[1:]
            if name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"data":
                data.append(value.decode("utf-8", "replace"))
        raw = bytes(self._raw)
        self._lines.clear()
        self._raw.clear()
        if event is None and not data:
            return SSEEvent(None, "", raw)  # comment-only event, kept for passthrough
        return SSEEvent(event, "\n".join(data), raw)


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE event; multi-line data is split into several ``data:`` lines."""
    text = data.decode() if isinstance(data, bytes) else data
    head = f"event: {event}\n" if event is not None else ""
    body = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}{body}\n".encode()
