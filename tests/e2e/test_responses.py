"""The Responses API end to end, beyond the matrix: custom tools, tool results and reasoning items sent back,
structured output, previous_response_id, and billing, with the openai SDK's ``responses`` client against a
model behind every upstream protocol (``tests/e2e/test_matrix.py`` has text, tools, images, usage and errors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest

from fakes import Reply, ToolCall, Usage
from fakes.codec import signature
from fakes.responses import encrypted
from tests.e2e.test_billing import expected_cost
from tests.harness import GatewayUnderTest
from translator.protocols.openai_responses import reasoning

UPSTREAMS = ("openai", "anthropic", "gemini", "openai-responses")
MODEL = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test", "openai-responses": "gpt-resp-test"}
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Use apply_patch to edit files.",
               "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+hello "world"\n*** End Patch\n'


@pytest.fixture
def oai(gateway: GatewayUnderTest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=gateway.key, max_retries=0) as client:
        yield client


def _custom_tools_seen(upstream: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, the type or schema the upstream sees) of the apply_patch tool."""
    if upstream == "openai-responses":
        return [(t["name"], t["type"]) for t in body["tools"]]
    if upstream == "openai":
        fns = [t["function"] for t in body["tools"]]
        return [(f["name"], ",".join(f["parameters"]["properties"])) for f in fns]
    if upstream == "anthropic":
        return [(t["name"], ",".join(t["input_schema"]["properties"])) for t in body["tools"]]
    decls = body["tools"][0].get("functionDeclarations") or body["tools"][0]["function_declarations"]
    return [(d["name"], ",".join(d["parameters"]["properties"])) for d in decls]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_a_custom_tool_call_comes_back_as_a_custom_call(gateway: GatewayUnderTest, oai: openai.OpenAI,
                                                       upstream: str, stream: bool) -> None:
    """Codex's free-form apply_patch: another protocol sees a function taking one string (``input``); its call
    reaches the client as a custom_tool_call whose input is the patch, exactly (a Responses upstream is passed
    the custom tool itself)."""
    gateway.fake.push(Reply(tool_calls=[ToolCall("apply_patch", {"input": PATCH})]))
    kw: dict[str, Any] = {"model": MODEL[upstream], "input": "Add hello.txt", "tools": [APPLY_PATCH]}
    if stream:
        with oai.responses.stream(**kw) as s:
            kinds = [e.type for e in s]
            r = s.get_final_response()
        assert ("response.custom_tool_call_input.done" in kinds) and ("response.completed" == kinds[-1])
    else:
        r = oai.responses.create(**kw)
    [call] = [o for o in r.output if o.type == "custom_tool_call"]
    assert ("apply_patch", PATCH) == (call.name, call.input)
    assert [] == [o for o in r.output if o.type == "function_call"]
    seen = "custom" if upstream == "openai-responses" else "input"
    assert [("apply_patch", seen)] == _custom_tools_seen(upstream, gateway.fake.requests[-1].json())


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_tool_results_go_back_to_the_upstream_paired_with_their_calls(gateway: GatewayUnderTest, oai: openai.OpenAI,
                                                                      upstream: str) -> None:
    """The client sends back the calls it got (a function and a custom one) with their outputs: the upstream
    gets calls and results in its own form, paired, and the answer after the tool results comes back."""
    gateway.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}),
                                        ToolCall("apply_patch", {"input": PATCH})]))
    first = oai.responses.create(model=MODEL[upstream], input="Weather, then a file", tools=[WEATHER, APPLY_PATCH])
    calls = [o for o in first.output if o.type in ("function_call", "custom_tool_call")]
    assert ["function_call", "custom_tool_call"] == [c.type for c in calls]
    outputs = [{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"},
               {"type": "custom_tool_call_output", "call_id": calls[1].call_id, "output": "Done!"}]
    history = [{"role": "user", "content": "Weather, then a file"},
               *[c.model_dump(exclude_none=True) for c in calls], *outputs]
    gateway.fake.push(Reply(text="18C, and hello.txt is written."))
    second = oai.responses.create(model=MODEL[upstream], input=history, tools=[WEATHER, APPLY_PATCH])
    assert ("18C, and hello.txt is written.", "completed") == (second.output_text, second.status)
    body = gateway.fake.requests[-1].json()
    ids = [c.call_id for c in calls]
    if upstream == "openai-responses":
        assert [i["type"] for i in body["input"][1:]] == ["function_call", "custom_tool_call", "function_call_output",
                                                          "custom_tool_call_output"]
    elif upstream == "openai":
        assert [(m["role"], m.get("tool_call_id")) for m in body["messages"][2:]] == [("tool", ids[0]), ("tool", ids[1])]
        assert ids == [c["id"] for c in body["messages"][1]["tool_calls"]]
    elif upstream == "anthropic":
        uses = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
        results = [b for b in body["messages"][2]["content"] if b["type"] == "tool_result"]
        assert (ids, ids) == ([u["id"] for u in uses], [r["tool_use_id"] for r in results])
        assert {"input": PATCH} == uses[1]["input"]
    else:
        responses = [p["functionResponse"] for p in body["contents"][2]["parts"]]
        assert ["get_weather", "apply_patch"] == [r["name"] for r in responses]


def test_a_reasoning_item_goes_back_to_a_responses_upstream_untouched(gateway: GatewayUnderTest,
                                                                      oai: openai.OpenAI) -> None:
    """OpenAI's encrypted reasoning (include: reasoning.encrypted_content, store: false) is passed through both
    ways: the item the client sends back reaches the upstream byte for byte."""
    gateway.fake.push(Reply(reasoning="Plan: call the tool.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    kw: dict[str, Any] = {"model": "gpt-resp-test", "tools": [WEATHER], "store": False,
                          "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}}
    first = oai.responses.create(input="Weather in Oslo?", **kw)
    [rs] = [o for o in first.output if o.type == "reasoning"]
    [call] = [o for o in first.output if o.type == "function_call"]
    assert encrypted("Plan: call the tool.") == rs.encrypted_content
    gateway.fake.push(Reply(text="-3C in Oslo."))
    items = [rs.model_dump(exclude_none=True), call.model_dump(exclude_none=True),
             {"type": "function_call_output", "call_id": call.call_id, "output": "-3C"}]
    oai.responses.create(input=[{"role": "user", "content": "Weather in Oslo?"}, *items], **kw)
    sent = gateway.fake.requests[-1]
    assert items[0] == sent.json()["input"][1]
    assert b'"encrypted_content":"' + encrypted("Plan: call the tool.").encode() + b'"' in sent.body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_thinking_survives_a_responses_client(gateway: GatewayUnderTest, oai: openai.OpenAI,
                                                        stream: bool) -> None:
    """A Claude model with thinking and tools behind a Responses client (Codex with reasoning on): the thinking
    block's signature leaves sealed in the reasoning item's encrypted_content, and the next turn replays the
    block byte for byte before its tool_use, as Anthropic requires."""
    thought = "Plan: call the tool, then answer.\n"
    gateway.fake.push(Reply(reasoning=thought, tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    kw: dict[str, Any] = {"model": "claude-test", "tools": [WEATHER], "store": False,
                          "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}}
    if stream:
        with oai.responses.stream(input="Weather in Paris?", **kw) as s:
            first = s.get_final_response()
    else:
        first = oai.responses.create(input="Weather in Paris?", **kw)
    [rs] = [o for o in first.output if o.type == "reasoning"]
    [call] = [o for o in first.output if o.type == "function_call"]
    assert {"a": [[thought, signature(thought)]]} == reasoning.unseal(rs.encrypted_content)
    gateway.fake.push(Reply(text="18C in Paris."))
    second = oai.responses.create(input=[
        {"role": "user", "content": "Weather in Paris?"}, rs.model_dump(exclude_none=True),
        call.model_dump(exclude_none=True), {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        **kw)
    assert "18C in Paris." == second.output_text
    assert [{"type": "thinking", "thinking": thought, "signature": signature(thought)},
            {"type": "tool_use", "id": call.call_id, "name": "get_weather", "input": {"city": "Paris"}}] \
        == gateway.fake.requests[-1].json()["messages"][1]["content"]


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_a_json_schema_answer_is_parsed_by_the_sdk(gateway: GatewayUnderTest, oai: openai.OpenAI,
                                                   upstream: str) -> None:
    """text.format json_schema reaches each upstream as its structured-output switch; responses.parse reads the
    answer into the model."""
    gateway.fake.push(Reply(text='{"city": "Paris", "celsius": 18}'))
    r = oai.responses.parse(model=MODEL[upstream], input="Weather in Paris as JSON", text_format=Weather)
    assert Weather(city="Paris", celsius=18) == r.output_parsed
    body = gateway.fake.requests[-1].json()
    if upstream == "openai-responses":
        fmt = body["text"]["format"]
    elif upstream == "openai":
        fmt = body["response_format"]["json_schema"]
    elif upstream == "anthropic":
        fmt = body["output_config"]["format"]
    else:
        config = body.get("generationConfig") or body["generation_config"]
        fmt = {"schema": config.get("responseSchema") or config.get("responseJsonSchema")}
    assert {"city", "celsius"} == set(fmt["schema"]["properties"])


def test_previous_response_id_reaches_a_responses_upstream(gateway: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """OpenAI keeps the conversation: a Responses upstream gets previous_response_id as the client sent it."""
    gateway.fake.push(Reply(text="Still here."))
    r = oai.responses.create(model="gpt-resp-test", input="And then?", previous_response_id="resp_abc123")
    assert "Still here." == r.output_text
    assert "resp_abc123" == gateway.fake.requests[-1].json()["previous_response_id"]


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
def test_previous_response_id_for_another_protocol_is_a_clear_400(gateway: GatewayUnderTest, oai: openai.OpenAI,
                                                                  upstream: str) -> None:
    """tokengate keeps no conversation state: toward another protocol previous_response_id is refused in the
    Responses error shape, naming the field and what to do, and nothing reaches the upstream."""
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model=MODEL[upstream], input="And then?", previous_response_id="resp_abc123")
    body: Any = info.value.body
    assert ("invalid_request_error", "previous_response_id") == (body["type"], body["param"])
    assert "tokengate keeps no conversation state" in body["message"] and "'input'" in body["message"]
    assert [] == gateway.fake.requests


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_a_responses_client_is_metered_and_billed(gateway: GatewayUnderTest, upstream: str) -> None:
    """Every answer to a Responses client has its one metering event (protocol openai-responses, the
    upstream's protocol, the disjoint buckets) and the account is charged its exact cost, streamed too."""
    account = f"respbill{UPSTREAMS.index(upstream)}"
    key = gateway.new_key(account, fund_usd=10)
    start, _ = gateway.balance(account)
    usage = Usage(input=900, cache_read=300, output=200, reasoning=50)
    total = 0
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as client:
        for stream in (False, True):
            since = gateway.last_stream_id()
            gateway.fake.push(Reply(text="Billed.", usage=usage))
            if stream:
                with client.responses.stream(model=MODEL[upstream], input="hi") as s:
                    s.get_final_response()
            else:
                client.responses.create(model=MODEL[upstream], input="hi")
            [event] = gateway.wait_metering(since)
            total += expected_cost(MODEL[upstream], usage)
            assert ("openai-responses", upstream, stream, True) == (
                event["protocol"], event["upstream_protocol"], event["stream"], event["complete"])
            buckets = {"input": 900, "cache_read": 300, "output": 200, "reasoning": 50}
            assert buckets == {k: v for k, v in event["usage"].items() if v}  # Anthropic reports a 0 cache write
    assert (start - total, 0) == gateway.wait_balance(account, start - total)


def test_a_chat_client_reaches_a_responses_only_model(gateway: GatewayUnderTest, oai: openai.OpenAI) -> None:
    """An OpenAI Chat Completions client, streaming with tools, reaches a model served only on the Responses API:
    the request goes to /v1/responses (tools not strict, nothing stored) and the answer is a chat stream."""
    gateway.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"})], usage=Usage(input=7, output=3)))
    chunks = list(oai.chat.completions.create(
        model="gpt-resp-test", stream=True, messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[{"type": "function", "function": {k: v for k, v in WEATHER.items() if k not in ("type", "strict")}}]))
    args = "".join(tc.function.arguments or "" for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or []
                   if tc.function)
    assert {"city": "Rome"} == json.loads(args)
    assert "tool_calls" == [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason][0]
    sent = gateway.fake.requests[-1]
    body = sent.json()
    assert ("/v1/responses", False, False) == (sent.path, body["store"], body["tools"][0]["strict"])
