"""Property tests (hypothesis): the stream codecs and the SSE decoder under any chunking, and
request conversion under random and mutated bodies."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols import Protocol
from fakes.anthropic import AnthropicCodec
from fakes.bedrock import ConverseCodec
from fakes.codec import Answer, Call, Kind
from fakes.gemini import GeminiCodec
from fakes.openai import OpenAICodec
from fakes.responses import ResponsesCodec
from fakes.script import ToolCall, Usage
from translator.errors import UserFacingError
from translator.extproc.router import _depth
from translator.extproc.upstream import renamed
from translator.passthrough import Passthrough
from translator.protocols import REGISTRY
from translator.protocols.convert import client_tool_names, translate_request
from translator.responses import handler_for

from .protocols.sdk import translate_stream
from .test_sse import decode

_MADE_UP_ID = re.compile(rb"(?<=[_\"-])[0-9a-f]{24}(?:[0-9a-f]{8})?(?=\")")  # msg_…, chatcmpl-…, resp_…, fc_…
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UPSTREAMS = {Protocol.OPENAI: OpenAICodec(), Protocol.ANTHROPIC: AnthropicCodec(), Protocol.GEMINI: GeminiCodec(),
             Protocol.OPENAI_RESPONSES: ResponsesCodec(), Protocol.BEDROCK_CONVERSE: ConverseCodec()}
CLIENTS = [Protocol(c.name) for c in REGISTRY.clients]  # Bedrock Converse is spoken to upstreams only
PAIRS = [(c, u) for c in CLIENTS for u in Protocol if c is not u]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at any points (inside UTF-8 characters and CRLFs too)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=20)
sse_event = st.tuples(st.one_of(st.none(), line_text.filter(lambda s: ":" not in s)),
                      st.lists(line_text, min_size=1, max_size=3), st.sampled_from(["\n", "\r\n", "\r"]))


@PROPS
@given(st.lists(sse_event, max_size=6), st.data())
def test_sse_any_chunking_gives_the_events_written(events: list[tuple[str | None, list[str], str]],
                                                   data: st.DataObject) -> None:
    """Events written with any line ending and cut anywhere decode to what was written, raw bytes intact."""
    raw = b"".join(((f"event: {name}{eol}" if name is not None else "")
                    + "".join(f"data: {line}{eol}" for line in lines) + eol).encode()
                   for name, lines, eol in events)
    got = decode(data.draw(chunkings(raw)))
    assert [(name, "\n".join(lines)) for name, lines, _ in events] == [(e.event, e.data) for e in got]
    assert raw == b"".join(e.raw for e in got)


@PROPS
@given(st.binary(max_size=300), st.data())
def test_sse_any_bytes_decode_alike_whole_or_cut(raw: bytes, data: st.DataObject) -> None:
    """Arbitrary bytes (no stream at all) never raise and decode alike however they are cut."""
    assert decode([raw]) == decode(data.draw(chunkings(raw)))


words = st.text(st.sampled_from("abc xyz é☃\n\"\\{}"), max_size=40)
answers = st.builds(
    Answer,
    text=words,
    reasoning=st.just(""),
    tool_calls=st.lists(st.builds(ToolCall, name=st.sampled_from(["get_weather", "lookup"]),
                                  args=st.dictionaries(st.sampled_from("xyz"), st.integers(-2**53, 2**53) | words, max_size=3)),
                        max_size=2).map(tuple),
    usage=st.builds(Usage, input=st.integers(0, 10**6), output=st.integers(0, 10**5)),
    finish_reason=st.none(),
)


@PROPS
@given(st.sampled_from(PAIRS), answers, st.data())
def test_stream_translation_is_the_same_for_any_chunking(pair: tuple[Protocol, Protocol], answer: Answer,
                                                         data: st.DataObject) -> None:
    """Any answer of any upstream, cut anywhere, translates to the same bytes with the same usage."""
    client, upstream = pair
    body = b"".join(UPSTREAMS[upstream].stream(Call(Kind.GENERATE, "m", stream=True, stream_usage=True), answer))
    whole, t1 = translate_stream(client, upstream, [body])
    cut, t2 = translate_stream(client, upstream, data.draw(chunkings(body)))
    if upstream is Protocol.BEDROCK_CONVERSE:  # its streams carry no id: the client's is made up each time
        whole, cut = (_MADE_UP_ID.sub(b"", x) for x in (whole, cut))
    assert whole == cut
    assert (t1.usage, t1.finish) == (t2.usage, t2.finish)
    assert t1.usage.output == answer.usage.output


@PROPS
@given(st.sampled_from(list(Protocol)), answers, st.booleans(), st.data())
def test_passthrough_is_byte_for_byte_for_any_chunking(protocol: Protocol, answer: Answer, strip: bool,
                                                       data: st.DataObject) -> None:
    """A same-protocol stream passes unchanged (less only OpenAI's usage chunk when stripped), usage read alike."""
    body = b"".join(UPSTREAMS[protocol].stream(Call(Kind.GENERATE, "m", stream=True, stream_usage=True), answer))

    def run(chunks: list[bytes]) -> tuple[bytes, Any]:
        p = Passthrough(protocol, stream=True, strip_usage_chunk=strip)
        out = b"".join(c if (o := p.feed(c)) is None else o for c in chunks)
        return out + (p.flush() or b""), p

    whole, p1 = run([body])
    cut, p2 = run(data.draw(chunkings(body)))
    assert whole == cut and (p1.usage, p1.complete) == (p2.usage, p2.complete) and p1.complete
    assert whole == body or (strip and protocol is Protocol.OPENAI and len(whole) < len(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

VALID: dict[Protocol, dict[str, Any]] = {
    Protocol.OPENAI: {
        "model": "m", "max_tokens": 64, "stream": True, "temperature": 0.5,
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hi"},
                                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                     {"role": "assistant", "content": None,
                      "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
    },
    Protocol.ANTHROPIC: {
        "model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "be brief"}],
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    },
    Protocol.GEMINI: {
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                     {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]},
                     {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 42}}}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}],
        "generationConfig": {"maxOutputTokens": 64, "thinkingConfig": {"thinkingBudget": 512}},
    },
    Protocol.OPENAI_RESPONSES: {
        "model": "m", "stream": True, "instructions": "be brief", "max_output_tokens": 64, "store": False,
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "terse"}]},
                  {"type": "message", "role": "user", "content": [
                      {"type": "input_text", "text": "hi"},
                      {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}],
                   "encrypted_content": "gAAAA"},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\":1}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "42"},
                  {"type": "custom_tool_call", "call_id": "c2", "name": "patch", "input": "*** Begin Patch"},
                  {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False},
                  {"type": "custom", "name": "patch", "format": {"type": "grammar", "syntax": "lark",
                                                                  "definition": "start: /.+/"}}],
        "tool_choice": "auto", "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    },
}


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        out += _paths(v, (*here, k))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


def _convert_or_refuse(client: Protocol, body: Any) -> None:
    """What the router and the converters do with a parsed body: a result, or a 4xx for the caller."""
    if not isinstance(body, dict):
        return  # refused as "not a JSON object" before any of this runs
    try:
        REGISTRY.get(client).output_cap(body)
        client_tool_names(client, body)
        for upstream in Protocol:
            if upstream is not client:
                assert isinstance(translate_request(client, upstream, body, upstream_model="u", stream=False), dict)
    except UserFacingError as err:
        assert 400 <= err.status < 500, err


@PROPS
@given(st.sampled_from(CLIENTS), st.data())
def test_mutated_bodies_convert_or_get_a_4xx(client: Protocol, data: st.DataObject) -> None:
    """A valid body with any one part replaced by any JSON value never raises anything but a 4xx."""
    valid = VALID[client]
    path = data.draw(st.sampled_from(_paths(valid)))
    _convert_or_refuse(client, _replace(valid, path, data.draw(json_values)))


@PROPS
@given(st.sampled_from(CLIENTS), st.dictionaries(st.sampled_from(
    ["model", "messages", "contents", "system", "tools", "max_tokens", "stream", "tool_choice", "systemInstruction",
     "generationConfig", "thinking", "stop", "temperature", "input", "instructions", "text", "reasoning",
     "max_output_tokens"]), json_values, max_size=6))
def test_random_bodies_convert_or_get_a_4xx(client: Protocol, body: dict[str, Any]) -> None:
    """Random bodies made of the protocols' own field names never raise anything but a 4xx."""
    _convert_or_refuse(client, body)


ANSWER = Answer(text="hello there", reasoning="", tool_calls=(ToolCall("f", {"x": 1}, id="c1"),),
                usage=Usage(input=3, output=4), finish_reason=None)


@PROPS
@given(st.sampled_from([(c, u) for c in Protocol for u in Protocol]), st.booleans(), st.data())
def test_mutated_upstream_answers_are_read_or_an_upstream_error(pair: tuple[Protocol, Protocol], stream: bool,
                                                                 data: st.DataObject) -> None:
    """An upstream answer (whole or one stream event) with any one part replaced by any JSON value is
    passed, translated, or refused as the upstream's error (502) — never the gateway's own failure."""
    client, upstream = pair
    call = Call(Kind.GENERATE, "m", stream=stream, stream_usage=True)
    pieces = UPSTREAMS[upstream].stream(call, ANSWER) if stream else [UPSTREAMS[upstream].complete(call, ANSWER)]
    i = data.draw(st.integers(0, len(pieces) - 1))
    head, sep, payload = pieces[i].rpartition(b"data: ")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return  # [DONE]
    path = data.draw(st.sampled_from(_paths(doc)))
    pieces[i] = head + sep + orjson.dumps(_replace(doc, path, data.draw(json_values))) + (b"\n\n" if sep else b"")
    h = handler_for(client, upstream, 200, stream=stream, sse=True, include_usage=True, model="m", tool_names=("f",))
    try:
        for p in pieces:
            h.feed(p)
        h.flush()
    except UserFacingError as err:
        assert err.status == 502, err


def _nesting(doc: Any) -> int:
    """The depth of a JSON value's containers, the plain recursive way (the reference)."""
    if isinstance(doc, dict):
        doc = list(doc.values())
    elif not isinstance(doc, list):
        return 0
    return 1 + max(map(_nesting, doc), default=0)


# many small containers (json_values above: fewer, with every kind of number, for the conversion tests)
nestings = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=5),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                    max_size=4), max_leaves=40)


@PROPS
@given(st.dictionaries(st.text(max_size=3), nestings, max_size=4) | st.lists(nestings, max_size=4))
def test_the_routers_depth_of_a_body_is_its_nesting(doc: dict[str, Any] | list[Any]) -> None:
    """The router refuses bodies nested more than 128 deep (tests/inprocess/test_errors.py); its level-by-level
    count agrees with the recursive definition on any document, as parsed back from its JSON."""
    parsed = orjson.loads(orjson.dumps(doc))
    assert _depth(parsed) == _nesting(parsed)


@PROPS
@given(st.dictionaries(st.text(max_size=5), nestings, max_size=4), st.text(min_size=1, max_size=12),
       st.text(min_size=1, max_size=12), st.booleans(), st.sampled_from([None, 1, 2]), st.booleans())
def test_a_renamed_body_is_the_callers_with_only_its_model_changed(
        rest: dict[str, Any], asked: str, model: str, first: bool, indent: int | None, ascii_only: bool) -> None:
    """Whatever the body and however its caller spelled it (spacing, escapes, where "model" is, a nested "model"),
    the splice either declines or gives the same document with only the model renamed, the rest of the bytes the
    caller's own."""
    rest = {"messages": [{"model": asked}], **rest}  # a nested "model" with the same value
    rest.pop("model", None)
    doc = {"model": asked, **rest} if first else {**rest, "model": asked}
    raw = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    out = renamed(raw, asked, model)
    if out is None:
        assert not first or ascii_only  # declined only where the bytes do not show it (not first, or escaped)
        return
    assert orjson.loads(out) == {**doc, "model": model}
    old, new = orjson.dumps(asked), orjson.dumps(model)
    cut = out.index(new, out.index(b":"))  # the value of the first key, "model"
    assert out[:cut] + old + out[cut + len(new):] == raw
