"""Embeddings end to end: both official SDKs against an OpenAI and a Gemini embedding model.

The ``openai`` SDK's ``embeddings.create`` (its default base64 vectors and explicit floats, one input and
several, ``dimensions``) and ``google-genai``'s ``models.embed_content`` (one content and several,
``output_dimensionality``, ``task_type``) reach ``embed-oai-test`` (an OpenAI-protocol provider) and
``embed-gem-test`` (Gemini); each test checks the vectors the SDK parsed against the fake's own
(``fakes.embeddings.vector``), what the upstream received, the metering event (usage, the estimate
flag for Gemini, whose answers carry no usage) and the charged balance.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from core.pricing import from_usd_per_mtok
from core.usage import Usage as Tokens
from fakes import ErrorReply, RecordedRequest, Reply, Usage
from fakes.embeddings import GEMINI_DIMENSIONS, OPENAI_DIMENSIONS, vector
from tests.harness import PRICES, UPSTREAM_SECRETS, GatewayUnderTest
from translator.protocols.base import estimate_tokens

MODEL = {"openai": "embed-oai-test", "gemini": "embed-gem-test"}
UPSTREAM_PATH = {"openai": "/v1/embeddings", "gemini": "/v1beta/models/embed-gem-test:batchEmbedContents"}
CREDENTIAL = {"openai": ("authorization", f"Bearer {UPSTREAM_SECRETS['TG_TEST_OPENAI_KEY']}"),
              "gemini": ("x-goog-api-key", UPSTREAM_SECRETS["TG_TEST_GEMINI_KEY"])}
TEXTS = ["The quick brown fox", "jumps over the lazy dog today", "ok"]


def _fake_vector(upstream: str, text: str, dims: int | None) -> list[float]:
    """The vector the fake upstream gives ``text`` (OpenAI renormalises a cut vector; Gemini cuts it)."""
    if upstream == "openai":
        return vector(text, dims or OPENAI_DIMENSIONS, full=OPENAI_DIMENSIONS)
    return vector(text, dims or GEMINI_DIMENSIONS, normalise=False, full=GEMINI_DIMENSIONS)


def _tokens(upstream: str, texts: list[str]) -> tuple[int, bool]:
    """What the request is metered: the fake OpenAI's count (words), or the gateway's estimate for Gemini,
    which reports none (4 characters a token, at least one an input) — and whether it is an estimate."""
    if upstream == "openai":
        return sum(max(1, len(t.split())) for t in texts), False
    return sum(max(1, estimate_tokens(len(t))) for t in texts), True


def _cost(model: str, tokens: int) -> int:
    return from_usd_per_mtok(PRICES[model]).cost_nano(Tokens(input=tokens))


def _account(gw: GatewayUnderTest) -> tuple[str, str]:
    account = f"emb{uuid.uuid4().hex[:8]}"
    return account, gw.new_key(account, fund_usd=10)


def _oai(gw: GatewayUnderTest, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key, max_retries=0)


def _gem(gw: GatewayUnderTest, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gw.http, retry_options=types.HttpRetryOptions(attempts=1)))


def _sent(gw: GatewayUnderTest) -> RecordedRequest:
    [sent] = gw.fake.requests
    return sent


def _check_metered(gw: GatewayUnderTest, since: str, account: str, client: str, upstream: str,
                   tokens: int, estimated: bool) -> None:
    """One event with the tokens, the estimate flag and the exact cost; the balance charged that cost."""
    [event] = gw.wait_metering(since)
    cost = _cost(MODEL[upstream], tokens)
    assert (200, True, client, upstream, {"input": tokens}, estimated, cost) == (
        event["status"], event["complete"], event["protocol"], event["upstream_protocol"], event["usage"],
        event["usage_estimated"], event["cost_nano"])
    start = 10 * 1_000_000_000
    assert (start - cost, 0) == gw.wait_balance(account, start - cost)


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
@pytest.mark.parametrize(("texts", "fmt", "dims"), [
    (TEXTS[:1], None, None),
    (TEXTS, None, 64),
    (TEXTS, "float", None),
    (TEXTS[:1], "float", 8),
], ids=["one-base64", "several-base64-dimensions", "several-float", "one-float-dimensions"])
def test_openai_sdk_embeddings(gateway: GatewayUnderTest, upstream: str, texts: list[str], fmt: str | None,
                               dims: int | None) -> None:
    """embeddings.create: the upstream's vectors in input order, in the encoding the SDK asked for (its own
    default is base64, which it decodes), metered and charged at the embedding model's input price."""
    account, key = _account(gateway)
    since = gateway.last_stream_id()
    kwargs: dict[str, Any] = {}
    if fmt is not None:
        kwargs["encoding_format"] = fmt
    if dims is not None:
        kwargs["dimensions"] = dims
    with _oai(gateway, key) as c:
        got = c.embeddings.create(model=MODEL[upstream], input=texts[0] if len(texts) == 1 else texts, **kwargs)
    tokens, estimated = _tokens(upstream, texts)
    assert (list(range(len(texts))), MODEL[upstream], (tokens, tokens)) == (
        [d.index for d in got.data], got.model, (got.usage.prompt_tokens, got.usage.total_tokens))
    assert [_fake_vector(upstream, t, dims) for t in texts] == [d.embedding for d in got.data]  # float32, exact
    sent = _sent(gateway)
    assert (UPSTREAM_PATH[upstream], CREDENTIAL[upstream][1]) == (sent.path, sent.headers[CREDENTIAL[upstream][0]])
    if upstream == "gemini":
        assert [{"model": "models/embed-gem-test", "content": {"parts": [{"text": t}]},
                 **({"outputDimensionality": dims} if dims else {})} for t in texts] == sent.json()["requests"]
    _check_metered(gateway, since, account, "openai", upstream, tokens, estimated)


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
@pytest.mark.parametrize(("texts", "dims"), [(TEXTS[:1], None), (TEXTS, 32)], ids=["one", "several-dimensions"])
def test_genai_sdk_embed_content(gateway: GatewayUnderTest, upstream: str, texts: list[str],
                                 dims: int | None) -> None:
    """models.embed_content (batchEmbedContents on the Gemini API): one embedding per content, in order;
    task_type reaches a Gemini upstream and is dropped towards OpenAI; metered and charged."""
    account, key = _account(gateway)
    since = gateway.last_stream_id()
    config = types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=dims)
    with _gem(gateway, key) as c:
        got = c.models.embed_content(model=MODEL[upstream], contents=texts if len(texts) > 1 else texts[0],
                                     config=config)
    assert got.embeddings is not None
    assert [_fake_vector(upstream, t, dims) for t in texts] == [e.values for e in got.embeddings]
    sent = _sent(gateway).json()
    if upstream == "openai":
        assert {"model": "embed-oai-test", "input": texts, "encoding_format": "float",
                **({"dimensions": dims} if dims else {})} == sent
    else:  # passed through untouched: the SDK's own request
        assert [("RETRIEVAL_QUERY", dims)] * len(texts) == [
            (r["taskType"], r.get("outputDimensionality")) for r in sent["requests"]]
    tokens, estimated = _tokens(upstream, texts)
    _check_metered(gateway, since, account, "gemini", upstream, tokens, estimated)


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_gemini_embed_content_gets_one_embedding(gateway: GatewayUnderTest, upstream: str) -> None:
    """:embedContent (what Vertex-style callers and the REST docs use) answers {"embedding": {"values"}}, its
    title going to a Gemini upstream untouched."""
    account, key = _account(gateway)
    since = gateway.last_stream_id()
    body = {"content": {"parts": [{"text": TEXTS[1]}]}, "taskType": "RETRIEVAL_DOCUMENT", "title": "Fox",
            "outputDimensionality": 16}
    r = httpx.post(f"{gateway.http}/v1beta/models/{MODEL[upstream]}:embedContent", json=body,
                   headers={"x-goog-api-key": key}, timeout=10)
    assert (200, {"embedding"}) == (r.status_code, set(r.json()))
    assert _fake_vector(upstream, TEXTS[1], 16) == r.json()["embedding"]["values"]
    sent = _sent(gateway)
    if upstream == "gemini":
        assert ("/v1beta/models/embed-gem-test:embedContent", body) == (sent.path, sent.json())
        tokens, estimated = max(1, estimate_tokens(len(TEXTS[1]) + len("Fox"))), True
    else:
        tokens, estimated = _tokens(upstream, [TEXTS[1]])
    _check_metered(gateway, since, account, "gemini", upstream, tokens, estimated)


def test_a_renamed_gemini_model_names_the_upstream_model_in_each_batch_request(gateway: GatewayUnderTest) -> None:
    """embed-gem-renamed is served by embed-gem-test: every request of the batch names that model, as the URL
    does (Gemini refuses a batch whose requests name another)."""
    with _gem(gateway, gateway.key) as c:
        got = c.models.embed_content(model="embed-gem-renamed", contents=["a b", "c"])
    sent = _sent(gateway)
    assert (2, "/v1beta/models/embed-gem-test:batchEmbedContents", ["models/embed-gem-test"] * 2) == (
        len(got.embeddings or []), sent.path, [r["model"] for r in sent.json()["requests"]])


def test_token_ids_reach_an_openai_model_and_are_refused_for_a_gemini_one(gateway: GatewayUnderTest) -> None:
    """Token-id inputs pass to an OpenAI upstream; Gemini embeds text only: a 400 before any upstream call."""
    with _oai(gateway, gateway.key) as c:
        got = c.embeddings.create(model="embed-oai-test", input=[[1, 2, 3], [4, 5]])
        assert (2, 5) == (len(got.data), got.usage.prompt_tokens)
        gateway.fake.reset()
        with pytest.raises(openai.BadRequestError, match="Token-id inputs cannot be embedded") as exc:
            c.embeddings.create(model="embed-gem-test", input=[1, 2, 3])
    assert ("input", []) == (exc.value.body["param"], gateway.fake.requests)  # type: ignore[index]


def test_models_asked_for_what_they_do_not_do_are_400_in_the_callers_shape(gateway: GatewayUnderTest) -> None:
    """A chat model asked for embeddings, and an embedding model asked to chat or count, are 400s naming the
    model, in each SDK's error type; no upstream is asked and nothing is charged."""
    with _oai(gateway, gateway.key) as c:
        with pytest.raises(openai.BadRequestError, match="'gpt-test' is not an embedding model"):
            c.embeddings.create(model="gpt-test", input="x")
        with pytest.raises(openai.BadRequestError, match="'embed-oai-test' is an embedding model"):
            c.chat.completions.create(model="embed-oai-test", messages=[{"role": "user", "content": "x"}])
    with _gem(gateway, gateway.key) as g:
        with pytest.raises(genai_errors.ClientError, match="'gemini-test' is not an embedding model") as exc:
            g.models.embed_content(model="gemini-test", contents="x")
        assert (400, "INVALID_ARGUMENT") == (exc.value.code, exc.value.status)
        with pytest.raises(genai_errors.ClientError, match="'embed-gem-test' is an embedding model"):
            g.models.generate_content(model="embed-gem-test", contents="x")
        with pytest.raises(genai_errors.ClientError, match="'embed-gem-test' is an embedding model"):
            g.models.count_tokens(model="embed-gem-test", contents="x")
    assert [] == gateway.fake.requests


@pytest.mark.parametrize(("upstream", "client"), [("gemini", "openai"), ("openai", "gemini"), ("gemini", "gemini")])
def test_an_upstream_error_reaches_the_caller_in_its_shape_and_costs_nothing(
        gateway: GatewayUnderTest, upstream: str, client: str) -> None:
    """An upstream 400 is the caller's own 400 error (its SDK's exception, the message kept), metered at no cost."""
    gateway.fake.push(Reply(error=ErrorReply(400, "text too long for this model")))
    since = gateway.last_stream_id()
    if client == "openai":
        with _oai(gateway, gateway.key) as c, pytest.raises(openai.BadRequestError, match="text too long"):
            c.embeddings.create(model=MODEL[upstream], input="x")
    else:
        with _gem(gateway, gateway.key) as g, pytest.raises(genai_errors.ClientError, match="text too long"):
            g.models.embed_content(model=MODEL[upstream], contents="x")
    [event] = gateway.wait_metering(since)
    assert (400, 0, client, upstream) == (event["status"], event["cost_nano"], event["protocol"],
                                          event["upstream_protocol"])


def test_scripted_usage_is_what_an_openai_upstream_reports(gateway: GatewayUnderTest) -> None:
    """The upstream's prompt_tokens are billed (not the estimate), and a Gemini caller is charged them too."""
    account, key = _account(gateway)
    gateway.fake.push(Reply(usage=Usage(input=1234)))
    since = gateway.last_stream_id()
    with _gem(gateway, key) as g:
        g.models.embed_content(model="embed-oai-test", contents="some text")
    _check_metered(gateway, since, account, "gemini", "openai", 1234, False)


def test_embedding_models_are_listed_with_their_methods(gateway: GatewayUnderTest) -> None:
    """Gemini's models list shows an embedding model with embedContent and batchEmbedContents; chat models keep
    generateContent."""
    with _gem(gateway, gateway.key) as g:
        actions = {m.name: m.supported_actions for m in g.models.list()}
    assert (["embedContent", "batchEmbedContents"], ["generateContent", "streamGenerateContent", "countTokens"]) == (
        actions["models/embed-gem-test"], actions["models/gemini-test"])
