"""Same-protocol responses: bytes pass untouched, usage is read on the side."""

from __future__ import annotations

import orjson
import pytest

from core.protocols import Protocol
from core.usage import Usage
from translator.passthrough import Passthrough


def _oai(delta: dict[str, object], finish: str | None = None, usage: object = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + orjson.dumps({"id": "c", "choices": [choice], "usage": usage}) + b"\n\n"


OAI_STREAM = (
    _oai({"role": "assistant", "content": ""})
    + _oai({"content": "h\u00e9llo"})
    + _oai({}, "stop")
    + b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,'
      b'"prompt_tokens_details":{"cached_tokens":4}}}\n\n'
    + b"data: [DONE]\n\n"
)
ANT_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":12,'
    b'"cache_read_input_tokens":3,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
GEM_STREAM = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1}}\r\n\r\n'
    b'data: {"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":4}}\r\n\r\n'
)


def run(p: Passthrough, data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        chunk = data[i : i + size]
        got = p.feed(chunk)
        out += chunk if got is None else got
    tail = p.flush()
    return out + (tail or b"")


@pytest.mark.parametrize(
    ("protocol", "data", "usage", "finish"),
    [
        (Protocol.OPENAI, OAI_STREAM, Usage(input=5, cache_read=4, output=2), "stop"),
        (Protocol.ANTHROPIC, ANT_STREAM, Usage(input=12, cache_read=3, output=7), "end_turn"),
        (Protocol.GEMINI, GEM_STREAM, Usage(input=5, output=2, reasoning=4), "STOP"),
    ],
    ids=["openai", "anthropic", "gemini"],
)
@pytest.mark.parametrize("size", [1, 4, 10_000], ids=["1B", "4B", "whole"])
def test_streams_pass_unchanged_and_usage_is_read(protocol: Protocol, data: bytes, usage: Usage, finish: str, size: int) -> None:
    """Whatever the chunking, the client gets the same bytes and the usage is the upstream's."""
    p = Passthrough(protocol, stream=True)
    assert data == run(p, data, size)
    assert (usage, finish, True) == (p.usage, p.finish, p.complete)


@pytest.mark.parametrize("size", [1, 3, 10_000], ids=["1B", "3B", "whole"])
def test_usage_chunk_is_removed_when_the_client_did_not_ask(size: int) -> None:
    """The usage-only chunk tokengate asked for is dropped; everything else is byte-identical."""
    p = Passthrough(Protocol.OPENAI, stream=True, strip_usage_chunk=True)
    out = run(p, OAI_STREAM, size)
    expected = OAI_STREAM.replace(OAI_STREAM.split(b"\n\n")[3] + b"\n\n", b"")
    assert expected == out
    assert Usage(input=5, cache_read=4, output=2) == p.usage


def test_stream_cut_before_its_end_marker_is_not_complete() -> None:
    """A stream without [DONE] keeps the usage seen so far and says it is incomplete."""
    p = Passthrough(Protocol.ANTHROPIC, stream=True)
    run(p, ANT_STREAM[: ANT_STREAM.index(b"event: message_delta")], 7)
    assert (Usage(input=12, cache_read=3, output=1), False) == (p.usage, p.complete)


def test_non_stream_body_is_read_at_the_end() -> None:
    """A JSON body is passed through and parsed once, whole."""
    body = orjson.dumps({"choices": [{"finish_reason": "length"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 8,
                                   "completion_tokens_details": {"reasoning_tokens": 5}}})
    p = Passthrough(Protocol.OPENAI, stream=False)
    assert body == run(p, body, 5)
    assert (Usage(input=3, output=3, reasoning=5), "length", True) == (p.usage, p.finish, p.complete)


def test_gemini_json_array_stream_is_read_whole() -> None:
    """Gemini streams without alt=sse (one JSON array) are read at the end."""
    arr = b"[" + b",".join(line[6:] for line in GEM_STREAM.split(b"\r\n\r\n") if line) + b"]"
    p = Passthrough(Protocol.GEMINI, stream=True, sse=False)
    assert arr == run(p, arr, 9)
    assert (Usage(input=5, output=2, reasoning=4), True) == (p.usage, p.complete)


@pytest.mark.parametrize(
    ("protocol", "data", "expected_tail"),
    [
        (Protocol.OPENAI, OAI_STREAM[: OAI_STREAM.index(b"data: [DONE]")], b'data: {"error":'),
        (Protocol.ANTHROPIC, ANT_STREAM[: ANT_STREAM.index(b"event: message_stop")], b"event: error\ndata: "),
        (Protocol.GEMINI, GEM_STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n", b'data: {"error":{"code":502'),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_a_stream_ending_without_its_terminal_event_gets_an_in_band_error(
        protocol: Protocol, data: bytes, expected_tail: bytes) -> None:
    """The upstream's bytes pass unchanged, then an error event in the client's protocol: never a fake finish."""
    p = Passthrough(protocol, stream=True)
    out = run(p, data, 5)
    assert out.startswith(data)
    assert out[len(data):].startswith(expected_tail)
    assert b"ended before it finished" in out[len(data):]
    assert not p.complete


def test_an_anthropic_stream_the_upstream_ended_with_its_own_error_gets_no_second_one() -> None:
    """An upstream ``event: error`` (e.g. overloaded mid-stream) passes as it came and ends the stream:
    unfinished, but the gateway appends no cut-short error of its own after it."""
    err = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    data = ANT_STREAM[: ANT_STREAM.index(b"event: message_stop")] + err
    p = Passthrough(Protocol.ANTHROPIC, stream=True)
    assert data == run(p, data, 5)
    assert not p.complete


def test_a_chunk_that_comes_out_unchanged_is_not_a_mutation() -> None:
    """Even while stripping the usage chunk, whole events that all pass go on as they came (None)."""
    p = Passthrough(Protocol.OPENAI, stream=True, strip_usage_chunk=True)
    first = OAI_STREAM.split(b"\n\n")[0] + b"\n\n"
    assert p.feed(first) is None
    assert b"data: [DONE]\n\n" == p.feed(OAI_STREAM[len(first):])[-14:]  # type: ignore[index]
