"""The fake's embeddings endpoints, read by the official SDKs and checked field by field."""

from __future__ import annotations

import math
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from fakes import ErrorReply, FakeProvider, Reply, Usage
from fakes.embeddings import GEMINI_DIMENSIONS, OPENAI_DIMENSIONS, vector


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


@pytest.mark.parametrize("fmt", [None, "float"], ids=["sdk-default-base64", "float"])
def test_openai_sdk_reads_the_fakes_embeddings(openai_client: openai.OpenAI, fake: FakeProvider,
                                               fmt: str | None) -> None:
    """Unit vectors of the model's size (or dimensions, renormalised), usage as prompt words; the SDK's default
    base64 decodes to the same float32 values."""
    kw: dict[str, Any] = {"encoding_format": fmt} if fmt else {}
    full = openai_client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d"], **kw)
    cut = openai_client.embeddings.create(model="text-embedding-3-small", input="a b c", dimensions=8, **kw)
    assert ([OPENAI_DIMENSIONS, OPENAI_DIMENSIONS], [0, 1], (4, 4), "list", "embedding") == (
        [len(d.embedding) for d in full.data], [d.index for d in full.data],
        (full.usage.prompt_tokens, full.usage.total_tokens), full.object, full.data[0].object)
    assert ([vector("a b c", OPENAI_DIMENSIONS), vector("d", OPENAI_DIMENSIONS)], [vector("a b c", 8,
            full=OPENAI_DIMENSIONS)]) == ([d.embedding for d in full.data], [d.embedding for d in cut.data])
    assert pytest.approx(1.0, abs=1e-6) == _norm(cut.data[0].embedding)
    assert ("base64" if fmt is None else "float") == fake.requests[0].json()["encoding_format"]


def test_openai_token_ids_count_one_a_token_and_scripted_usage_wins(openai_client: openai.OpenAI,
                                                                    fake: FakeProvider) -> None:
    """Token-id inputs are embedded and counted one a token; a scripted Reply.usage.input is the prompt_tokens."""
    assert 5 == openai_client.embeddings.create(model="e", input=[[1, 2, 3], [4, 5]]).usage.prompt_tokens
    fake.push(Reply(usage=Usage(input=99)))
    assert 99 == openai_client.embeddings.create(model="e", input="x").usage.prompt_tokens


@pytest.mark.parametrize("contents", [["one"], ["one", "two words"]], ids=["one", "several"])
def test_genai_sdk_reads_the_fakes_batch_embeddings(gemini_client: genai.Client, fake: FakeProvider,
                                                    contents: list[str]) -> None:
    """embed_content calls batchEmbedContents; each vector is the text's, cut to outputDimensionality; no usage."""
    got = gemini_client.models.embed_content(model="gemini-embedding-001", contents=contents,
                                             config=types.EmbedContentConfig(output_dimensionality=12))
    assert got.embeddings is not None
    assert ([vector(t, 12, normalise=False, full=GEMINI_DIMENSIONS) for t in contents], None) == (
        [e.values for e in got.embeddings], got.usage_metadata)
    assert fake.requests[0].path.endswith("/models/gemini-embedding-001:batchEmbedContents")


def test_gemini_embed_content_answers_one_embedding(fake: FakeProvider) -> None:
    """:embedContent answers {"embedding": {"values": [...]}} of the model's full size."""
    r = httpx.post(f"{fake.base_url}/v1beta/models/gemini-embedding-001:embedContent",
                   json={"content": {"parts": [{"text": "hi"}]}})
    assert (200, ["embedding"], GEMINI_DIMENSIONS) == (r.status_code, list(r.json()),
                                                      len(r.json()["embedding"]["values"]))


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/v1/embeddings", {"model": "e", "input": ""}, "'$.input' is invalid"),
    ("/v1/embeddings", {"model": "e", "input": "x", "encoding_format": "int8"}, "'encoding_format'"),
    ("/v1beta/models/g:batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "x"}]}}] * 101},
     "at most 100"),
    ("/v1beta/models/g:batchEmbedContents",
     {"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}, "must be the one in the URL"),
    ("/v1beta/models/g:embedContent", {"content": {"parts": []}}, "contents is not specified"),
], ids=["openai-empty-input", "openai-format", "gemini-over-100", "gemini-other-model", "gemini-no-parts"])
def test_what_the_providers_refuse_is_a_400_in_their_shape(fake: FakeProvider, path: str, body: dict[str, Any],
                                                           message: str) -> None:
    """Malformed embeddings requests are refused with the provider's error shape."""
    r = httpx.post(fake.base_url + path, json=body)
    assert (400, True) == (r.status_code, message in r.json()["error"]["message"])


def test_scripted_errors_reach_both_sdks(openai_client: openai.OpenAI, gemini_client: genai.Client,
                                         fake: FakeProvider) -> None:
    """An ErrorReply is the endpoint's error in its protocol's shape."""
    fake.push(Reply(error=ErrorReply(429, "slow down")), Reply(error=ErrorReply(429, "slow down")))
    with pytest.raises(openai.RateLimitError, match="slow down"):
        openai_client.with_options(max_retries=0).embeddings.create(model="e", input="x")
    with pytest.raises(genai_errors.ClientError, match="RESOURCE_EXHAUSTED"):
        gemini_client.models.embed_content(model="g", contents="x")
