"""Azure OpenAI through the running gateway: every client SDK against an Azure deployment in both URL
styles (``api: deployments`` with ``api-version``, ``api: v1``), the fake checking what Azure checks
(path, ``api-version``, ``api-key``) and scripting its content filter (``fakes.azure``).

Test ids read ``<client>-><style>``. A stack of its own: the shared config stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes import ErrorReply, FakeProvider, Reply, ToolCall
from fakes import azure as fake_azure
from tests.e2e.test_matrix import (
    BASIC,
    BASIC_SEEN,
    END,
    INVALID,
    RATE_LIMITED,
    TOOL_STOP,
    WEATHER,
    Ask,
    Caller,
    Got,
    _openai_stream,
    check_error,
)
from tests.harness import GatewayUnderTest, own_stack

AZURE_KEY_ENV = "TG_TEST_AZURE_KEY"
CLIENTS = ("openai", "openai-responses", "anthropic", "gemini")
STYLES = ("deployments", "v1")
MODEL = {"deployments": "azure-dep", "v1": "azure-v1"}
DEPLOYMENT = "gpt4o-prod"  # the Azure deployment's name
API_VERSION = "2024-10-21"
# An answer Azure's filter cut off, as each client protocol says it (Responses: the status; its
# incomplete_details.reason is checked apart).
FILTERED_STOP = {"openai": "content_filter", "openai-responses": "incomplete", "anthropic": "refusal",
                 "gemini": "SAFETY"}
CASES = [pytest.param(c, s, id=f"{c}->{s}") for c in CLIENTS for s in STYLES]


class AzureCaller(Caller):
    """The matrix's callers; an OpenAI client's stream passes Azure's through, whose first chunk has no
    choices and carries ``prompt_filter_results``: checked, then left out of the matrix's framing check."""

    def _openai(self, model: str, ask: Ask) -> Got:
        if not ask.stream:
            return super()._openai(model, ask)
        kw: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": ask.text}]}
        if ask.tools:
            kw["tools"] = [{"type": "function", "function": t} for t in ask.tools]
        chunks = list(self.oai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
        first = chunks[0]
        assert ([], None) == (first.choices, first.usage)
        assert "prompt_filter_results" in (first.model_extra or {})
        return _openai_stream(chunks[1:])


def _azure_providers(fake: FakeProvider, cfg: dict[str, Any], workdir: Path) -> None:
    os.environ[AZURE_KEY_ENV] = fake_azure.AZURE_KEY
    base = f"http://127.0.0.1:{fake.port}"
    cfg["providers"] += [
        {"name": "azure-dep", "protocol": "openai", "base_url": base, "api_key": {"env": AZURE_KEY_ENV},
         "azure": {"api": "deployments", "api_version": API_VERSION}},
        {"name": "azure-v1", "protocol": "openai", "base_url": base, "api_key": {"env": AZURE_KEY_ENV},
         "azure": {"api": "v1"}},
        {"name": "azure-v1-resp", "protocol": "openai-responses", "base_url": base,
         "api_key": {"env": AZURE_KEY_ENV}, "azure": {"api": "v1"}},
        {"name": "azure-wrong-key", "protocol": "openai", "base_url": base,
         "api_key": {"env": "TG_TEST_OPENAI_KEY"}, "azure": {"api": "v1"}},
    ]
    cfg["deployments"] += [
        {"name": "az-dep", "provider": "azure-dep", "model": DEPLOYMENT},
        {"name": "az-v1", "provider": "azure-v1", "model": DEPLOYMENT},
        {"name": "az-v1-resp", "provider": "azure-v1-resp", "model": DEPLOYMENT},
        {"name": "az-bad", "provider": "azure-wrong-key", "model": DEPLOYMENT},
    ]
    price = {"input": 2.5, "output": 10}
    cfg["models"] += [{"name": "azure-dep", "deployments": ["az-dep"], "price": price},
                      {"name": "azure-v1", "deployments": ["az-v1"], "price": price},
                      {"name": "azure-v1-resp", "deployments": ["az-v1-resp"], "price": price},
                      {"name": "azure-bad-key", "deployments": ["az-bad"], "price": price}]


@pytest.fixture(scope="module")
def azure_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    with own_stack(tmp_path_factory.mktemp("azure"), workers=1, prepare=_azure_providers) as gw:
        gw.key = gw.new_key("azure", name="e2e-azure")
        yield gw


@pytest.fixture
def gw(azure_gw: GatewayUnderTest) -> GatewayUnderTest:
    azure_gw.fake.reset()
    return azure_gw


@pytest.fixture
def caller(request: pytest.FixtureRequest, gw: GatewayUnderTest) -> Iterator[Caller]:
    c = AzureCaller(request.node.callspec.params["client"], gw)
    yield c
    c.close()


def check_sent(gw: GatewayUnderTest, style: str) -> dict[str, Any]:
    """The request Azure got: its path and query for the style, the api-key header, no bearer token."""
    sent = gw.fake.requests[-1]
    if style == "deployments":
        assert f"/openai/deployments/{DEPLOYMENT}/chat/completions" == sent.path
        assert {"api-version": API_VERSION} == dict(sent.query)
    else:
        assert "/openai/v1/chat/completions" == sent.path
        assert {} == dict(sent.query)
    assert fake_azure.AZURE_KEY == sent.headers.get("api-key")
    assert "authorization" not in sent.headers
    body: dict[str, Any] = sent.json()
    assert DEPLOYMENT == body["model"]
    return body


@pytest.mark.parametrize(("client", "style"), CASES)
def test_text(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """A text answer and its usage, in the client's shape; Azure got its path, query and api-key."""
    gw.fake.push(Reply(text="Bonjour !", usage=BASIC))
    got = caller.ask(MODEL[style], Ask("Say hello in French"))
    assert ("Bonjour !", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    check_sent(gw, style)


@pytest.mark.parametrize(("client", "style"), CASES)
def test_stream_text(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """A streamed answer (Azure's first chunk: no choices, prompt_filter_results) arrives whole, with usage."""
    gw.fake.push(Reply(text="one two three four", usage=BASIC))
    got = caller.ask(MODEL[style], Ask("Count to four", stream=True))
    assert ("one two three four", END[client]) == (got.text, got.stop)
    assert BASIC_SEEN[client].items() <= got.usage.items()
    assert check_sent(gw, style)["stream"] is True


@pytest.mark.parametrize(("client", "style"), CASES)
def test_stream_tool_call(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """A streamed tool call comes back whole with the tool stop."""
    gw.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    got = caller.ask(MODEL[style], Ask("Weather in Paris?", tools=(WEATHER,), stream=True))
    assert ([("get_weather", {"city": "Paris"})], TOOL_STOP[client]) == (got.calls, got.stop)
    assert ["get_weather"] == [t["function"]["name"] for t in check_sent(gw, style)["tools"]]


@pytest.mark.parametrize(("client", "style"), CASES)
def test_upstream_error(gw: GatewayUnderTest, caller: Caller, client: str, style: str) -> None:
    """Azure's 429 reaches the client as its own rate-limit error."""
    gw.fake.push(Reply(error=ErrorReply(429, "Requests to the ChatCompletions_Create Operation have exceeded "
                                             "call rate limit", retry_after=60), times=None))
    exc_type, status, kind = RATE_LIMITED[client]
    with pytest.raises(exc_type) as info:
        caller.ask(MODEL[style], Ask("hi"))
    check_error(client, info.value, status, kind, "exceeded call rate limit")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "style"), CASES)
def test_filtered_prompt(gw: GatewayUnderTest, caller: Caller, client: str, style: str, stream: bool) -> None:
    """A prompt Azure's filter refuses (400 content_filter) is the client's own invalid-request error,
    saying so (an OpenAI client gets Azure's error as it came)."""
    gw.fake.push(fake_azure.prompt_filtered("violence"))
    exc_type, status, kind = INVALID[client]
    with pytest.raises(exc_type) as info:
        caller.ask(MODEL[style], Ask("something violent", stream=stream))
    exc: Any = info.value
    if client == "openai":
        assert (400, "content_filter") == (exc.status_code, exc.code)
        assert "content management policy" in str(exc)
    else:
        check_error(client, exc, status, kind, "content filter (violence)")
        assert "content management policy" in str(exc)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "style"), CASES)
def test_filtered_answer(gw: GatewayUnderTest, caller: Caller, client: str, style: str, stream: bool) -> None:
    """An answer Azure's filter cut off (finish_reason content_filter) ends with the client's own refusal
    or safety stop, the text sent before it kept."""
    gw.fake.push(fake_azure.answer_filtered("Here is how"))
    if client == "openai-responses":
        kw: dict[str, Any] = {"model": MODEL[style], "input": "something violent", "store": False}
        if stream:
            with caller.oai.responses.stream(**kw) as s:
                events = list(s)
            assert "response.incomplete" == events[-1].type
            r = events[-1].response
        else:
            r = caller.oai.responses.create(**kw)
        assert ("incomplete", "content_filter", "Here is how") == (
            r.status, r.incomplete_details.reason if r.incomplete_details else None, r.output_text)
        return
    got = caller.ask(MODEL[style], Ask("something violent", stream=stream))
    assert FILTERED_STOP[client] == got.stop
    assert "Here is how" == got.text


@pytest.mark.parametrize("client", CLIENTS)
def test_v1_responses_upstream(gw: GatewayUnderTest, client: str) -> None:
    """An openai-responses provider on Azure's v1 API: /openai/v1/responses, api-key, model in the body."""
    c = Caller(client, gw)  # a translated stream: no Azure chunk reaches any client
    try:
        gw.fake.push(Reply(text="Bonjour !", usage=BASIC))
        got = c.ask("azure-v1-resp", Ask("Say hello in French", stream=True))
    finally:
        c.close()
    assert ("Bonjour !", END[client]) == (got.text, got.stop)
    sent = gw.fake.requests[-1]
    assert ("/openai/v1/responses", {}) == (sent.path, dict(sent.query))
    assert (fake_azure.AZURE_KEY, DEPLOYMENT) == (sent.headers.get("api-key"), sent.json()["model"])


def test_wrong_key_is_azures_401(gw: GatewayUnderTest) -> None:
    """The fake refuses a wrong api-key as Azure does; the client gets an authentication error."""
    c = AzureCaller("openai", gw)
    try:
        with pytest.raises(openai.APIStatusError) as info:
            c.ask("azure-bad-key", Ask("hi"))
    finally:
        c.close()
    assert 401 == info.value.status_code
    assert "Access denied due to invalid subscription key" in str(info.value)

