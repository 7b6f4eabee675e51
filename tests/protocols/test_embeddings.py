"""Embeddings between OpenAI's /v1/embeddings and Gemini's :embedContent / :batchEmbedContents, both ways."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson
import pytest

from core.config import parse
from core.protocols import Protocol
from core.usage import Usage
from translator import embeddings as handlers
from translator import listing
from translator.errors import BadRequest, UpstreamError
from translator.protocols import REGISTRY, anthropic, gemini, openai
from translator.protocols.base import Json, Kind
from translator.protocols.embeddings import (
    EmbedInput,
    EmbedMeta,
    EmbedRequest,
    EmbedResponse,
    meta,
    translate_request,
)

OAI, GEM = openai.CODEC, gemini.CODEC


def _f32(values: list[float]) -> str:
    a = array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode()


def _floats(b64: str) -> list[float]:
    a = array("f", base64.b64decode(b64))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tolist()


# --- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "inputs"), [
    ({"input": "hello"}, (EmbedInput(text="hello"),)),
    ({"input": ["a", "b c"]}, (EmbedInput(text="a"), EmbedInput(text="b c"))),
    ({"input": [1, 2, 3]}, (EmbedInput(tokens=(1, 2, 3)),)),
    ({"input": [[1, 2], [3]]}, (EmbedInput(tokens=(1, 2)), EmbedInput(tokens=(3,)))),
    ({"input": "x", "dimensions": 8}, (EmbedInput(text="x", dimensions=8),)),
], ids=["string", "strings", "token-ids", "token-id-arrays", "dimensions"])
def test_openai_inputs_decode_to_one_input_each(body: Json, inputs: tuple[EmbedInput, ...]) -> None:
    """Every form of OpenAI's input is a list of inputs; dimensions applies to each."""
    assert inputs == OAI.embedder.decode_request({"model": "m", **body}, Kind.EMBED_BATCH).inputs  # type: ignore[union-attr]


@pytest.mark.parametrize("body", [
    {"input": ""}, {"input": []}, {"input": [""]}, {"input": [[]]}, {"input": [1, "a"]}, {"input": {"a": 1}}, {},
    {"input": "x", "dimensions": 0}, {"input": "x", "dimensions": "8"}, {"input": "x", "encoding_format": "int8"},
], ids=["empty", "empty-list", "empty-string", "empty-tokens", "mixed", "object", "missing", "zero-dimensions",
        "string-dimensions", "unknown-format"])
def test_openai_requests_that_are_not_requests_are_400(body: Json) -> None:
    """A malformed embeddings request is the caller's 400, never an upstream's."""
    with pytest.raises(BadRequest):
        meta(OAI, Kind.EMBED_BATCH, {"model": "m", **body}, "m")


def test_an_openai_request_reaches_a_gemini_upstream_as_a_batch_naming_the_model() -> None:
    """One request per input, each naming the upstream's model; dimensions -> outputDimensionality; user dropped."""
    body = {"model": "embed", "input": ["one", "two"], "dimensions": 4, "user": "u-1", "encoding_format": "base64"}
    assert {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "one"}]}, "outputDimensionality": 4},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "two"}]}, "outputDimensionality": 4},
    ]} == translate_request(OAI, GEM, body, Kind.EMBED_BATCH, upstream_model="gemini-embedding-001")


@pytest.mark.parametrize(("body", "message"), [
    ({"input": [1, 2, 3]}, "Token-id inputs cannot be embedded"),
    ({"input": ["x"] * 101}, "at most 100 inputs"),
], ids=["token-ids", "over-100"])
def test_what_gemini_cannot_embed_is_refused_before_the_upstream(body: Json, message: str) -> None:
    """Token ids have no Gemini form, and Gemini takes at most 100 inputs: a 400 naming the reason."""
    with pytest.raises(BadRequest, match=message):
        translate_request(OAI, GEM, {"model": "m", **body}, Kind.EMBED_BATCH, upstream_model="g")


@pytest.mark.parametrize(("kind", "body"), [
    (Kind.EMBED, {"content": {"parts": [{"text": "hi"}, {"text": "there"}]}, "taskType": "RETRIEVAL_DOCUMENT",
                  "title": "Doc", "outputDimensionality": 16}),
    (Kind.EMBED, {"content": {"parts": [{"text": "hi\nthere"}]}, "task_type": "RETRIEVAL_DOCUMENT",
                  "output_dimensionality": 16}),
    (Kind.EMBED, {"content": {"parts": [{"text": "hi\nthere"}]}, "embedContentConfig": {"outputDimensionality": 16}}),
    (Kind.EMBED_BATCH, {"requests": [{"model": "models/g", "content": {"parts": [{"text": "hi\nthere"}]},
                                      "outputDimensionality": 16, "taskType": "SEMANTIC_SIMILARITY"}]}),
], ids=["camel", "snake", "nested-config", "batch"])
def test_a_gemini_request_reaches_an_openai_upstream_as_text_with_dimensions(kind: Kind, body: Json) -> None:
    """Text parts are joined; outputDimensionality is dimensions; taskType and title are dropped; floats asked."""
    assert {"model": "text-embedding-3-small", "input": ["hi\nthere"], "encoding_format": "float",
            "dimensions": 16} == translate_request(GEM, OAI, body, kind, upstream_model="text-embedding-3-small")


@pytest.mark.parametrize(("body", "message"), [
    ({"requests": [{"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
                   {"content": {"parts": [{"text": "b"}]}, "outputDimensionality": 16}]}, "same output dimensionality"),
    ({"requests": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}]},
     "Only text"),
    ({"requests": []}, "at least one request"),
    ({"requests": [{"content": {"parts": []}}]}, "at least one part"),
    ({"requests": [{"taskType": "CLUSTERING"}]}, "content to embed is required"),
    ({"requests": [{"content": {"parts": [{"text": "a"}]}, "outputDimensionality": -1}]}, "positive integer"),
], ids=["dimensions-differ", "image", "no-requests", "no-parts", "no-content", "negative-dimensions"])
def test_what_openai_cannot_take_from_a_gemini_caller_is_400(body: Json, message: str) -> None:
    """What one OpenAI request cannot say is refused with the reason, before the upstream is asked."""
    with pytest.raises(BadRequest, match=message):
        translate_request(GEM, OAI, body, Kind.EMBED_BATCH, upstream_model="m")


def test_a_same_protocol_request_is_only_renamed() -> None:
    """Same protocol: the body as sent, with the upstream's model wherever the body names one."""
    batch = {"requests": [{"model": "models/alias", "content": {"parts": [{"text": "a"}]}, "taskType": "X"}]}
    assert {"requests": [{"model": "models/real", "content": {"parts": [{"text": "a"}]}, "taskType": "X"}]} \
        == translate_request(GEM, GEM, batch, Kind.EMBED_BATCH, upstream_model="real")
    assert {"model": "real", "input": "a"} == translate_request(
        OAI, OAI, {"model": "alias", "input": "a"}, Kind.EMBED_BATCH, upstream_model="real")


def test_the_prompt_estimate_counts_text_titles_and_token_ids() -> None:
    """4 characters a token (at least one an input), a title with its text; token ids one each."""
    req = EmbedRequest((EmbedInput(text="x" * 40), EmbedInput(text="ab", title="t" * 10), EmbedInput(tokens=(1, 2, 3))))
    assert 10 + 3 + 3 == req.estimate()


# --- answers ----------------------------------------------------------------------------

V1, V2 = [0.5, -0.25, 0.125], [1.0, 0.0, -1.0]


def _translate(up: Any, down: Any, body: Json, m: EmbedMeta) -> tuple[Json, Usage]:
    h = handlers.handler(down, up, 200, m)
    assert b"" == h.feed(orjson.dumps(body))
    out = h.flush()
    assert out is not None
    return orjson.loads(out), h.usage


@pytest.mark.parametrize("b64", [False, True], ids=["float", "base64"])
def test_a_gemini_answer_reaches_an_openai_caller_with_the_estimate_as_usage(b64: bool) -> None:
    """Vectors in the caller's encoding_format; Gemini reports no usage: the estimate is shown, the handler's
    usage stays unset (the router bills the same estimate and flags it)."""
    m = EmbedMeta("embed", Kind.EMBED_BATCH, 2, prompt_estimate=7, base64=b64)
    doc, usage = _translate(GEM, OAI, {"embeddings": [{"values": V1}, {"values": V2}]}, m)
    got = [_floats(d["embedding"]) if b64 else d["embedding"] for d in doc["data"]]
    assert ([V1, V2], [0, 1], "embed", {"prompt_tokens": 7, "total_tokens": 7}, Usage()) == (
        got, [d["index"] for d in doc["data"]], doc["model"], doc["usage"], usage)
    assert ("list", ["embedding", "embedding"]) == (doc["object"], [d["object"] for d in doc["data"]])


@pytest.mark.parametrize(("kind", "expected"), [
    (Kind.EMBED, {"embedding": {"values": V1}}),
    (Kind.EMBED_BATCH, {"embeddings": [{"values": V1}]}),
], ids=["embedContent", "batchEmbedContents"])
@pytest.mark.parametrize("upstream_b64", [False, True], ids=["floats", "base64"])
def test_an_openai_answer_reaches_a_gemini_caller_in_its_methods_shape(
        kind: Kind, expected: Json, upstream_b64: bool) -> None:
    """embedContent gets one embedding, batchEmbedContents a list; the upstream's usage is metered."""
    body = {"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5},
            "data": [{"object": "embedding", "index": 0, "embedding": _f32(V1) if upstream_b64 else V1}]}
    assert (expected, Usage(input=5)) == _translate(OAI, GEM, body, EmbedMeta("g", kind, 1, 3))


def test_openai_data_is_read_in_index_order() -> None:
    """An answer's data items are matched to inputs by their index, not their place."""
    body = {"data": [{"index": 1, "embedding": V2}, {"index": 0, "embedding": V1}], "usage": {"prompt_tokens": 2}}
    assert [V1, V2] == OAI.embedder.decode_response(body).vectors  # type: ignore[union-attr]


def test_an_answer_with_another_number_of_vectors_is_the_upstreams_502() -> None:
    """Fewer (or more) vectors than inputs cannot be matched to them: an upstream error."""
    h = handlers.handler(OAI, GEM, 200, EmbedMeta("m", Kind.EMBED_BATCH, 2, 2))
    h.feed(b'{"embeddings": [{"values": [1.0]}]}')
    with pytest.raises(UpstreamError, match="1 embeddings for 2 inputs"):
        h.flush()


@pytest.mark.parametrize(("codec", "body", "usage"), [
    (OAI, {"object": "list", "data": [{"index": 0, "embedding": [0.1] * 2000}], "model": "m",
           "usage": {"prompt_tokens": 9, "total_tokens": 9}}, Usage(input=9)),
    (GEM, {"embeddings": [{"values": [0.1] * 2000}]}, Usage()),
    (GEM, {"embeddings": [{"values": [0.1]}], "usageMetadata": {
        "promptTokenCount": 4, "totalTokenCount": 4, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]}},
     Usage(input=4)),
], ids=["openai", "gemini-none", "gemini-usage-metadata"])
def test_a_same_protocol_answer_passes_untouched_and_its_usage_is_read_from_the_tail(
        codec: Any, body: Json, usage: Usage) -> None:
    """Nothing is rewritten (feed answers None); usage comes from the body's last bytes, however long the vectors."""
    raw = orjson.dumps(body)
    h = handlers.handler(codec, codec, 200, EmbedMeta("m", Kind.EMBED_BATCH, 1, 1))
    outs = [h.feed(raw[i:i + 1000]) for i in range(0, len(raw), 1000)]
    assert ({None}, None, usage, True) == (set(outs), h.flush(), usage, h.complete)
    assert usage == h.usage


def test_an_upstream_error_reaches_the_caller_in_its_shape() -> None:
    """A Gemini 400 for an OpenAI caller is OpenAI's error body."""
    h = handlers.handler(OAI, GEM, 400, EmbedMeta("m", Kind.EMBED_BATCH, 1, 1))
    h.feed(b'{"error": {"code": 400, "message": "bad text", "status": "INVALID_ARGUMENT"}}')
    out = h.flush()
    assert out is not None
    assert ("bad text", "invalid_request_error") == (orjson.loads(out)["error"]["message"],
                                                     orjson.loads(out)["error"]["type"])


# --- models and listing -----------------------------------------------------------------

CONFIG = {
    "providers": [{"name": "o", "protocol": "openai", "base_url": "https://o.example/v1"},
                  {"name": "g", "protocol": "gemini", "base_url": "https://g.example"}],
    "deployments": [{"name": "chat", "provider": "o", "model": "gpt-4o-mini"},
                    {"name": "emb", "provider": "g", "model": "gemini-embedding-001"}],
    "models": [{"name": "gpt-4o-mini", "deployments": ["chat"]},
               {"name": "gemini-embedding-001", "kind": "embedding", "deployments": ["emb"]}],
}


def test_embedding_models_are_listed_where_the_protocol_has_embeddings() -> None:
    """Gemini lists an embedding model with its embedding methods; OpenAI lists it; Anthropic neither lists
    nor finds it."""
    cfg = parse(CONFIG, "test")
    models, owners = cfg.model_table(), {"gpt-4o-mini": "o", "gemini-embedding-001": "g"}
    gem = listing.list_models(GEM, models, owners, frozenset())["models"]
    assert [["generateContent", "streamGenerateContent", "countTokens"], ["embedContent", "batchEmbedContents"]] \
        == [m["supportedGenerationMethods"] for m in gem]
    assert ["gpt-4o-mini", "gemini-embedding-001"] == [
        m["id"] for m in listing.list_models(OAI, models, owners, frozenset())["data"]]
    assert ["gpt-4o-mini"] == [m["id"] for m in listing.list_models(anthropic.CODEC, models, owners,
                                                                     frozenset())["data"]]
    with pytest.raises(Exception, match="does not exist"):
        listing.get_model(anthropic.CODEC, "gemini-embedding-001", models, owners, frozenset())


@pytest.mark.parametrize(("kind", "model", "message"), [
    (Kind.EMBED_BATCH, "gpt-4o-mini", "'gpt-4o-mini' is not an embedding model"),
    (Kind.EMBED, "gpt-4o-mini", "'gpt-4o-mini' is not an embedding model"),
    (Kind.CHAT, "gemini-embedding-001", "'gemini-embedding-001' is an embedding model"),
    (Kind.COUNT_TOKENS, "gemini-embedding-001", "'gemini-embedding-001' is an embedding model"),
], ids=["embed-a-chat-model", "embed-one-chat-model", "chat-an-embedding-model", "count-an-embedding-model"])
def test_a_model_asked_for_what_it_does_not_do_is_400(kind: Kind, model: str, message: str) -> None:
    """Chat models do not embed and embedding models do not chat: a 400 naming the model, param model."""
    table = parse(CONFIG, "test").model_table()
    with pytest.raises(BadRequest, match=message) as exc:
        handlers.check_kind(kind, table[model], model)
    assert "model" == exc.value.param


def test_the_embedding_catalogue_price_is_input_only() -> None:
    """genai-prices prices embedding models by input alone: such a model loads and costs only its input."""
    price = parse(CONFIG, "test").prices()["gemini-embedding-001"]
    assert (150_000, 0) == (price.rates.input, price.rates.output)  # $0.15 per million input tokens
    assert 150_000 == price.cost_nano(Usage(input=1000))  # nano-USD: $0.00015


def test_core_knows_which_protocols_embed_as_the_registry_does() -> None:
    """core's list of protocols with embeddings (config validation) is the codecs' (``Codec.embedder``)."""
    assert {c.name for c in REGISTRY if c.embedder is not None} == {p.value for p in Protocol if p.embeds}


def test_embeddings_answers_round_trip_through_the_ir() -> None:
    """An EmbedResponse encoded for a caller decodes back to the same vectors, in both protocols."""
    resp = EmbedResponse([V1, V2], Usage(input=3))
    for codec in (OAI, GEM):
        e = codec.embedder
        assert e is not None
        doc = e.encode_response(resp, EmbedMeta("m", Kind.EMBED_BATCH, 2, 3))
        assert [V1, V2] == e.decode_response(doc).vectors
