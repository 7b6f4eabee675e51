"""The router-level filter, message by message: routing, credentials, bodies, the metering event."""

from __future__ import annotations

from typing import Any

import orjson
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.json_format import MessageToDict

from core.protocols import Protocol
from tests.harness import PRICES, UPSTREAM_SECRETS
from tests.inprocess.harness import (
    CHAT,
    InProcess,
    bearer,
    delivered,
    new_body,
    removed_headers,
    request_body,
    request_headers,
    response_body,
    run,
    set_headers,
)
from translator.admission import estimate_hold
from translator.endpoints import Kind
from translator.extproc.router import RouterProcessor
from translator.extproc.upstream import Ctx

OPENAI_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26},
}
ANTHROPIC_ANSWER = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "Hello there."}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 14, "output_tokens": 12},
}
# What an SDK sends besides its key; none of it may reach a provider.
SDK_EXTRAS = {"cookie": "session=abc", "x-forwarded-for": "203.0.113.7", "x-stainless-lang": "python"}


def nano(price_usd_per_mtok: float, tokens: int) -> int:
    return round(price_usd_per_mtok * 1000 * tokens)


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Say hello."}], "max_tokens": 64, **extra}


def test_same_protocol_direct_route_sets_route_and_credential_and_passes_the_answer_through(redis_url: str) -> None:
    """OpenAI caller, OpenAI model: route header, path, upstream key; the answer untouched; one event."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        proc = RouterProcessor(tg.gw)
        # Azure-style api-key too: a second client credential, never passed on
        headers = await proc.on_request_headers(request_headers(CHAT, {**bearer(key), "api-key": key, **SDK_EXTRAS}))
        assert headers == pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=pb.CommonResponse()))

        raw = orjson.dumps(chat("gpt-test"))
        routed = await proc.on_request_body(request_body(raw))
        assert routed.WhichOneof("response") == "request_body"
        assert set_headers(routed) == {
            "x-tokengate-model": "gpt-test#openai",
            ":path": "/v1/chat/completions",
            "authorization": "Bearer " + UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"],  # the client's key replaced
        }
        assert removed_headers(routed) == {"api-key", *SDK_EXTRAS}
        assert routed.request_body.response.clear_route_cache
        assert new_body(routed) is None  # same protocol, same model name: the body goes as it came
        hold = estimate_hold(tg.gw.prices["gpt-test"], len(raw), 64)
        assert (proc.hold, tg.gw.admitter.leases["acme"].inflight) == (hold, hold)

        chunks = [response_body(OPENAI_ANSWER, status=200, deployment="oai"), response_body(b"", end=True)]
        replies = [proc.on_response_body(c) for c in chunks]
        continue_ = pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse()))
        assert [r.response_body for r in replies] == [continue_.response_body] * 2
        # the last reply carries the request's facts to Envoy's access log (never the key)
        logged = MessageToDict(replies[1].dynamic_metadata)["tokengate"]
        assert {k: logged[k] for k in ("account", "model", "deployment", "attempts", "stream")} == {
            "account": "acme", "model": "gpt-test", "deployment": "oai", "attempts": 1, "stream": False}
        assert proc.key is not None and logged["key_id"] == proc.key.key_id and logged["ttft_ms"] >= 0
        assert (logged["input_tokens"], logged["output_tokens"]) == (14, 12)
        price = PRICES["gpt-test"]
        assert logged["cost_usd"] == (nano(price["input"], 14) + nano(price["output"], 12)) / 1e9
        assert len(tg.meter.events) == 1  # recorded with the last reply, before the caller has it all

        proc.close()
        proc.meter(cut_short=True)  # a second call (the servicer's finally after an error) adds nothing
        tg.gw.run_later()
        [event] = tg.meter.events
        price = PRICES["gpt-test"]
        assert {k: event[k] for k in ("account", "model", "deployment", "attempts", "protocol",
                                      "upstream_protocol", "status", "stream", "complete", "cut_short",
                                      "finish", "usage", "usage_estimated", "hold_nano", "cost_nano")} == {
            "account": "acme", "model": "gpt-test", "deployment": "oai", "attempts": 1, "protocol": "openai",
            "upstream_protocol": "openai", "status": 200, "stream": False, "complete": True, "cut_short": False,
            "finish": "stop", "usage": {"input": 14, "output": 12}, "usage_estimated": False, "hold_nano": hold,
            "cost_nano": nano(price["input"], 14) + nano(price["output"], 12),
        }
        assert event["request_id"].startswith("req-") and event["lease"] == tg.gw.admitter.leases["acme"].id

    run(redis_url, scenario)


def test_the_routing_reply_of_an_unchanged_body_is_built_once_per_header_set(redis_url: str) -> None:
    """Requests of one route with the same headers share one reply to their body (building it is most of
    its cost); other headers get their own; a whole request leaves the shared reply as it was."""
    async def scenario(tg: InProcess) -> pb.ProcessingResponse:
        key = await tg.key("acme")

        async def routed(extra: dict[str, str]) -> tuple[RouterProcessor, pb.ProcessingResponse]:
            proc = RouterProcessor(tg.gw)
            await proc.on_request_headers(request_headers(CHAT, {**bearer(key), **extra}))
            return proc, await proc.on_request_body(request_body(chat("gpt-test")))

        proc, first = await routed({})
        before = first.SerializeToString()
        for c in (response_body(OPENAI_ANSWER, status=200, deployment="oai"), response_body(b"", end=True)):
            proc.on_response_body(c)
        proc.meter()
        assert (await routed({}))[1] is first and first.SerializeToString() == before
        other = (await routed(SDK_EXTRAS))[1]
        assert other is not first and removed_headers(other) == set(SDK_EXTRAS)
        return first

    first = run(redis_url, scenario)
    assert set_headers(first)[":path"] == "/v1/chat/completions" and not removed_headers(first)


def test_only_headers_named_x_tokengate_are_reserved(redis_url: str) -> None:
    """A header whose name merely contains ``x-tokengate-`` is the caller's own (and not passed on)."""
    async def scenario(tg: InProcess) -> pb.ProcessingResponse:
        key = await tg.key("acme")
        proc = RouterProcessor(tg.gw)
        extra = {"my-x-tokengate-trace": "1", "zx-tokengate-": "2"}
        await proc.on_request_headers(request_headers(CHAT, {**bearer(key), **extra}))
        return await proc.on_request_body(request_body(chat("gpt-test")))

    routed = run(redis_url, scenario)
    assert routed.WhichOneof("response") == "request_body"
    assert {"my-x-tokengate-trace", "zx-tokengate-"} <= removed_headers(routed)


def test_openai_caller_of_an_anthropic_model_gets_both_bodies_translated(redis_url: str) -> None:
    """The request goes out as Anthropic Messages, the Anthropic answer comes back as a chat.completion."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        chunks = [response_body(ANTHROPIC_ANSWER, status=200, deployment="ant"), response_body(b"", end=True)]
        ex = await tg.process([request_headers(CHAT, {**bearer(key), **SDK_EXTRAS}),
                               request_body(chat("claude-test")), *chunks])
        _, routed, *replies = ex.responses

        sent = new_body(routed)
        assert sent is not None
        assert orjson.loads(sent) == {
            "model": "claude-test", "max_tokens": 64,
            "system": [{"type": "text", "text": "Be brief."}],  # OpenAI's system message, Anthropic's field
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        }
        assert set_headers(routed) == {
            "x-tokengate-model": "claude-test#openai",
            ":path": "/v1/messages",
            "x-api-key": UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"],
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "content-length": str(len(sent)),
        }
        assert removed_headers(routed) == {"authorization", *SDK_EXTRAS}  # the caller's key never goes on

        answer = orjson.loads(delivered(chunks, replies))
        assert answer["object"] == "chat.completion" and answer["model"] == "claude-test"
        assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello there.",
                                                              "refusal": None},
                                      "logprobs": None, "finish_reason": "stop"}]
        assert answer["usage"] == {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26}

        [event] = ex.events
        price = PRICES["claude-test"]
        assert (event["protocol"], event["upstream_protocol"], event["status"], event["complete"],
                event["usage"], event["cost_nano"]) == (
            "openai", "anthropic", 200, True, {"input": 14, "output": 12},
            nano(price["input"], 14) + nano(price["output"], 12))

    run(redis_url, scenario)


def test_a_model_of_several_providers_takes_the_per_attempt_route_with_the_callers_context(
        redis_url: str) -> None:
    """No path or credential at the router: the routing header, x-tokengate-ctx, every client credential removed."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        ex = await tg.process([request_headers(CHAT, {**bearer(key), **SDK_EXTRAS}),
                               request_body(chat("failover-test", stream=True,
                                                 stream_options={"include_usage": True}))], then="end")
        _, routed = ex.responses
        headers = set_headers(routed)
        assert headers == {"x-tokengate-model": "failover-test", "x-tokengate-ctx": headers["x-tokengate-ctx"]}
        assert Ctx.decode(headers["x-tokengate-ctx"]) == Ctx(Protocol.OPENAI, Kind.CHAT, True, True, "failover-test")
        assert removed_headers(routed) == {"authorization", "x-api-key", "x-goog-api-key", "api-key"}
        assert routed.request_body.response.clear_route_cache
        assert new_body(routed) is None  # the upstream filter translates per attempt

    run(redis_url, scenario)


def test_an_openai_stream_asks_for_usage_and_the_caller_does_not_see_the_usage_chunk(redis_url: str) -> None:
    """stream_options.include_usage is added upstream; the usage-only chunk is removed on the way back."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        text = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        stop = (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
                b'"finish_reason":"stop"}]}\n\n')
        usage = b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
        chunks = [response_body(text, status=200, deployment="oai"), response_body(stop + usage),
                  response_body(b"data: [DONE]\n\n"), response_body(b"", end=True)]
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(chat("gpt-test", stream=True)),
                               *chunks])
        _, routed, *replies = ex.responses
        sent = new_body(routed)
        assert sent is not None and orjson.loads(sent)["stream_options"] == {"include_usage": True}
        assert set_headers(routed)["content-length"] == str(len(sent))
        assert delivered(chunks, replies) == text + stop + b"data: [DONE]\n\n"
        [event] = ex.events
        assert (event["stream"], event["complete"], event["cut_short"], event["usage"]) == (
            True, True, False, {"input": 5, "output": 2})
        # [DONE]'s reply carries the access log's facts already (a client that has it all may hang up
        # before the end of the stream reaches Envoy); the end's reply carries them again.
        assert [bool(r.HasField("dynamic_metadata")) for r in replies] == [False, False, True, True]
        for r in replies[2:]:
            logged = MessageToDict(r.dynamic_metadata)["tokengate"]
            assert (logged["input_tokens"], logged["output_tokens"], logged["stream"]) == (5, 2, True)

    run(redis_url, scenario)


def test_a_streams_usage_option_goes_onto_the_callers_own_bytes_or_into_its_own_options(redis_url: str) -> None:
    """A stream whose body has no stream_options goes upstream as the caller's own bytes with the option added last
    (its spacing, escapes and number spelling kept: nothing serialized again); one whose stream_options lacks
    include_usage gets it merged in, the caller's other options kept."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        answer = [response_body(b"data: [DONE]\n\n", status=200, deployment="oai"), response_body(b"", end=True)]
        raw = (b'{ "model" : "gpt-test", "messages": [{"role": "user", "content": "Say h\\u00e9llo."}],\n'
               b' "stream": true, "temperature": 1.50 }\n')
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(raw), *answer])
        sent = new_body(ex.responses[1])
        assert sent == raw[:raw.rindex(b"}")] + b',"stream_options":{"include_usage":true}}\n'
        assert set_headers(ex.responses[1])["content-length"] == str(len(sent))

        own = chat("gpt-test", stream=True, stream_options={"include_obfuscation": False, "include_usage": False})
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(own), *answer])
        sent = new_body(ex.responses[1])
        assert sent is not None and orjson.loads(sent) == {
            **own, "stream_options": {"include_obfuscation": False, "include_usage": True}}

    run(redis_url, scenario)


def test_a_renamed_model_goes_on_in_the_callers_own_bytes(redis_url: str) -> None:
    """An alias on a direct route (and a deployment's own name for the model): when "model" is the body's first
    key, as coding agents write it, the caller's bytes go on with only its value replaced (a stream's usage option
    spliced on too); elsewhere in the body, the body is serialized with the model renamed."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        answer = [response_body(OPENAI_ANSWER, status=200, deployment="oai"), response_body(b"", end=True)]
        raw = (b' {\n "model" :\t"gpt-alias", "messages": [{"role": "user", "content": "Say h\\u00e9llo.",'
               b' "model": "gpt-alias"}], "temperature": 1.50 }\n')
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(raw), *answer])
        sent = new_body(ex.responses[1])
        assert sent == raw.replace(b'"gpt-alias", "messages"', b'"gpt-test", "messages"')
        assert set_headers(ex.responses[1])["content-length"] == str(len(sent))

        streamed = raw.replace(b'"temperature"', b'"stream": true, "temperature"')
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(streamed),
                               response_body(b"data: [DONE]\n\n", status=200, deployment="oai"),
                               response_body(b"", end=True)])
        renamed = streamed.replace(b'"gpt-alias", "messages"', b'"gpt-test", "messages"')
        assert new_body(ex.responses[1]) == renamed[:renamed.rindex(b"}")] + b',"stream_options":{"include_usage":true}}\n'

        later = {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-latest"}  # openai-python's order
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(later),
                               response_body(OPENAI_ANSWER, status=200, deployment="oai-renamed"),
                               response_body(b"", end=True)])
        assert orjson.loads(new_body(ex.responses[1]) or b"null") == {**later, "model": "gpt-test-2025-01-01"}

    run(redis_url, scenario)
