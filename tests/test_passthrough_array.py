"""A same-protocol Gemini stream sent as one JSON array (no ``alt=sse``): whatever happens, the client
reads one well-formed array, and an answer that did not finish ends with an error element."""

from __future__ import annotations

import orjson
import pytest

from core.protocols import Protocol
from translator.errors import UpstreamError
from translator.passthrough import Passthrough

A = b'{"candidates":[{"content":{"role":"model","parts":[{"text":"a"}]}}]}'
B = (b'{"candidates":[{"content":{"role":"model","parts":[{"text":"b"}]},"finishReason":"STOP"}],'
     b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2}}')
FINISHED = b"[" + A + b",\r\n" + B + b"]"
UNFINISHED_CLOSED = b"[" + A + b"]\n"  # the upstream closed the array without a finish
UNFINISHED_OPEN = b"[" + A  # the upstream's body ended before the array did
CUT = "upstream stream ended before it finished"


def run(data: bytes, size: int) -> tuple[bytes, Passthrough]:
    p = Passthrough(Protocol.GEMINI, stream=True, sse=False)
    out = b""
    for i in range(0, len(data), size):
        chunk = data[i : i + size]
        got = p.feed(chunk)
        out += chunk if got is None else got
    return out + (p.flush() or b""), p


SIZES = pytest.mark.parametrize("size", [1, 3, 10_000], ids=["1B", "3B", "whole"])


@SIZES
def test_a_finished_array_passes_unchanged(size: int) -> None:
    """Nothing is added to or held back from an array that ends with its finish."""
    out, p = run(FINISHED, size)
    assert (FINISHED, True, "STOP") == (out, p.complete, p.finish)


@SIZES
@pytest.mark.parametrize("data", [UNFINISHED_CLOSED, UNFINISHED_OPEN, b"", b"["], ids=["closed", "open", "empty", "bracket"])
def test_an_unfinished_array_ends_with_an_error_element(data: bytes, size: int) -> None:
    """Closed without a finish (its ']' held back), cut before its end, or empty: the client still reads
    one JSON array, whose last element is the in-band error (code 502, INTERNAL)."""
    out, p = run(data, size)
    doc = orjson.loads(out)
    assert isinstance(doc, list) and not p.complete
    assert {"code": 502, "status": "INTERNAL"} == {k: doc[-1]["error"][k] for k in ("code", "status")}
    assert CUT in doc[-1]["error"]["message"]
    assert [e for e in doc[:-1] if "error" in e] == []


@pytest.mark.parametrize("sent", [b"", b"[", b"[" + A, b"[" + A + b",\r\n"], ids=["nothing", "bracket", "one", "comma"])
def test_the_gateways_own_error_mid_stream_is_the_arrays_last_element(sent: bytes) -> None:
    """When the gateway fails mid-stream (abort), its error closes the array after whatever was sent."""
    p = Passthrough(Protocol.GEMINI, stream=True, sse=False)
    got = p.feed(sent) if sent else None
    out = (sent if got is None else got) + p.abort(UpstreamError("The upstream sent a response the gateway could not read."))
    doc = orjson.loads(out)
    assert 502 == doc[-1]["error"]["code"] and "could not read" in doc[-1]["error"]["message"]


def test_sse_streams_keep_the_event_framing_for_an_abort() -> None:
    """With alt=sse the gateway's error is a data: event, as before."""
    p = Passthrough(Protocol.GEMINI, stream=True, sse=True)
    assert p.abort(UpstreamError("x")).startswith(b"data: {")
