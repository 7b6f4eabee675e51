"""SSE framing: the same events from any split of the same bytes."""

from __future__ import annotations

import pytest

from translator.sse import SSEDecoder, SSEEvent, encode_event

STREAM = (
    "event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
    ": keep-alive\n\n"
    "data: line one\ndata: line two\n\n"
    "event: x\rdata: caf\u00e9 \u2603\r\r"
    "data: [DONE]"
).encode()


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.flush()


def test_events_parse_with_every_line_ending() -> None:
    """\\r\\n, \\n and \\r all end lines; comments and multi-line data are understood."""
    events = decode([STREAM])
    assert [
        ("message_start", '{"a":1}'),
        (None, ""),
        (None, "line one\nline two"),
        ("x", "caf\u00e9 \u2603"),
        (None, "[DONE]"),
    ] == [(e.event, e.data) for e in events]
    assert STREAM == b"".join(e.raw for e in events)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7], ids=lambda n: f"{n}B")
def test_any_split_gives_the_same_events(size: int) -> None:
    """Fed in pieces of any size (UTF-8 characters and \\r\\n split too), nothing changes."""
    whole = decode([STREAM])
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert whole == decode(pieces)


def test_split_at_every_offset_gives_the_same_events() -> None:
    """Every two-way split of the stream decodes like the whole."""
    whole = decode([STREAM])
    for i in range(len(STREAM) + 1):
        assert whole == decode([STREAM[:i], STREAM[i:]]), i


def test_encode_round_trips() -> None:
    """encode_event writes what the decoder reads back."""
    raw = encode_event("a\nb", event="e") + encode_event('{"x":1}')
    assert [("e", "a\nb"), (None, '{"x":1}')] == [(e.event, e.data) for e in decode([raw])]
