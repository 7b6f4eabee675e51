"""Embeddings on the request path without Envoy: the per-attempt route, the hold and the metering event."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import orjson
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode

from core.config import parse
from core.pricing import from_usd_per_mtok
from core.usage import Usage
from tests.harness import PRICES, UPSTREAM_SECRETS, gateway_config
from tests.inprocess.harness import (
    InProcess,
    attempt_headers,
    bearer,
    in_process,
    mutated,
    new_body,
    request_body,
    request_headers,
    response_body,
    set_headers,
)
from translator.extproc.upstream import UpstreamAttempt
from translator.protocols.base import estimate_tokens

T = TypeVar("T")
EMBEDDINGS = "/v1/embeddings"
# OpenAI first, Gemini when it fails: a per-attempt route, each attempt translated for its deployment
FAILOVER = {"name": "embed-failover", "kind": "embedding", "price": PRICES["embed-oai-test"],
            "deployments": [{"deployment": "oai-embed"}, {"deployment": "gem-embed", "priority": 1}]}
TRANSLATE = ProcessingMode(request_body_mode=ProcessingMode.BUFFERED, response_header_mode=ProcessingMode.SEND,
                           response_body_mode=ProcessingMode.NONE)
BODY = {"model": "embed-failover", "input": ["hello world", "a longer sentence to embed"], "dimensions": 8}


def run(redis_url: str, scenario: Callable[[InProcess], Awaitable[T]]) -> T:
    doc = gateway_config(1, Path("/nonexistent"))
    doc["models"].append(FAILOVER)
    doc["billing"]["lease"] = {"idle_s": 3600, "key_cache_s": 3600}

    async def main() -> T:
        async with in_process(redis_url, parse(doc, "tests/inprocess")) as tg:
            return await scenario(tg)

    return asyncio.run(main())


def test_each_attempt_of_an_embedding_failover_gets_its_deployments_request(redis_url: str) -> None:
    """The router sends the caller's context; the OpenAI attempt renames the model, the Gemini one gets a batch."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        client = {":method": "POST", ":path": EMBEDDINGS, "content-type": "application/json", **bearer(key)}
        ex = await tg.process([request_headers(EMBEDDINGS, client), request_body(BODY)], then="end")
        headers = mutated(client, ex.responses[1])
        assert "embed-failover" == headers["x-tokengate-model"]

        first = UpstreamAttempt(tg.gw)
        reply = first.on_request_headers(attempt_headers("oai-embed", "openai", headers))
        assert ({":path": "/v1/embeddings", "authorization": f"Bearer {UPSTREAM_SECRETS['TG_TEST_OPENAI_KEY']}"},
                False) == (set_headers(reply), reply.HasField("mode_override"))  # the body is read: renamed
        assert {**BODY, "model": "embed-oai-test"} == orjson.loads(
            new_body(first.on_request_body(request_body(BODY))) or b"null")

        second = UpstreamAttempt(tg.gw)
        reply = second.on_request_headers(attempt_headers("gem-embed", "gemini", mutated(headers, reply)))
        assert ("/v1beta/models/embed-gem-test:batchEmbedContents", TRANSLATE) == (
            set_headers(reply)[":path"], reply.mode_override)
        sent = orjson.loads(new_body(second.on_request_body(request_body(BODY))) or b"null")
        assert [{"model": "models/embed-gem-test", "content": {"parts": [{"text": t}]}, "outputDimensionality": 8}
                for t in BODY["input"]] == sent["requests"]

    run(redis_url, scenario)


def test_a_gemini_answer_is_billed_the_estimate_of_the_inputs_and_says_so(redis_url: str) -> None:
    """No usage in Gemini's answer: the OpenAI caller's prompt_tokens, the event's input and its cost are the
    estimate of the inputs' text (not of the body's size), flagged usage_estimated; the hold had no output."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        body = {"model": "embed-gem-test", "input": BODY["input"]}
        answer = {"embeddings": [{"values": [0.5, 0.25]}, {"values": [-0.5, 1.0]}]}
        ex = await tg.process([request_headers(EMBEDDINGS, bearer(key)), request_body(body),
                               response_body(answer, status=200, deployment="gem-embed"),
                               response_body(b"", end=True)])
        tokens = sum(max(1, estimate_tokens(len(t))) for t in BODY["input"])
        doc = orjson.loads(b"".join(new_body(r) or b"" for r in ex.responses[2:]))
        assert ([[0.5, 0.25], [-0.5, 1.0]], {"prompt_tokens": tokens, "total_tokens": tokens}) == (
            [d["embedding"] for d in doc["data"]], doc["usage"])
        [event] = ex.events
        cost = from_usd_per_mtok(PRICES["embed-gem-test"]).cost_nano(Usage(input=tokens))
        assert ({"input": tokens}, True, cost, "openai", "gemini", True) == (
            event["usage"], event["usage_estimated"], event["cost_nano"], event["protocol"],
            event["upstream_protocol"], event["complete"])

    run(redis_url, scenario)
