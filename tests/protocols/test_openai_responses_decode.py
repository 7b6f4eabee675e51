"""Responses API requests to every other protocol, other protocols' requests to a Responses upstream,
and Responses answers to and from the IR (docs/protocols.md, "The Responses API")."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from core.protocols import Protocol
from translator.errors import BadRequest
from translator.protocols import carry
from translator.protocols.convert import client_tool_names, response_translator, translate_request
from translator.protocols.openai_responses import reasoning

RESP, OAI, ANT, GEM = Protocol.OPENAI_RESPONSES, Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI
OTHERS = [OAI, ANT, GEM]

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n"


def to(upstream: Protocol, body: dict[str, Any]) -> dict[str, Any]:
    return translate_request(RESP, upstream, {"model": "m", **body}, upstream_model="up", stream=False)


def test_string_input_and_instructions_reach_every_upstream() -> None:
    """``input`` as a string is one user turn; ``instructions`` and developer messages are the system prompt."""
    body = {"instructions": "Be terse.", "input": [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hello"}]}
    assert [{"role": "system", "content": [{"type": "text", "text": "Be terse."},
                                           {"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"}] == to(OAI, body)["messages"]
    ant = to(ANT, body)
    assert ([{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}],
            [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]) == (ant["system"], ant["messages"])
    gem = to(GEM, {"input": "Hello", "instructions": "Be terse."})
    assert ({"parts": [{"text": "Be terse."}]}, [{"role": "user", "parts": [{"text": "Hello"}]}]) == (
        gem["systemInstruction"], gem["contents"])


def test_a_function_call_round_trip_reaches_each_upstream_in_its_form() -> None:
    """function_call and function_call_output items become each protocol's call and result, paired by id
    (Gemini by name)."""
    body = {"tools": [WEATHER], "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]}
    assert [{"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}] == to(OAI, body)["messages"]
    ant = to(ANT, body)["messages"]
    assert {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}} \
        == ant[1]["content"][0]
    assert {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C"}]} \
        == {k: v for k, v in ant[2]["content"][0].items() if k != "is_error"}
    gem = to(GEM, body)["contents"]
    assert "get_weather" == gem[2]["parts"][0]["functionResponse"]["name"]


@pytest.mark.parametrize("upstream", OTHERS, ids=lambda p: p.value)
def test_a_custom_tool_is_a_function_with_one_string_argument(upstream: Protocol) -> None:
    """Codex's free-form apply_patch reaches another protocol as a function taking ``input`` (its grammar in the
    argument's description); a custom call in history is that function called with the patch."""
    body = {"tools": [APPLY_PATCH], "input": [
        {"role": "user", "content": "Add hello.txt"},
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": PATCH},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"}]}
    out = to(upstream, body)
    if upstream is OAI:
        fn = out["tools"][0]["function"]
        schema, call = fn["parameters"], out["messages"][1]["tool_calls"][0]["function"]
        assert ("apply_patch", {"input": PATCH}) == (call["name"], json.loads(call["arguments"]))
    elif upstream is ANT:
        fn = out["tools"][0]
        schema = fn["input_schema"]
        assert {"type": "tool_use", "id": "call_p", "name": "apply_patch", "input": {"input": PATCH}} \
            == out["messages"][1]["content"][0]
    else:
        fn = out["tools"][0]["functionDeclarations"][0]
        schema = fn["parameters"]
        assert {"name": "apply_patch", "args": {"input": PATCH}} == out["contents"][1]["parts"][0]["functionCall"]
    assert ("apply_patch", "Edit files with a patch.") == (fn["name"], fn["description"])
    assert ["input"] == schema["required"] and "string" == str(schema["properties"]["input"]["type"]).lower()
    assert GRAMMAR in schema["properties"]["input"]["description"]


def test_custom_tools_are_marked_among_the_declared_names() -> None:
    """The router keeps the client's tool names; a custom tool's name says it is one."""
    from translator import ir

    names = client_tool_names(RESP, {"tools": [WEATHER, APPLY_PATCH]})
    assert ["get_weather", "apply_patch"] == list(names)
    assert [False, True] == [isinstance(n, ir.CustomToolName) for n in names]


REFUSED = {
    "previous_response_id": ({"previous_response_id": "resp_1", "input": "hi"}, "previous_response_id needs an "
                             "OpenAI Responses upstream: tokengate keeps no conversation state"),
    "conversation": ({"conversation": "conv_1", "input": "hi"}, "conversation needs state kept by OpenAI"),
    "background": ({"background": True, "input": "hi"}, "background responses need an OpenAI Responses upstream"),
    "item_reference": ({"input": [{"type": "item_reference", "id": "msg_1"}]},
                       "input[0]: item_reference needs conversation state"),
    "forced_hosted_tool": ({"input": "hi", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
                           "tool_choice {'type': 'web_search'} cannot be converted"),
    "image_by_file_id": ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
                         "only an image_url"),
    "unknown_item": ({"input": [{"type": "computer_call_output", "call_id": "c"}]},
                     "input[0]: item type 'computer_call_output' cannot be converted"),
}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("upstream", OTHERS, ids=lambda p: p.value)
def test_what_needs_openai_state_or_tools_is_a_clear_400(upstream: Protocol, case: str) -> None:
    """Stored state (previous_response_id, conversation, background, item references), hosted tools and
    files by id cannot be served by another protocol: a 400 naming the field."""
    body, message = REFUSED[case]
    with pytest.raises(BadRequest) as info:
        to(upstream, body)
    assert message in info.value.message


@pytest.mark.parametrize("upstream", OTHERS, ids=lambda p: p.value)
def test_hosted_and_namespace_tools_are_dropped(upstream: Protocol) -> None:
    """Codex declares web_search and a namespace of sub-agent tools on every request: another protocol gets the
    function and custom tools only (the model cannot search or spawn agents there), not a 400 on every turn."""
    ns = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
        {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]}
    tools = [WEATHER, {"type": "web_search", "external_web_access": False}, ns,
             {"type": "file_search", "vector_store_ids": ["vs_1"]}, APPLY_PATCH]
    out = to(upstream, {"input": "hi", "tools": tools})
    if upstream is OAI:
        names = [t["function"]["name"] for t in out["tools"]]
    elif upstream is ANT:
        names = [t["name"] for t in out["tools"]]
    else:
        names = [d["name"] for d in out["tools"][0]["functionDeclarations"]]
    assert ["get_weather", "apply_patch"] == names


def test_options_map_to_anthropic() -> None:
    """tool_choice, parallel_tool_calls, max_output_tokens, sampling, reasoning effort and text.format."""
    out = to(ANT, {"input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"},
                   "parallel_tool_calls": False, "max_output_tokens": 500, "temperature": 0.3,
                   "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}})
    assert {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True} == out["tool_choice"]
    assert (500, 0.3) == (out["max_tokens"], out["temperature"])
    assert {"format": {"type": "json_schema", "schema": {"type": "object"}}} == out["output_config"]
    thinking = to(ANT, {"input": "hi", "reasoning": {"effort": "high", "summary": "auto"}})
    assert {"type": "enabled", "budget_tokens": 4096} == thinking["thinking"]


def test_options_map_to_openai_and_gemini() -> None:
    """The same options in Chat Completions' and Gemini's words."""
    body = {"input": "hi", "tools": [WEATHER], "tool_choice": "required", "max_output_tokens": 64,
            "reasoning": {"effort": "low"}, "text": {"format": {"type": "json_object"}}, "store": False,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "metadata": {"a": "b"}}
    oai = to(OAI, body)
    assert ("required", 64, "low", {"type": "json_object"}) == (
        oai["tool_choice"], oai["max_completion_tokens"], oai["reasoning_effort"], oai["response_format"])
    assert not {"store", "include", "prompt_cache_key", "metadata"} & set(oai)
    gem = to(GEM, body)
    assert {"mode": "ANY"} == gem["toolConfig"]["functionCallingConfig"]
    assert (64, "application/json") == (gem["generationConfig"]["maxOutputTokens"],
                                        gem["generationConfig"]["responseMimeType"])


def test_sealed_anthropic_thinking_is_replayed_byte_exact_before_its_tool_use() -> None:
    """A reasoning item the gateway sealed for an Anthropic answer comes back as the thinking block, signature
    and text unchanged, in front of the call (Anthropic refuses a tool-use turn without it)."""
    sealed = carry.seal({"a": [["Plan: call the tool.\n", "EqQBCkYIBxgCKkB=="]]})
    body = {"tools": [WEATHER], "input": [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan: call the tool."}],
         "encrypted_content": sealed},
        {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}]}
    assert [{"type": "thinking", "thinking": "Plan: call the tool.\n", "signature": "EqQBCkYIBxgCKkB=="},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}] \
        == to(ANT, body)["messages"][1]["content"]
    # OpenAI's own encrypted reasoning means nothing to another provider: not replayed
    body["input"][1]["encrypted_content"] = "gAAAAABopaque"
    assert [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}] \
        == to(ANT, body)["messages"][1]["content"]


def test_a_sealed_gemini_call_signature_goes_back_on_its_call() -> None:
    """A reasoning item sealing a Gemini call's thoughtSignature puts it back on the function call after it."""
    body = {"tools": [WEATHER], "input": [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": carry.seal({"n": "c2ln"})},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "18C"}]}
    [part] = to(GEM, body)["contents"][1]["parts"]
    assert "c2ln" == part["thoughtSignature"]


# --- another protocol's request to a Responses upstream ----------------------------------------


def test_a_chat_request_reaches_a_responses_upstream_in_its_form() -> None:
    """System prompt first, user parts as input_text/input_image, calls and results as items, tools not strict
    (Responses would default to strict), usage-free stream flag, nothing stored."""
    chat = {"model": "m", "max_completion_tokens": 8, "reasoning_effort": "max", "stop": ["x"], "seed": 3,
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url",
                                             "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                                      "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
            "tools": [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k not in ("type",
                                                                                                     "strict")}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}}
    out = translate_request(OAI, RESP, chat, upstream_model="gpt-5", stream=True)
    assert {"model": "gpt-5", "stream": True, "store": False, "max_output_tokens": 16,
            "reasoning": {"effort": "xhigh", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
            "tools": [{**WEATHER, "strict": False}],
            "input": [
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be terse."}]},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]} == out


# --- answers -----------------------------------------------------------------------------------


def _whole(client: Protocol, upstream: Protocol, body: dict[str, Any], tool_names: tuple[str, ...] = ()) -> Any:
    t = response_translator(client, upstream, stream=False, client_model="client-model", include_usage=False,
                            tool_names=tool_names, created=1700000000)
    t.feed(json.dumps(body).encode())
    return json.loads(t.flush()), t


def test_an_anthropic_answer_is_a_responses_object_the_sdk_validates() -> None:
    """Thinking (its signature sealed), text and a custom call (the client declared apply_patch custom) become
    reasoning, message and custom_tool_call items; usage in the Responses shape."""
    names = client_tool_names(RESP, {"tools": [APPLY_PATCH]})
    out, t = _whole(RESP, ANT, {
        "id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "tool_use", "content": [
            {"type": "thinking", "thinking": "Write it.", "signature": "sig=="},
            {"type": "text", "text": "Adding the file."},
            {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {"input": PATCH}}],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}}, names)
    r = openai.types.responses.Response.model_validate(out)
    assert ["reasoning", "message", "custom_tool_call"] == [o.type for o in r.output]
    rs, _, call = r.output
    assert rs.type == "reasoning" and call.type == "custom_tool_call"
    assert ("Write it.", {"a": [["Write it.", "sig=="]]}) == (rs.summary[0].text,
                                                             reasoning.unseal(rs.encrypted_content))
    assert ("toolu_1", "apply_patch", PATCH) == (call.call_id, call.name, call.input)
    assert ("completed", "Adding the file.", "resp_msg_1") == (r.status, r.output_text, r.id)
    assert r.usage is not None and (15, 5, 7, 22) == (
        r.usage.input_tokens, r.usage.input_tokens_details.cached_tokens, r.usage.output_tokens,
        r.usage.total_tokens)


def test_a_length_stop_is_an_incomplete_response() -> None:
    """max_tokens upstream: status incomplete, reason max_output_tokens (the Responses API's own spelling)."""
    out, _ = _whole(RESP, OAI, {"id": "c1", "choices": [{"index": 0, "finish_reason": "length",
                                                         "message": {"role": "assistant", "content": "Once upon"}}]})
    assert ("incomplete", {"reason": "max_output_tokens"}) == (out["status"], out["incomplete_details"])


def test_a_failed_responses_answer_is_the_upstreams_error() -> None:
    """A 200 body with status failed is read as the upstream error it reports."""
    from translator.errors import UserFacingError

    t = response_translator(OAI, RESP, stream=False, client_model="m", include_usage=False)
    t.feed(json.dumps({"id": "resp_1", "status": "failed", "error": {"code": "rate_limit_exceeded",
                                                                       "message": "slow"}}).encode())
    with pytest.raises(UserFacingError) as info:
        t.flush()
    assert ("rate_limit", 429, "slow") == (info.value.kind, info.value.status, info.value.message)
