"""Every client protocol calling a model of every other protocol, through the running gateway."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from fakes import ErrorReply, Reply, ToolCall, Usage
from tests.harness import UPSTREAM_SECRETS, GatewayUnderTest

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@dataclass
class Answer:
    text: str
    tool_calls: list[tuple[str, dict[str, object]]]
    input_tokens: int
    output_tokens: int


class Caller:
    """One SDK, asked the same things in its own words."""

    def __init__(self, name: str, gw: GatewayUnderTest) -> None:
        self.name = name
        self.oai = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
        self.ant = anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0)
        self.gem = genai.Client(api_key=gw.key, http_options=types.HttpOptions(
            base_url=gw.http, retry_options=types.HttpRetryOptions(attempts=1)))

    def close(self) -> None:
        self.oai.close()
        self.ant.close()
        self.gem.close()

    def ask(self, model: str, text: str, *, stream: bool = False, tools: bool = False) -> Answer:
        return getattr(self, f"_{self.name}")(model, text, stream, tools)

    def _openai(self, model: str, text: str, stream: bool, tools: bool) -> Answer:
        kw: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": text}]}
        if tools:
            kw["tools"] = [{"type": "function", "function": WEATHER}]
        if not stream:
            r = self.oai.chat.completions.create(**kw)  # type: ignore[call-overload]
            calls = [(c.function.name, json.loads(c.function.arguments)) for c in r.choices[0].message.tool_calls or []]
            return Answer(r.choices[0].message.content or "", calls, r.usage.prompt_tokens, r.usage.completion_tokens)
        out, args, names, usage = "", {}, {}, None
        for ch in self.oai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):  # type: ignore[call-overload]
            usage = ch.usage or usage
            for c in ch.choices:
                out += c.delta.content or ""
                for d in c.delta.tool_calls or []:
                    names[d.index] = names.get(d.index) or (d.function.name if d.function else None)
                    args[d.index] = args.get(d.index, "") + ((d.function.arguments or "") if d.function else "")
        calls = [(names[i], json.loads(args[i])) for i in sorted(args)]
        return Answer(out, calls, usage.prompt_tokens, usage.completion_tokens)

    def _anthropic(self, model: str, text: str, stream: bool, tools: bool) -> Answer:
        kw: dict[str, object] = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}]}
        if tools:
            kw["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}]
        if stream:
            with self.ant.messages.stream(**kw) as s:  # type: ignore[arg-type]
                m = s.get_final_message()
        else:
            m = self.ant.messages.create(**kw)  # type: ignore[call-overload]
        text_out = "".join(b.text for b in m.content if b.type == "text")
        calls = [(b.name, dict(b.input)) for b in m.content if b.type == "tool_use"]
        u = m.usage
        return Answer(text_out, calls, u.input_tokens + (u.cache_read_input_tokens or 0), u.output_tokens)

    def _gemini(self, model: str, text: str, stream: bool, tools: bool) -> Answer:
        config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
            types.FunctionDeclaration(**WEATHER)])]) if tools else None  # type: ignore[arg-type]
        chunks = (list(self.gem.models.generate_content_stream(model=model, contents=text, config=config))
                  if stream else [self.gem.models.generate_content(model=model, contents=text, config=config)])
        out, calls = "", []
        for c in chunks:
            for p in (c.candidates[0].content.parts or []) if c.candidates and c.candidates[0].content else []:
                out += p.text or ""
                if p.function_call:
                    calls.append((p.function_call.name, dict(p.function_call.args or {})))
        um = chunks[-1].usage_metadata
        return Answer(out, calls, um.prompt_token_count or 0,  # type: ignore[union-attr]
                      (um.candidates_token_count or 0) + (um.thoughts_token_count or 0))  # type: ignore[union-attr]


PAIRS = [("openai", "claude-test"), ("openai", "gemini-test"), ("anthropic", "gpt-test"),
         ("anthropic", "gemini-test"), ("gemini", "gpt-test"), ("gemini", "claude-test")]
IDS = [f"{c}->{m.split('-')[0]}" for c, m in PAIRS]
UPSTREAM_KEY = {"claude-test": "TG_TEST_ANTHROPIC_KEY", "gpt-test": "TG_TEST_OPENAI_KEY", "gemini-test": "TG_TEST_GEMINI_KEY"}


@pytest.fixture
def caller_for(gateway: GatewayUnderTest) -> Iterator[Callable[[str], Caller]]:
    made: list[Caller] = []

    def make(name: str) -> Caller:
        made.append(Caller(name, gateway))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize(("client", "model"), PAIRS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_text_and_usage_survive_conversion(gateway: GatewayUnderTest, caller_for: Callable[[str], Caller],
                                           client: str, model: str, stream: bool) -> None:
    """The answer text and token counts reach the caller in its own protocol, and are metered."""
    gateway.fake.push(Reply(text="Bonjour le monde", usage=Usage(input=12, output=5)))
    since = gateway.last_stream_id()
    answer = caller_for(client).ask(model, "Say hello in French", stream=stream)
    assert ("Bonjour le monde", 12, 5) == (answer.text, answer.input_tokens, answer.output_tokens)
    sent = gateway.fake.requests[-1]
    assert UPSTREAM_SECRETS[UPSTREAM_KEY[model]] in " ".join(sent.headers.values())
    assert "Say hello in French" in sent.body.decode()
    [event] = gateway.wait_metering(since)
    assert (12, 5, True) == (event["usage"]["input"], event["usage"]["output"], event["complete"])


@pytest.mark.parametrize(("client", "model"), PAIRS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tool_calls_survive_conversion(gateway: GatewayUnderTest, caller_for: Callable[[str], Caller],
                                       client: str, model: str, stream: bool) -> None:
    """A tool definition goes upstream in its protocol, and the call comes back whole."""
    gateway.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    answer = caller_for(client).ask(model, "Weather in Paris?", stream=stream, tools=True)
    assert [("get_weather", {"city": "Paris"})] == answer.tool_calls
    assert "get_weather" in gateway.fake.requests[-1].body.decode()


@pytest.mark.parametrize(("client", "model"), PAIRS, ids=IDS)
def test_upstream_errors_reach_the_caller_in_its_shape(gateway: GatewayUnderTest, caller_for: Callable[[str], Caller],
                                                       client: str, model: str) -> None:
    """An upstream 429 becomes the caller's own rate-limit error, message kept."""
    gateway.fake.push(Reply(error=ErrorReply(429, "slow down please"), times=None))
    expected = {"openai": openai.RateLimitError, "anthropic": anthropic.RateLimitError, "gemini": genai_errors.ClientError}
    with pytest.raises(expected[client]) as exc:
        caller_for(client).ask(model, "hi")
    assert "slow down please" in str(exc.value)


@pytest.mark.parametrize(
    ("client", "model", "upstream_status", "client_status"),
    [("openai", "claude-test", 529, 503), ("anthropic", "gpt-test", 503, 529), ("gemini", "claude-test", 529, 503),
     ("openai", "gemini-test", 429, 429)],
    ids=["529-to-openai", "503-to-anthropic", "529-to-gemini", "429-kept"],
)
def test_upstream_error_status_is_the_callers_spelling(gateway: GatewayUnderTest, client: str, model: str,
                                                       upstream_status: int, client_status: int) -> None:
    """Statuses one protocol spells differently (overloaded: 529 vs 503) are mapped per the reference."""
    gateway.fake.push(Reply(error=ErrorReply(upstream_status, "busy"), times=None))
    paths = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
             "gemini": f"/v1beta/models/{model}:generateContent"}
    bodies = {"openai": {"model": model, "messages": [{"role": "user", "content": "x"}]},
              "anthropic": {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
              "gemini": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}}
    r = httpx.post(f"{gateway.http}{paths[client]}", json=bodies[client], headers={"authorization": f"Bearer {gateway.key}"})
    assert client_status == r.status_code
    assert "busy" in r.text


def test_count_tokens_is_asked_of_an_upstream_that_can_count(gateway: GatewayUnderTest) -> None:
    """Anthropic <-> Gemini: the count request is translated and the upstream's own count returned."""
    with anthropic.Anthropic(base_url=gateway.http, api_key=gateway.key, max_retries=0) as ant:
        n = ant.messages.count_tokens(model="gemini-test", messages=[{"role": "user", "content": "one two three"}])
    sent = gateway.fake.requests[-1]
    assert "/v1beta/models/gemini-test:countTokens" == sent.path
    assert "one two three" in sent.body.decode()
    assert n.input_tokens > 0
    gem = genai.Client(api_key=gateway.key, http_options=types.HttpOptions(
        base_url=gateway.http, retry_options=types.HttpRetryOptions(attempts=1)))
    try:
        total = gem.models.count_tokens(model="claude-test", contents="four five").total_tokens
    finally:
        gem.close()
    assert "/v1/messages/count_tokens" == gateway.fake.requests[-1].path
    assert total is not None and total > 0


def test_count_tokens_for_an_openai_model_is_a_flagged_estimate(gateway: GatewayUnderTest) -> None:
    """OpenAI has no count endpoint: the gateway estimates, says so, and sends nothing upstream."""
    with anthropic.Anthropic(base_url=gateway.http, api_key=gateway.key, max_retries=0) as ant:
        raw = ant.messages.with_raw_response.count_tokens(
            model="gpt-test", messages=[{"role": "user", "content": "x" * 400}])
    assert "estimated" == raw.headers["x-tokengate-token-count"]
    assert 100 <= raw.parse().input_tokens <= 110
    assert [] == gateway.fake.requests
