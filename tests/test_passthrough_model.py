"""A same-protocol Anthropic stream names the model the client asked for, not the deployment's: Claude Code
drops the thinking of an answer whose model differs from the one it asked for, and Anthropic then refuses
the tool-use turn without it. Only the first event is touched; the rest passes as it came."""

from __future__ import annotations

import orjson
import pytest

from core.protocols import Protocol
from translator.passthrough import Passthrough

START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
         b'"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,'
         b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n')
REST = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def run(p: Passthrough, data: bytes, size: int) -> tuple[bytes, list[bytes | None]]:
    out, answers = b"", []
    for i in range(0, len(data), size):
        chunk = data[i: i + size]
        got = p.feed(chunk)
        answers.append(got)
        out += chunk if got is None else got
    return out + (p.flush() or b""), answers


@pytest.mark.parametrize("size", [1, 7, 10_000], ids=["1B", "7B", "whole"])
def test_the_first_event_names_the_clients_model_and_the_rest_is_untouched(size: int) -> None:
    """message_start says the client's model; every later byte is the upstream's, usage is still read."""
    p = Passthrough(Protocol.ANTHROPIC, stream=True, model="claude-sonnet")
    out, answers = run(p, START + REST, size)
    first, _, rest = out.partition(b"\n\n")
    assert "claude-sonnet" == orjson.loads(first.split(b"data: ", 1)[1])["message"]["model"]
    assert REST == rest
    assert (True, 3, 2) == (p.complete, p.usage.input, p.usage.output)
    held = len(START) // size
    assert all(a is None for a in answers[held + 1:]), "after the first event, chunks pass without a mutation"


def test_no_rename_when_the_names_agree_or_the_protocol_does_not_ask() -> None:
    """Without a model to give, or for another protocol, nothing is held or rewritten."""
    p = Passthrough(Protocol.ANTHROPIC, stream=True)
    assert [None, None] == [p.feed(START), p.feed(REST)]
    oai = Passthrough(Protocol.OPENAI, stream=True, model="x")
    assert oai.feed(b'data: {"id":"c","model":"gpt","choices":[]}\n\n') is None


def test_a_stream_that_ends_before_its_first_event_is_whole_gets_what_was_held() -> None:
    """Bytes held while waiting for the first event still reach the client, then the cut-short error."""
    p = Passthrough(Protocol.ANTHROPIC, stream=True, model="claude-sonnet")
    assert b"" == p.feed(START[:20])
    tail = p.flush() or b""
    assert tail.startswith(START[:20]) and b"event: error" in tail
