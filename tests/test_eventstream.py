"""AWS event-stream framing (``translator/eventstream.py``): frames read whole under any chunking, every header
type, the CRCs checked; the same bytes botocore's own parser reads."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from fakes import bedrock as fake_bedrock
from translator.eventstream import EventStreamDecoder, EventStreamError, Frame, encode_frame

FRAMES = [
    fake_bedrock.event("messageStart", {"role": "assistant"}),
    fake_bedrock.event("contentBlockDelta", {"delta": {"text": "héllo ✓"}, "contentBlockIndex": 0}),
    fake_bedrock.exception("throttlingException", "slow down"),
    encode_frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""),
]
STREAM = b"".join(FRAMES)


def decode(chunks: list[bytes]) -> list[Frame]:
    d = EventStreamDecoder()
    out = [f for c in chunks for f in d.feed(c)] + d.flush()
    assert all(isinstance(f, Frame) for f in out)
    return out  # type: ignore[return-value]


def test_frames_are_read_with_their_type_payload_and_raw_bytes() -> None:
    start, delta, exc, err = decode([STREAM])
    assert ("messageStart", "event", {"role": "assistant", "p": "abcdefghijklm"}) == (
        start.event, start.message_type, __import__("orjson").loads(start.data))
    assert ("contentBlockDelta", FRAMES[1]) == (delta.event, delta.raw)
    assert ("throttlingException", "exception", '{"message":"slow down"}') == (exc.event, exc.message_type, exc.data)
    assert ("InternalFailure", "error", "boom") == (err.event, err.message_type, err.headers[":error-message"])


def test_botocore_reads_the_same_frames() -> None:
    """The fake's frames, as AWS's SDK parses them, are what the gateway's decoder reads."""
    buf = EventStreamBuffer()
    buf.add_data(STREAM)
    theirs = [(m.headers, m.payload) for m in buf]
    ours = [(dict(f.headers), f.data.encode()) for f in decode([STREAM])]
    assert theirs == ours


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert [f.raw for f in decode(chunks)] == FRAMES


def test_every_header_type_is_read() -> None:
    """bool, byte, short, int, long, bytes, string, timestamp and uuid values (AWS's nine types)."""
    u = uuid.UUID(int=42)
    raw = (b"\x01a\x00" + b"\x01b\x01" + b"\x01c\x02\x05" + b"\x01d\x03" + struct.pack(">h", -2)
           + b"\x01e\x04" + struct.pack(">i", 7) + b"\x01f\x05" + struct.pack(">q", 1 << 40)
           + b"\x01g\x06\x00\x02\xff\x00" + b"\x01h\x07\x00\x02ok" + b"\x01i\x08" + struct.pack(">q", 1700000000000)
           + b"\x01j\x09" + u.bytes)
    prelude = struct.pack(">II", 12 + len(raw) + 4, len(raw))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw
    [f] = decode([body + struct.pack(">I", zlib.crc32(body))])
    assert {"a": True, "b": False, "c": 5, "d": -2, "e": 7, "f": 1 << 40, "g": b"\xff\x00", "h": "ok",
            "i": 1700000000000, "j": u} == dict(f.headers)


@pytest.mark.parametrize(("where", "message"), [(5, "prelude CRC"), (len(FRAMES[0]) - 1, "message CRC"),
                                                (20, "message CRC")], ids=["prelude", "crc", "payload"])
def test_a_corrupted_frame_is_an_error(where: int, message: str) -> None:
    bad = bytearray(FRAMES[0])
    bad[where] ^= 0x01
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(bytes(bad))


def test_an_impossible_length_is_an_error() -> None:
    prelude = struct.pack(">II", 8, 0)
    with pytest.raises(EventStreamError, match="out of bounds"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_a_frame_cut_at_the_end_is_left_out() -> None:
    """A stream cut inside a frame gives the frames before it; the protocol's decoder sees no end."""
    d = EventStreamDecoder()
    assert [FRAMES[0]] == [f.raw for f in d.feed(FRAMES[0] + FRAMES[1][:30])]
    assert [] == d.flush()
