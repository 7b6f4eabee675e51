"""Servicer.Process: who ends the RPC, when the metering event is written, and streams cut short.

The event of a request whose answer ran to its end is written with the last reply, before it
goes out. A stream that Envoy closes or resets
early gets one event, cut short — unless the answer's own last event had already been
passed on, which was a race seen only as a flaky end-to-end test before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.inprocess.harness import (
    CHAT,
    InProcess,
    bearer,
    delivered,
    gemini_path,
    immediate,
    request_body,
    request_headers,
    response_body,
    run,
)
from translator.state import LATER_S

BODY = orjson.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello."}], "stream": True,
                     "stream_options": {"include_usage": True}})
TEXT = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
STOP = (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
        b'\n\ndata: {"id":"c","object":"chat.completion.chunk","choices":[],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n')
DONE = b"data: [DONE]\n\n"
CHUNKS = [response_body(TEXT, status=200, deployment="oai"), response_body(STOP), response_body(DONE),
          response_body(b"", end=True)]
OUTCOME = ("status", "complete", "cut_short", "usage", "usage_estimated")
CUT = dict(zip(OUTCOME, (200, False, True, {"input": len(BODY) // 4}, True), strict=True))
CUT_AFTER_USAGE = dict(zip(OUTCOME, (200, False, True, {"input": 5, "output": 2}, False), strict=True))
COMPLETE = dict(zip(OUTCOME, (200, True, False, {"input": 5, "output": 2}, False), strict=True))


def outcome(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in OUTCOME}


async def requests(tg: InProcess) -> list[Any]:
    key = await tg.key("acme")
    return [request_headers(CHAT, bearer(key)), request_body(BODY)]


def test_the_rpc_ends_after_the_last_chunk_and_the_event_is_written_after_that_reply(redis_url: str) -> None:
    """The generator returns without waiting for Envoy; the event is recorded with the last reply (a kill once
    the caller has the answer loses nothing), and the lease told a moment after the RPC ended (Gateway.later)."""
    async def scenario(tg: InProcess) -> None:
        stream = tg.stream([*await requests(tg), *CHUNKS], then="forbid")
        replies = [await anext(stream) for _ in range(2 + len(CHUNKS))]
        assert len(tg.meter.events) == 1  # with the last reply, before it goes out
        with pytest.raises(StopAsyncIteration):
            await anext(stream)  # resumed: it ends the RPC itself (never asking Envoy for more)
        [event] = tg.meter.events
        assert outcome(event) == COMPLETE
        assert delivered(CHUNKS, replies[2:]) == TEXT + STOP + DONE
        lease = tg.gw.admitter.leases["acme"]
        assert lease.inflight > 0  # with the other requests that end meanwhile
        await asyncio.sleep(LATER_S * 2)
        assert (lease.inflight, lease.spent) == (0, event["cost_nano"])

    run(redis_url, scenario)


def test_deferred_work_that_fails_leaves_the_rest_to_run(redis_url: str) -> None:
    async def scenario(tg: InProcess) -> None:
        done: list[int] = []
        tg.gw.later(lambda: done.append(1))
        tg.gw.later(lambda: [][0])
        tg.gw.later(lambda: done.append(3))
        tg.gw.run_later()
        assert done == [1, 3]

    run(redis_url, scenario)


def test_an_immediate_response_ends_the_rpc(redis_url: str) -> None:
    """A refusal at the request headers is the stream's one reply; nothing is metered."""
    async def scenario(tg: InProcess) -> None:
        stream = tg.stream([request_headers(CHAT)], then="forbid")
        assert immediate(await anext(stream))[0] == 401
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert tg.meter.events == []

    run(redis_url, scenario)


def test_envoys_own_reply_before_admission_ends_the_rpc_unmetered(redis_url: str) -> None:
    """A body over Envoy's limit: Envoy answers 413 itself; the router passes it on and charges nobody."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        reply = response_body(b'{"error":{"message":"Request body too large"}}', end=True, status=413)
        ex = await tg.process([request_headers(CHAT, bearer(key)), reply], then="forbid")
        assert [r.WhichOneof("response") for r in ex.responses] == ["request_headers", "response_body"]
        assert delivered([reply], ex.responses[1:]) == reply.response_body.body
        assert (ex.events, tg.gw.admitter.leases) == ([], {})

    run(redis_url, scenario)


@pytest.mark.parametrize("how", ["reset", "half-close", "aclose"])
@pytest.mark.parametrize(("chunks", "expected"), [(1, CUT), (2, CUT_AFTER_USAGE), (3, COMPLETE)],
                         ids=["after-text", "after-usage", "after-done-before-end-of-stream"])
def test_a_stream_closed_early_is_metered_once_and_cut_short_unless_its_last_event_was_seen(
        redis_url: str, chunks: int, expected: dict[str, Any], how: str) -> None:
    """reset: the request stream raises CancelledError; half-close: it ends; aclose: gRPC drops the generator."""
    async def scenario(tg: InProcess) -> None:
        sent = [*await requests(tg), *CHUNKS[:chunks]]
        if how == "aclose":  # the call was cancelled while its reply was being written
            stream = tg.stream(sent, then="forbid")
            for _ in sent:
                await anext(stream)
            await stream.aclose()
        elif how == "reset":
            stream = tg.stream(sent, then="cancel")
            for _ in sent:
                await anext(stream)
            with pytest.raises(asyncio.CancelledError):
                await anext(stream)  # the cancellation goes on out of the servicer
        else:
            ex = await tg.process(sent, then="end")
            assert len(ex.responses) == len(sent)
        tg.gw.run_later()  # what the stream's end left for a moment later
        [event] = tg.meter.events
        assert outcome(event) == expected
        lease = tg.gw.admitter.leases["acme"]
        assert (lease.inflight, lease.spent) == (0, event["cost_nano"])

    run(redis_url, scenario)


def test_an_unreadable_upstream_stream_gets_one_in_band_error_and_one_event(redis_url: str) -> None:
    """After an in-band error the rest of the answer is swallowed and the servicer's meter() adds nothing."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        body = {"model": "claude-test", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        bad = b'event: message_start\ndata: {"type":"message_start","message":"not an object"}\n\n'
        chunks = [response_body(bad, status=200, deployment="ant"),
                  response_body(b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
                  response_body(b"", end=True)]
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(body), *chunks], then="forbid")
        error = {"error": {"message": "The upstream sent a response the gateway could not read.",
                           "type": "server_error", "param": None, "code": None}}
        assert delivered(chunks, ex.responses[2:]) == b"data: " + orjson.dumps(error) + b"\n\n"
        [event] = ex.events
        assert (event["status"], event["cut_short"], event["complete"], event["upstream_protocol"]) == (
            200, True, False, "anthropic")

    run(redis_url, scenario)


def test_a_gemini_array_stream_closed_after_its_last_chunk_is_complete_with_its_usage(redis_url: str) -> None:
    """streamGenerateContent without alt=sse: the array's end carries finishReason and usage, read before
    Envoy hands over the end of stream (it used to wait for that: estimated prompt, no output billed)."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        first = b'[{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"index":0}]}'
        last = (b',\r\n{"candidates":[{"content":{"role":"model","parts":[{"text":"!"}]},"finishReason":"STOP",'
                b'"index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7}}]')
        ex = await tg.process([request_headers(gemini_path("gemini-test", "streamGenerateContent"),
                                               {"x-goog-api-key": key}),
                               request_body({"contents": [{"parts": [{"text": "hi"}]}]}),
                               response_body(first, status=200, deployment="gem"), response_body(last)],
                              then="cancel")
        [event] = ex.events
        assert (event["stream"], event["finish"], outcome(event)) == (True, "STOP", COMPLETE)

    run(redis_url, scenario)
