"""Reference §8 conformance items not already covered elsewhere, one test (or table) per item id.

The full item -> test map is in docs/protocols.md ("Conformance checklist").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.protocols import Protocol
from translator.errors import BadRequest
from translator.protocols.convert import client_tool_names, response_translator, translate_request

from . import sdk

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI
PNG = "iVBORw0KGgo="


def tr(client: Protocol, upstream: Protocol, body: dict[str, Any], model: str = "up") -> dict[str, Any]:
    base = {"model": "m", "max_tokens": 100} if client is ANT else {"model": "m"} if client is OAI else {}
    return translate_request(client, upstream, {**base, **body}, upstream_model=model, stream=False)


def call(cid: str, name: str = "get", args: str = "{}") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


# --- R2 roles -------------------------------------------------------------------------------


def test_r2_consecutive_assistant_turns_merge_and_a_leading_assistant_gets_a_user_turn() -> None:
    """Anthropic and Gemini need a user turn first and alternating roles: '...' is inserted, turns merged."""
    msgs = [{"role": "assistant", "content": "Hello."}, {"role": "assistant", "content": "How can I help?"},
            {"role": "user", "content": "Hi"}]
    assert [{"role": "user", "content": [{"type": "text", "text": "..."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello."},
                                              {"type": "text", "text": "How can I help?"}]},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}] == tr(OAI, ANT, {"messages": msgs})["messages"]
    assert [{"role": "user", "parts": [{"text": "..."}]},
            {"role": "model", "parts": [{"text": "Hello."}, {"text": "How can I help?"}]},
            {"role": "user", "parts": [{"text": "Hi"}]}] == tr(OAI, GEM, {"messages": msgs})["contents"]


# --- R3 empty content -----------------------------------------------------------------------

EMPTY_HISTORY = [
    {"role": "user", "content": "   "},
    {"role": "assistant", "content": None, "tool_calls": [call("call_1")]},
    {"role": "tool", "tool_call_id": "call_1", "content": ""},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": []},
    {"role": "user", "content": [{"type": "text", "text": ""}]},
]


def test_r3_empty_and_blank_content_never_makes_an_empty_anthropic_block() -> None:
    """Blank text is dropped, turns left empty go and their neighbours merge; '...' only where a user turn
    must be (first, or last when the client's last turn was the user's)."""
    body = tr(OAI, ANT, {"messages": EMPTY_HISTORY})
    assert [{"role": "user", "content": [{"type": "text", "text": "..."}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": []}]},
            ] == body["messages"]


def test_r3_empty_content_never_makes_an_empty_gemini_part() -> None:
    """No part is empty: an empty tool result is {"output": ""}; empty turns go, neighbours merge."""
    assert [{"role": "user", "parts": [{"text": "   "}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get", "args": {}},
                                         "thoughtSignature": "skip_thought_signature_validator"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get", "response": {"output": ""}}}]},
            ] == tr(OAI, GEM, {"messages": EMPTY_HISTORY})["contents"]


@pytest.mark.parametrize("upstream", [ANT, GEM], ids=["anthropic", "gemini"])
def test_r3_an_empty_last_user_turn_does_not_turn_the_answer_into_a_prefill(upstream: Protocol) -> None:
    """[user, assistant, empty user]: the user still speaks last ('...'), so the assistant turn is history."""
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": ""}]
    body = tr(OAI, upstream, {"messages": msgs})
    last = body["messages"][-1] if upstream is ANT else body["contents"][-1]
    assert ("user", 3) == (last["role"], len(body["messages"] if upstream is ANT else body["contents"]))


# --- R4 media -------------------------------------------------------------------------------


@pytest.mark.parametrize("mime", ["image/jpeg", "image/gif", "image/webp"])
def test_r4_every_anthropic_image_type_goes_inline(mime: str) -> None:
    """jpeg, gif and webp data URLs become Anthropic base64 images and Gemini inlineData."""
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:{mime};base64,{PNG}"}}]}]
    assert [{"type": "image", "source": {"type": "base64", "media_type": mime, "data": PNG}}] \
        == tr(OAI, ANT, {"messages": msgs})["messages"][0]["content"]
    assert [{"inlineData": {"mimeType": mime, "data": PNG}}] == tr(OAI, GEM, {"messages": msgs})["contents"][0]["parts"]


def test_r4_an_image_type_anthropic_refuses_is_a_400() -> None:
    """An SVG (or any type but jpeg/png/gif/webp) cannot go to Anthropic."""
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/svg+xml;base64,{PNG}"}}]}]
    with pytest.raises(BadRequest, match="Anthropic accepts jpeg, png, gif or webp images, not image/svg"):
        tr(OAI, ANT, {"messages": msgs})


def test_r4_pdf_documents_convert_both_ways() -> None:
    """An Anthropic document -> OpenAI file part / Gemini inlineData; Gemini PDF inlineData -> the other two."""
    doc = {"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}
    oai_file = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "file.pdf"}}
    assert [oai_file] == tr(ANT, OAI, {"messages": [doc]})["messages"][0]["content"]
    assert [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}] \
        == tr(ANT, GEM, {"messages": [doc]})["contents"][0]["parts"]
    gem = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}]}]}
    assert [oai_file] == tr(GEM, OAI, gem)["messages"][0]["content"]
    assert doc["content"] == tr(GEM, ANT, gem)["messages"][0]["content"]


# --- R5 tool definitions and names ----------------------------------------------------------


def test_r5_a_tool_without_parameters_is_an_empty_object_schema() -> None:
    """No parameters -> Anthropic gets an empty object schema; Gemini a declaration without parameters."""
    tools = [{"type": "function", "function": {"name": "ping"}}]
    msgs = [{"role": "user", "content": "x"}]
    assert [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}] \
        == tr(OAI, ANT, {"messages": msgs, "tools": tools})["tools"]
    assert [{"functionDeclarations": [{"name": "ping"}]}] == tr(OAI, GEM, {"messages": msgs, "tools": tools})["tools"]


def test_r5_gemini_names_with_dots_and_colons_round_trip_through_openai() -> None:
    """'ns.get:v1' is valid for Gemini, not OpenAI: a stable stand-in goes upstream, the answer gets it back."""
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "ns.get:v1"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["ns.get:v1"]}}}
    up = tr(GEM, OAI, body)
    short = up["tools"][0]["function"]["name"]
    assert short.startswith("ns_get_v1_") and len(short) <= 64
    assert {"type": "function", "function": {"name": short}} == up["tool_choice"]
    answer = {"id": "1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "tool_calls": [call("c1", short)]}}]}
    t = response_translator(GEM, OAI, stream=False, client_model="m", include_usage=False,
                            tool_names=client_tool_names(GEM, body))
    t.feed(json.dumps(answer).encode())
    assert "ns.get:v1" == json.loads(t.flush())["candidates"][0]["content"]["parts"][0]["functionCall"]["name"]


# --- R6 tool choice with thinking -----------------------------------------------------------


def test_r6_a_forced_tool_turns_anthropic_thinking_off() -> None:
    """Anthropic rejects thinking with a forced tool: the tool choice wins, thinking is dropped."""
    body = tr(OAI, ANT, {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high",
                         "tools": [{"type": "function", "function": {"name": "get"}}], "tool_choice": "required"})
    assert ({"type": "any"}, None) == (body["tool_choice"], body.get("thinking"))


def test_r6_parallel_tool_calls_has_no_gemini_control_and_is_dropped() -> None:
    """parallel_tool_calls=false reaches OpenAI and Anthropic upstreams; Gemini has no such switch."""
    req = {"messages": [{"role": "user", "content": "x"}], "parallel_tool_calls": False,
           "tools": [{"type": "function", "function": {"name": "get"}}]}
    gem = tr(OAI, GEM, req)
    assert ("parallel_tool_calls" not in json.dumps(gem), None) == (True, gem.get("toolConfig"))


# --- R7 tool history ------------------------------------------------------------------------


def test_r7_an_orphan_tool_result_is_a_400_for_gemini() -> None:
    """A tool message answering no known call cannot be named for Gemini: 400 naming the id."""
    msgs = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_ghost", "content": "18C"}]
    with pytest.raises(BadRequest, match="tool result 'call_ghost' has no matching tool call"):
        tr(OAI, GEM, {"messages": msgs})


# --- R8 ids ---------------------------------------------------------------------------------


def test_r8_foreign_ids_are_sanitized_identically_on_call_and_result() -> None:
    """'functions.Bash:0' is cleaned for Anthropic, a 60-char id shortened for OpenAI, the same on both sides."""
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [call("functions.Bash:0", "bash")]},
            {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"}]
    ant = tr(OAI, ANT, {"messages": msgs})["messages"]
    use_id, result_id = ant[1]["content"][0]["id"], ant[2]["content"][0]["tool_use_id"]
    assert use_id == result_id and use_id.replace("_", "").isalnum()
    long_id = "toolu_" + "a" * 54
    history = [{"role": "user", "content": "x"},
               {"role": "assistant", "content": [{"type": "tool_use", "id": long_id, "name": "get", "input": {}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": long_id, "content": "ok"}]}]
    oai = tr(ANT, OAI, {"messages": history})["messages"]
    assert oai[1]["tool_calls"][0]["id"] == oai[2]["tool_call_id"]
    assert len(oai[2]["tool_call_id"]) <= 40


# --- R10 sampling ---------------------------------------------------------------------------


def test_r10_stops_beyond_gemini_five_and_unsupported_knobs_are_dropped() -> None:
    """Gemini keeps 5 stop sequences; Anthropic gets no seed or penalties."""
    req = {"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d"], "seed": 1,
           "presence_penalty": 0.5, "frequency_penalty": 0.5}
    assert not {"seed", "presence_penalty", "frequency_penalty"} & set(tr(OAI, ANT, req))
    six = {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
           "generationConfig": {"stopSequences": list("abcdef")}}
    assert list("abcd") == tr(GEM, OAI, six)["stop"]
    assert list("abcdef") == tr(GEM, ANT, six)["stop_sequences"]
    assert list("abcde") == tr(ANT, GEM, {"messages": [{"role": "user", "content": "x"}],
                                          "stop_sequences": list("abcdef")})["generationConfig"]["stopSequences"]


# --- R11 structured output ------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
FORMATS = [
    ("text", {"type": "text"}, {}, {"responseMimeType": "text/plain"}),
    ("json_object", {"type": "json_object"},
     {"system": [{"type": "text", "text": "Respond with a single valid JSON object and nothing else."}]},
     {"responseMimeType": "application/json"}),
    ("json_schema", {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}},
     {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
     {"responseMimeType": "application/json",
      "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]}}),
]


@pytest.mark.parametrize(("fmt", "ant", "gem"), [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS])
def test_r11_response_format_to_each_upstream(fmt: Any, ant: dict[str, Any], gem: dict[str, Any]) -> None:
    """text / json_object / json_schema: Anthropic output_config (json_object: a system line), Gemini MIME + schema."""
    req = {"messages": [{"role": "user", "content": "x"}], "response_format": fmt}
    body = tr(OAI, ANT, req)
    assert ant == {k: body[k] for k in ("system", "output_config") if k in body}
    assert gem == tr(OAI, GEM, req)["generationConfig"]


# --- R12 reasoning effort -------------------------------------------------------------------

EFFORTS = [  # effort -> Anthropic budget, Gemini 2.5 budget, Gemini 3 level
    ("none", None, {"thinkingBudget": 0}, {"thinkingLevel": "MINIMAL"}),
    ("minimal", 1024, {"thinkingBudget": 1024, "includeThoughts": True},
     {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
    ("low", 1024, {"thinkingBudget": 1024, "includeThoughts": True}, {"thinkingLevel": "LOW", "includeThoughts": True}),
    ("medium", 2048, {"thinkingBudget": 2048, "includeThoughts": True},
     {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
    ("high", 4096, {"thinkingBudget": 4096, "includeThoughts": True}, {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ("xhigh", 8192, {"thinkingBudget": 8192, "includeThoughts": True},
     {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ("max", 16384, {"thinkingBudget": 16384, "includeThoughts": True},
     {"thinkingLevel": "HIGH", "includeThoughts": True}),
]


@pytest.mark.parametrize(("effort", "budget", "gem25", "gem3"), EFFORTS, ids=[e[0] for e in EFFORTS])
def test_r12_every_reasoning_effort_maps(effort: str, budget: int | None, gem25: Any, gem3: Any) -> None:
    """Each reasoning_effort value -> Anthropic budget (none: no thinking), Gemini 2.5 budget, Gemini 3 level."""
    req = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}
    thinking = tr(OAI, ANT, req).get("thinking")
    assert budget == (thinking or {}).get("budget_tokens")
    assert gem25 == tr(OAI, GEM, req, "gemini-2.5-flash")["generationConfig"]["thinkingConfig"]
    assert gem3 == tr(OAI, GEM, req, "gemini-3-pro")["generationConfig"]["thinkingConfig"]


# --- R13 thinking replay --------------------------------------------------------------------


def test_r13_reasoning_is_replayed_only_to_the_provider_that_signed_it() -> None:
    """Unsigned or foreign reasoning is dropped from history: OpenAI reasoning_content never reaches Anthropic,
    an Anthropic signature never reaches Gemini, a Gemini thought never reaches Anthropic."""
    oai = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a", "reasoning_content": "hmm"},
           {"role": "user", "content": "y"}]
    assert [{"type": "text", "text": "a"}] == tr(OAI, ANT, {"messages": oai})["messages"][1]["content"]
    ant = [{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "EqAnthropic"}, {"type": "text", "text": "a"}]},
        {"role": "user", "content": "y"}]
    assert [{"text": "a"}] == tr(ANT, GEM, {"messages": ant})["contents"][1]["parts"]
    gem = {"contents": [{"role": "user", "parts": [{"text": "x"}]}, {"role": "model", "parts": [
        {"text": "hmm", "thought": True, "thoughtSignature": "Gsig"}, {"text": "a"}]},
        {"role": "user", "parts": [{"text": "y"}]}]}
    assert [{"type": "text", "text": "a"}] == tr(GEM, ANT, gem)["messages"][1]["content"]


# --- R14 user ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "metadata"), [("user-42", {"user_id": "user-42"}), ("ann@example.com", None)],
                         ids=["id", "email-dropped"])
def test_r14_user_becomes_metadata_user_id_unless_it_is_an_email(user: str, metadata: Any) -> None:
    """OpenAI user -> Anthropic metadata.user_id; an e-mail address is not sent to Anthropic."""
    assert metadata == tr(OAI, ANT, {"messages": [{"role": "user", "content": "x"}], "user": user}).get("metadata")


# --- S2, S5 responses -----------------------------------------------------------------------


def test_s2_a_tool_only_answer_has_openai_content_null() -> None:
    """No text beside the tool call: content is null, not ""."""
    body = {"id": "msg_1", "content": [{"type": "tool_use", "id": "t", "name": "get", "input": {}}],
            "stop_reason": "tool_use"}
    t = response_translator(OAI, ANT, stream=False, client_model="m", include_usage=False)
    t.feed(json.dumps(body).encode())
    assert None is json.loads(t.flush())["choices"][0]["message"]["content"]


def test_s5_tool_arguments_cut_by_the_length_limit_become_an_empty_object() -> None:
    """OpenAI arguments truncated by finish_reason length -> an Anthropic tool_use with input {} and max_tokens."""
    body = {"id": "1", "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "tool_calls": [call("c1", "get", '{"city": "Par')]}}]}
    t = response_translator(ANT, OAI, stream=False, client_model="m", include_usage=False)
    t.feed(json.dumps(body).encode())
    out = json.loads(t.flush())
    assert ([{"type": "tool_use", "id": "c1", "name": "get", "input": {}}], "max_tokens") \
        == (out["content"], out["stop_reason"])


# --- T5 missing usage -----------------------------------------------------------------------


def test_t5_an_upstream_stream_without_usage_reports_zero_usage_and_meters_none() -> None:
    """No usage chunk (an OpenAI-compatible server that ignores include_usage): the Anthropic client gets
    zero usage, the metering side sees none (the router then bills an estimate and flags it)."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    stream = b"".join(b"data: " + json.dumps({**chunk, "choices": [c]}).encode() + b"\n\n" for c in [
        {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "stop"}]) + b"data: [DONE]\n\n"
    out, t = sdk.translate_stream(ANT, OAI, [stream])
    m = sdk.anthropic_message(out)
    assert ("hi", "end_turn", 0, 0) == (m.content[0].text, m.stop_reason, m.usage.input_tokens,  # type: ignore[union-attr]
                                        m.usage.output_tokens)
    assert (True, "end") == (t.usage.is_empty, t.finish)
