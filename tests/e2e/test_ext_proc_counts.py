"""How many ext_proc messages and gRPC streams each kind of request costs (Envoy's admin counters).

Counts, not timings: every message is a gRPC round trip and every stream costs Envoy
and Python more than the message itself (docs/performance.md), so a change that adds
one back fails here. docs/architecture.md explains each count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from fakes import Reply
from tests.harness import GatewayUnderTest


@dataclass(frozen=True)
class Cost:
    router_streams: int
    router_msgs: int
    upstream_streams: int
    upstream_msgs: int
    rejected_mutations: int = 0  # header changes Envoy refused (an x-envoy-* or a system header): none wanted


def _counters(gw: GatewayUnderTest) -> dict[str, int]:
    text = httpx.get(f"{gw.admin}/stats?filter=ext_proc").text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        for scope in ("router", "upstream"):
            for stat in ("streams_started", "stream_msgs_sent", "rejected_header_mutations"):
                if name.endswith(f"ext_proc.{scope}.{stat}"):
                    out[f"{scope}.{stat}"] = out.get(f"{scope}.{stat}", 0) + int(value)
    return out


def ext_proc_cost(gw: GatewayUnderTest, call: Callable[[], httpx.Response]) -> tuple[int, Cost]:
    before = _counters(gw)
    status = call().status_code
    after = _counters(gw)

    def d(k: str) -> int:
        return after.get(k, 0) - before.get(k, 0)

    return status, Cost(d("router.streams_started"), d("router.stream_msgs_sent"),
                        d("upstream.streams_started"), d("upstream.stream_msgs_sent"),
                        d("router.rejected_header_mutations") + d("upstream.rejected_header_mutations"))


def _post(gw: GatewayUnderTest, path: str, body: dict[str, object], **headers: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.post(gw.http + path, json=body, headers=headers, timeout=10)


CHAT = [{"role": "user", "content": "hi"}]
# request headers + request body on the router stream; the response body in two messages:
# the data, then the empty end of stream the HTTP/1.1 codec hands on separately.
WHOLE = 4


@pytest.mark.parametrize(("kind", "request_", "status", "cost"), [
    ("same protocol (direct route)", lambda gw: _post(
        gw, "/v1/chat/completions", {"model": "gpt-test", "messages": CHAT}, authorization=f"Bearer {gw.key}"),
     200, Cost(1, WHOLE, 0, 0)),
    ("same protocol, upstream model renamed (direct route)", lambda gw: _post(
        gw, "/v1/chat/completions", {"model": "gpt-latest", "messages": CHAT}, authorization=f"Bearer {gw.key}"),
     200, Cost(1, WHOLE, 0, 0)),
    ("same protocol, Gemini (direct route)", lambda gw: _post(
        gw, "/v1beta/models/gemini-test:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]},
        **{"x-goog-api-key": gw.key}),
     200, Cost(1, WHOLE, 0, 0)),
    ("token count, same protocol (direct route)", lambda gw: _post(
        gw, "/v1/messages/count_tokens", {"model": "claude-test", "messages": CHAT},
        **{"x-api-key": gw.key, "anthropic-version": "2023-06-01"}),
     200, Cost(1, WHOLE, 0, 0)),
    # the router translates the request itself; the response is translated as it passes
    ("cross protocol (direct route)", lambda gw: _post(
        gw, "/v1/chat/completions", {"model": "claude-test", "messages": CHAT}, authorization=f"Bearer {gw.key}"),
     200, Cost(1, WHOLE, 0, 0)),
    ("embeddings, same protocol (direct route)", lambda gw: _post(
        gw, "/v1/embeddings", {"model": "embed-oai-test", "input": ["hi", "there"]}, authorization=f"Bearer {gw.key}"),
     200, Cost(1, WHOLE, 0, 0)),
    ("embeddings, other protocol (direct route)", lambda gw: _post(
        gw, "/v1beta/models/embed-oai-test:batchEmbedContents",
        {"requests": [{"model": "models/embed-oai-test", "content": {"parts": [{"text": "hi"}]}}]},
        **{"x-goog-api-key": gw.key}),
     200, Cost(1, WHOLE, 0, 0)),
    ("listing (answered at the request headers)", lambda gw: lambda: httpx.get(
        gw.http + "/v1/models", headers={"authorization": f"Bearer {gw.key}"}),
     200, Cost(1, 1, 0, 0)),
    ("no key (refused at the request headers)", lambda gw: _post(
        gw, "/v1/chat/completions", {"model": "gpt-test", "messages": CHAT}),
     401, Cost(1, 1, 0, 0)),
    ("unknown path (Envoy's own 404)", lambda gw: _post(gw, "/v2/nothing", {}),
     404, Cost(0, 0, 0, 0)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_messages_and_streams_per_kind_of_request(
    gateway: GatewayUnderTest, kind: str, request_: Callable[[GatewayUnderTest], Callable[[], httpx.Response]],
    status: int, cost: Cost,
) -> None:
    """Each kind of request opens the streams and sends the messages docs/architecture.md lists, no more."""
    gateway.fake.push(Reply(text="hello"))
    assert (status, cost) == ext_proc_cost(gateway, request_(gateway))


def test_a_same_protocol_stream_opens_one_stream_and_no_upstream_filter(gateway: GatewayUnderTest) -> None:
    """A streamed same-protocol answer: one router stream, no per-attempt stream (chunk messages vary with TCP)."""
    gateway.fake.push(Reply(text="one two three"))
    status, cost = ext_proc_cost(gateway, _post(
        gateway, "/v1/chat/completions", {"model": "gpt-test", "messages": CHAT, "stream": True},
        authorization=f"Bearer {gateway.key}"))
    assert (200, 1, 0, 0, 0) == (status, cost.router_streams, cost.upstream_streams, cost.upstream_msgs,
                                 cost.rejected_mutations)
