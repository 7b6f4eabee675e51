"""What every protocol's stream decoder and encoder share; each codec adds its state machine.

``SSEStreamDecoder``: upstream SSE bytes (or another framing's frames) -> IR events. Subclasses implement ``_decode``
and set ``_finished`` when the upstream gave its finish; ``flush`` ends the stream with
``Ended`` after a finish and with an in-band ``cut_short`` error otherwise, exactly once.

``StreamEncoder``: IR events -> client bytes. Subclasses implement ``_on`` (one event)
and move ``_phase`` IDLE -> OPEN -> CLOSED; ``close`` is ``_on(cut_short())``, which a
CLOSED encoder ignores, so closing is idempotent.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from translator import ir
from translator.sse import SSEDecoder, SSEEvent


class Frames(Protocol):
    """A stream's framing (``base.FrameDecoder``): SSE, or AWS event-stream frames (``translator/eventstream.py``)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...
    def flush(self) -> list[SSEEvent]: ...


class SSEStreamDecoder:
    def __init__(self, frames: Frames | None = None) -> None:
        self._sse: Frames = frames if frames is not None else SSEDecoder()
        self._finished = False  # the upstream said why it stopped
        self._ended = False  # Ended or cut_short was emitted

    def feed(self, chunk: bytes) -> list[ir.Event]:
        return self._decode(self._sse.feed(chunk))

    def flush(self) -> list[ir.Event]:
        return self._decode(self._sse.flush()) + self._close()

    def _close(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.Ended()] if self._finished else [ir.cut_short()]

    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        raise NotImplementedError


class EncoderPhase(Enum):
    IDLE = "idle"  # nothing sent yet
    OPEN = "open"  # the stream's opening sent
    CLOSED = "closed"


class StreamEncoder:
    def __init__(self) -> None:
        self._phase = EncoderPhase.IDLE

    def encode(self, events: list[ir.Event]) -> bytes:
        return b"".join(self._on(e) for e in events)

    def close(self) -> bytes:
        return self._on(ir.cut_short())

    def _on(self, e: ir.Event) -> bytes:
        raise NotImplementedError
