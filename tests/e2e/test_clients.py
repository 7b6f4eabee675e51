"""Real clients' requests and reasoning round trips through the whole gateway, every upstream protocol.

- The requests Claude Code and gemini-cli sent (tests/fixtures/clients/, recorded by capture.py there)
  are replayed to a model behind each upstream protocol: each gets a 200 in the client's own shape.
- A tool call with thinking on, then the tool's result, for every client x upstream pair through the
  official SDKs: the second request must be accepted by the fake provider, which checks the history
  the way the real one does (Anthropic: signed thinking starting the tool loop; Gemini 3: each step's
  first function call signed), so the reasoning came back wherever the client's protocol could carry it.
- Gemini JSON-array streams (no alt=sse): application/json from every upstream, and a well-formed
  array ending with an error element when the answer breaks off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from fakes import Reply, ToolCall
from fakes.codec import signature
from fakes.gemini import SKIP_SIGNATURE
from tests.harness import PRICES, GatewayUnderTest, own_stack

CLIENTS = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
PROTOCOLS = ("openai", "anthropic", "gemini")
# The upstream's model per protocol; the Gemini one is a Gemini 3 model: the fake checks its signatures.
MODEL = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-3-test"}
THOUGHT = "The user wants the weather in Paris: call the tool."
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QUESTION = "Weather in Paris?"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    def tweak(cfg: dict[str, Any]) -> None:
        cfg["deployments"].append({"name": "gem3", "provider": "fake-gemini", "model": "gemini-3-test"})
        cfg["models"] += [
            {"name": "gemini-3-test", "deployments": ["gem3"], "price": PRICES["gemini-test"]},
            # two providers: a per-attempt route (the upstream filter translates and sets the content type)
            {"name": "mixed-test", "deployments": [{"deployment": "ant", "priority": 0},
                                                   {"deployment": "oai", "priority": 1}],
             "price": PRICES["claude-test"]},
        ]

    with own_stack(tmp_path_factory.mktemp("clients"), tweak) as g:
        g.key = g.new_key("clients", name="clients")
        yield g


@pytest.fixture(autouse=True)
def _fresh(gw: GatewayUnderTest) -> None:
    gw.fake.reset()


# --- the recorded requests -------------------------------------------------------------------------

RECORDED = sorted([*CLIENTS.glob("claude-code/*/*.json"), *CLIENTS.glob("gemini-cli/*/*.json")])


@pytest.mark.parametrize("upstream", PROTOCOLS)
@pytest.mark.parametrize("path", RECORDED, ids=[str(p.relative_to(CLIENTS).with_suffix("")) for p in RECORDED])
def test_recorded_client_request_gets_a_200_in_its_shape(gw: GatewayUnderTest, path: Path, upstream: str) -> None:
    """A request exactly as Claude Code or gemini-cli sent it (headers, ?beta=true, alt=sse, body) reaches a
    model behind each upstream protocol and is answered in the client's own stream shape."""
    rec = json.loads(path.read_text())
    client = path.parts[-3]
    body = rec["body"]
    target, headers = rec["target"], dict(rec["headers"])
    model = MODEL[upstream]
    if client == "gemini-cli" and upstream == "gemini":
        model = "gemini-test"  # recorded against a model whose calls the fake did not have to sign
    if client == "claude-code":
        body = {**body, "model": model}
        headers["x-api-key"] = gw.key
    else:
        target = target.replace("/models/gemini-test:", f"/models/{model}:")
        headers["x-goog-api-key"] = gw.key
    r = httpx.post(gw.http + target, content=json.dumps(body), headers=headers, timeout=30)
    assert 200 == r.status_code, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    if client == "claude-code":
        names = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
        assert "message_start" == names[0] and "message_stop" == names[-1] and "error" not in names, r.text
    else:
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        assert chunks and all("error" not in c for c in chunks), r.text
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert 1 == len(gw.fake.requests)


# --- reasoning round trips -------------------------------------------------------------------------


def _clients(gw: GatewayUnderTest) -> tuple[openai.OpenAI, anthropic.Anthropic, genai.Client]:
    return (openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0),
            anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0),
            genai.Client(api_key=gw.key, http_options=types.HttpOptions(
                base_url=gw.http, retry_options=types.HttpRetryOptions(attempts=1))))


def _openai_turns(c: openai.OpenAI, model: str, stream: bool) -> str:
    kw: dict[str, Any] = {"model": model, "reasoning_effort": "low", "tools": [{"type": "function", "function": WEATHER}]}
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    if stream:
        calls: dict[int, dict[str, Any]] = {}
        for ch in c.chat.completions.create(**kw, messages=messages, stream=True):  # type: ignore[call-overload]
            for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                slot = calls.setdefault(d.index, {"id": d.id, "type": "function",
                                                  "function": {"name": d.function.name, "arguments": ""}})
                slot["function"]["arguments"] += d.function.arguments or ""
        said: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": list(calls.values())}
    else:
        said = c.chat.completions.create(**kw, messages=messages).choices[0].message.model_dump(exclude_none=True)
    messages += [said, {"role": "tool", "tool_call_id": said["tool_calls"][0]["id"], "content": "18C"}]
    return c.chat.completions.create(**kw, messages=messages).choices[0].message.content or ""


def _anthropic_turns(c: anthropic.Anthropic, model: str, stream: bool) -> str:
    kw: dict[str, Any] = {"model": model, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
                          "tools": [{"name": WEATHER["name"], "description": WEATHER["description"],
                                     "input_schema": WEATHER["parameters"]}]}
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    if stream:
        with c.messages.stream(**kw, messages=messages) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(**kw, messages=messages)
    content = [b.model_dump(exclude_none=True) for b in first.content]
    call = next(b for b in content if b["type"] == "tool_use")
    messages += [{"role": "assistant", "content": content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18C"}]}]
    second = c.messages.create(**kw, messages=messages)
    return "".join(b.text for b in second.content if b.type == "text")


def _gemini_turns(c: genai.Client, model: str, stream: bool) -> str:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],  # type: ignore[arg-type]
        thinking_config=types.ThinkingConfig(include_thoughts=True))
    contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text=QUESTION)])]
    if stream:
        chunks = list(c.models.generate_content_stream(model=model, contents=contents, config=config))
    else:
        chunks = [c.models.generate_content(model=model, contents=contents, config=config)]
    parts = [p for ch in chunks if ch.candidates and ch.candidates[0].content
             for p in ch.candidates[0].content.parts or []]
    call = next(p.function_call for p in parts if p.function_call)
    contents += [types.Content(role="model", parts=parts), types.Content(role="user", parts=[
        types.Part.from_function_response(name=call.name or "", response={"output": "18C"})])]
    second = c.models.generate_content(model=model, contents=contents, config=config)
    return second.text or ""


PAIRS = [(c, u) for c in PROTOCOLS for u in PROTOCOLS]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=[f"{c}->{u}" for c, u in PAIRS])
def test_reasoning_comes_back_so_the_upstream_accepts_the_tool_result_turn(
        gw: GatewayUnderTest, client: str, upstream: str, stream: bool) -> None:
    """Thinking on, a tool call, then the tool's result: the upstream accepts the second turn (its fake
    refuses what the provider refuses) and gets its reasoning back wherever the client could carry it —
    Anthropic: signed thinking first in the turn (else thinking off); Gemini 3: the call's own signature
    (else Google's documented bypass)."""
    gw.fake.push(Reply(reasoning=THOUGHT, tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
                 Reply(text="18C in Paris."))
    oai, ant, gem = _clients(gw)
    try:
        turns = {"openai": lambda: _openai_turns(oai, MODEL[upstream], stream),
                 "anthropic": lambda: _anthropic_turns(ant, MODEL[upstream], stream),
                 "gemini": lambda: _gemini_turns(gem, MODEL[upstream], stream)}
        assert "18C in Paris." == turns[client]()
    finally:
        oai.close()
        ant.close()
        gem.close()
    sent = gw.fake.requests[-1].json()
    carried = client != "openai" or (upstream == "anthropic" and not stream)  # OpenAI: thinking_blocks, whole only
    if upstream == "anthropic":
        first = sent["messages"][1]["content"][0]
        if carried:
            assert {"type": "thinking", "thinking": THOUGHT, "signature": signature(THOUGHT)} == first
            assert "enabled" == sent["thinking"]["type"]
        else:
            assert ("tool_use", None) == (first["type"], sent.get("thinking"))
    elif upstream == "gemini":
        call = next(p for p in sent["contents"][1]["parts"] if "functionCall" in p or "function_call" in p)
        sig = call.get("thoughtSignature") or call.get("thought_signature")
        if carried:  # google-genai sends the bytes back URL-safe; the fake reads both alphabets
            assert signature(THOUGHT).replace("+", "-").replace("/", "_") in (sig, sig.replace("+", "-").replace("/", "_"))
        else:
            assert SKIP_SIGNATURE == sig


# --- Gemini JSON-array streams ---------------------------------------------------------------------


def _array_stream(gw: GatewayUnderTest, model: str) -> httpx.Response:
    return httpx.post(f"{gw.http}/v1beta/models/{model}:streamGenerateContent", headers={"x-goog-api-key": gw.key},
                      json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=30)


@pytest.mark.parametrize("model", ["gpt-test", "claude-test", "mixed-test", "gemini-test"],
                         ids=["openai-direct", "anthropic-direct", "anthropic-per-attempt", "gemini-same"])
def test_a_json_array_stream_is_application_json_from_every_upstream(gw: GatewayUnderTest, model: str) -> None:
    """A Gemini stream without alt=sse is one JSON array, sent as application/json whatever the upstream
    (a direct route's Lua or the per-attempt filter sets it for a translated stream)."""
    gw.fake.push(Reply(text="one two three"))
    r = _array_stream(gw, model)
    assert (200, "application/json") == (r.status_code, r.headers["content-type"].split(";")[0])
    doc = r.json()
    assert "one two three" == "".join(p["text"] for c in doc for p in c["candidates"][0].get("content", {}).get("parts", []))
    assert "STOP" == doc[-1]["candidates"][0]["finishReason"]


GOOD_OAI_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
                  "choices": [{"index": 0, "delta": {"role": "assistant", "content": "partial"}, "finish_reason": None}]}
BAD_OAI_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
                 "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "not an object"}]}}]}
UNFINISHED_ARRAY = b'[{"candidates":[{"content":{"role":"model","parts":[{"text":"partial"}]},"index":0}]}'


@pytest.mark.parametrize("case", ["gateway-fails-translating", "upstream-closes-early", "upstream-ends-open"])
def test_a_broken_json_array_stream_still_ends_as_an_array_with_an_error(gw: GatewayUnderTest, case: str) -> None:
    """The gateway failing on a translated stream, and a same-protocol array the upstream closes without its
    finish or never closes: the client reads one well-formed array whose last element is the error."""
    if case == "gateway-fails-translating":
        gw.fake.push(Reply(events=[GOOD_OAI_CHUNK, BAD_OAI_CHUNK, b"data: [DONE]\n\n"], delay_between=0.05))
        model, message = "gpt-test", "could not read"
    else:
        gw.fake.push(Reply(events=[UNFINISHED_ARRAY, b"]" if case == "upstream-closes-early" else b""],
                           delay_between=0.05))
        model, message = "gemini-test", "ended before it finished"
    r = _array_stream(gw, model)
    assert 200 == r.status_code
    doc = r.json()
    assert isinstance(doc, list) and "partial" == doc[0]["candidates"][0]["content"]["parts"][0]["text"]
    assert message in doc[-1]["error"]["message"], doc
