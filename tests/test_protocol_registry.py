"""A protocol is one folder: nothing outside it branches on a protocol, and a new one plugs in by registering.

The toy protocol below is a whole protocol in one test module: registered, it is matched by path,
answers errors in its own shape, and converts to and from the real protocols through the IR,
without a line changed anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.usage import Usage, count
from translator import ir
from translator.endpoints import classify
from translator.errors import BadRequest, ErrorTable, Spelling, UpstreamError, UserFacingError, kind_for_status
from translator.protocols import REGISTRY
from translator.protocols.base import Codec, Endpoint, Json, Kind, Observer, Query
from translator.protocols.convert import response_translator, translate_error, translate_request
from translator.protocols.stream_base import EncoderPhase, SSEStreamDecoder, StreamEncoder
from translator.sse import SSEEvent, encode_event

ROOT = Path(__file__).resolve().parent.parent
# Protocol folders (a codec each) and the registry may name protocols; nothing else may.
ALLOWED = {ROOT / "translator/protocols/__init__.py", ROOT / "core/protocols.py"}
BRANCH = re.compile(
    r"Protocol\.(OPENAI|ANTHROPIC|GEMINI)\b"  # the enum's members
    r"|(?:name|protocol|value)\s*[!=]=\s*[\"'](?:openai|anthropic|gemini)[\"']"  # or their names compared
)


def _sources() -> Iterator[Path]:
    folders = {p.parent for p in (ROOT / "translator/protocols").glob("*/codec.py")}
    for package in ("translator", "tokengate", "core"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path not in ALLOWED and not any(f in path.parents for f in folders) and "_gen" not in path.parts:
                yield path


def test_no_protocol_branches_outside_the_protocol_folders() -> None:
    """translator/, tokengate/ and core/ ask a codec; only protocols/<name>/ knows a protocol by name."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in _sources()
             for n, line in enumerate(path.read_text().splitlines(), 1) if BRANCH.search(line)]
    assert [] == found


def test_every_registered_protocol_has_a_folder_and_a_name_in_core() -> None:
    """Each codec is its folder's CODEC; providers may speak exactly the registered protocols (the
    config's names are core's, which cannot import the registry)."""
    from core.protocols import Protocol

    assert [p.value for p in Protocol] == [c.name for c in REGISTRY]
    for codec in REGISTRY:  # a folder is the protocol's name as a Python identifier (openai-responses/)
        assert f"translator.protocols.{codec.name.replace('-', '_')}." in type(codec).__module__ + "."


# --- a toy protocol ----------------------------------------------------------------------
# Requests {"model", "prompt", "max": n}; answers {"text", "stop", "tokens": {"in", "out"}}; streams
# ``data: {"delta": …}`` then ``data: {"stop": …, "tokens": …}``; errors {"oops": {"what", "why"}}.

TOY_ERRORS = ErrorTable(
    Spelling("invalid_request", "bad"),
    Spelling("rate_limit", "slow_down", 420),
    Spelling("api_error", "broken"),
)
_STOP_IN = {"done": ir.Stop.END, "cut": ir.Stop.MAX_TOKENS}
_STOP_OUT = {ir.Stop.MAX_TOKENS: "cut"}


def _read_usage(raw: Any) -> Usage:
    return Usage(input=count(raw.get("in")), output=count(raw.get("out"))) if isinstance(raw, dict) else Usage()


def _write_usage(u: Usage) -> Json:
    return {"in": u.prompt_total, "out": u.completion_total}


class _ToyDecoder(SSEStreamDecoder):
    def _decode(self, sse_events: list[SSEEvent]) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in sse_events:
            doc = ir.parse_json(sse.data) if sse.data else None
            if not isinstance(doc, dict):
                continue
            if "delta" in doc:
                out.append(ir.TextDelta(str(doc["delta"])))
            if "stop" in doc and not self._finished:
                self._finished = True
                out += [ir.UsageSeen(_read_usage(doc.get("tokens"))),
                        ir.Finished(_STOP_IN.get(str(doc["stop"]), ir.Stop.OTHER))]
        return out


class _ToyEncoder(StreamEncoder):
    def __init__(self, meta: ir.ClientMeta) -> None:
        super().__init__()
        self._usage, self._stop = Usage(), ir.Stop.END

    def _on(self, e: ir.Event) -> bytes:
        if self._phase is EncoderPhase.CLOSED:
            return b""
        self._phase = EncoderPhase.OPEN
        match e:
            case ir.TextDelta(text=text):
                return encode_event(ir.dumps({"delta": text}))
            case ir.UsageSeen(usage=seen):
                self._usage = self._usage.merge(seen)
            case ir.Finished(stop=stop):
                self._stop = stop
            case ir.Ended():
                self._phase = EncoderPhase.CLOSED
                return encode_event(ir.dumps({"stop": _STOP_OUT.get(self._stop, "done"),
                                              "tokens": _write_usage(self._usage)}))
            case ir.Failed(error=err):
                self._phase = EncoderPhase.CLOSED
                return TOY.error_event(err)
        return b""


class _ToyObserver(Observer):
    def document(self, doc: Json) -> None:
        self.usage, self.finish = _read_usage(doc.get("tokens")), doc.get("stop")
        self.complete = self.complete or self.finish is not None

    def event(self, ev: SSEEvent) -> bool:
        doc = ir.parse_json(ev.data)
        if isinstance(doc, dict):
            self.document(doc)
        return True


class ToyCodec(Codec):
    name = "toy"
    errors = TOY_ERRORS
    body_routes = {"/toy/chat": {"path": "/toy/chat"}}
    envoy_match = ({"name": ":path", "string_match": {"prefix": "/toy/"}},)

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        return Endpoint(self, Kind.CHAT) if (method, path) == ("POST", "/toy/chat") else None

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        return f"{base_path}/toy/chat"

    def credential(self, key: str | None) -> dict[str, str]:
        return {"x-toy-key": key} if key else {}

    def decode_request(self, body: Json) -> ir.Request:
        return ir.Request([ir.Message(ir.Role.USER, [ir.Text(str(body.get("prompt", "")))])],
                          max_tokens=self.output_cap(body))

    def encode_request(self, req: ir.Request, model: str, stream: bool) -> Json:
        return {"model": model, "prompt": "".join(ir.text_of(m.parts) for m in req.messages), "max": req.max_tokens,
                "stream": stream}

    def decode_response(self, body: Json) -> ir.Response:
        return ir.Response("toy-1", [ir.Text(str(body.get("text", "")))], _STOP_IN.get(body.get("stop", ""),
                           ir.Stop.OTHER), _read_usage(body.get("tokens")))

    def encode_response(self, resp: ir.Response, meta: ir.ClientMeta) -> Json:
        return {"text": ir.text_of(resp.parts), "stop": _STOP_OUT.get(resp.stop, "done"),
                "tokens": _write_usage(resp.usage)}

    def stream_decoder(self) -> ir.StreamDecoder:
        return _ToyDecoder()

    def stream_encoder(self, meta: ir.ClientMeta) -> ir.StreamEncoder:
        return _ToyEncoder(meta)

    def tool_name(self, name: str) -> str:
        return name

    def tool_names(self, body: Json) -> tuple[str, ...]:
        return ()

    def output_cap(self, body: Json) -> int | None:
        return count(body.get("max"))

    def error_body(self, err: UserFacingError) -> Json:
        return {"oops": {"what": self.errors.spell(err.kind).name, "why": err.message}}

    def decode_error(self, status: int, body: bytes) -> UserFacingError:
        doc = ir.parse_json(body)
        why = doc.get("oops", {}).get("why") if isinstance(doc, dict) else None
        return UpstreamError(str(why or status), status=status, kind=kind_for_status(status))

    def read_usage(self, raw: Any) -> Usage:
        return _read_usage(raw)

    def write_usage(self, usage: Usage) -> Json:
        return _write_usage(usage)

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return _ToyObserver()

    def model_entry(self, name: str, owner: str) -> Json:
        return {"toy_model": name}

    def model_list(self, entries: list[Json], names: list[str]) -> Json:
        return {"toys": entries}


TOY = ToyCodec()


@pytest.fixture
def toy() -> Iterator[ToyCodec]:
    REGISTRY.add(TOY)
    yield TOY
    REGISTRY.remove(TOY)


@pytest.mark.usefixtures("toy")
def test_a_registered_protocol_gets_its_paths_and_routes_and_no_one_elses() -> None:
    """Its path is its endpoint (and its Envoy route); every other path keeps its protocol."""
    assert Endpoint(TOY, Kind.CHAT) == classify("POST", "/toy/chat", {})
    assert classify("GET", "/toy/chat", {}) is None
    assert REGISTRY.get("openai") is classify("POST", "/v1/chat/completions", {}).codec  # type: ignore[union-attr]
    assert REGISTRY.get("openai") is classify("GET", "/v1/models", {}).codec  # type: ignore[union-attr]
    assert (TOY, {"path": "/toy/chat"}) == REGISTRY.body_routes()["/toy/chat"]


@pytest.mark.usefixtures("toy")
def test_a_registered_protocol_answers_errors_in_its_own_shape() -> None:
    """The gateway's errors and the upstreams' are both spelled by the toy's table, statuses included."""
    status, headers, body = TOY.error_response(BadRequest("no prompt"))
    assert (400, "application/json", {"oops": {"what": "bad", "why": "no prompt"}}) == (
        status, headers["content-type"], orjson.loads(body))
    upstream = b'{"type":"error","error":{"type":"rate_limit_error","message":"later"}}'
    status, out = translate_error(TOY, "anthropic", 429, upstream)
    assert (420, {"oops": {"what": "slow_down", "why": "later"}}) == (status, orjson.loads(out))
    assert 420 == TOY.client_status(429)
    assert b'data: {"oops":{"what":"broken","why":"upstream stream ended before it finished"}}\n\n' == (
        TOY.error_event(UpstreamError("upstream stream ended before it finished")))


@pytest.mark.usefixtures("toy")
def test_a_registered_protocol_converts_both_ways_through_the_ir() -> None:
    """Toy request -> Anthropic request; an OpenAI answer and an Anthropic stream -> toy answers."""
    sent = translate_request(TOY, "anthropic", {"model": "m", "prompt": "hi", "max": 9}, upstream_model="claude",
                             stream=False)
    assert ("claude", 9, [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]) == (
        sent["model"], sent["max_tokens"], sent["messages"])

    whole = response_translator(TOY, "openai", stream=False, client_model="m", include_usage=True)
    whole.feed(orjson.dumps({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"},
                                                      "finish_reason": "length"}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))
    assert {"text": "yo", "stop": "cut", "tokens": {"in": 3, "out": 2}} == orjson.loads(whole.flush())

    stream = response_translator(TOY, "anthropic", stream=True, client_model="m", include_usage=True)
    upstream = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","usage":'
                b'{"input_tokens":4,"output_tokens":1}}}\n\n'
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"text_delta","text":"hey"}}\n\n'
                b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                b'"usage":{"output_tokens":5}}\n\n'
                b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    out = stream.feed(upstream) + stream.flush()
    assert (b'data: {"delta":"hey"}\n\n'
            b'data: {"stop":"done","tokens":{"in":4,"out":5}}\n\n') == out
    assert (Usage(input=4, output=5), "end") == (stream.usage, stream.finish)

    # and the other way: a toy upstream streamed to an OpenAI client
    back = response_translator("openai", TOY, stream=True, client_model="m", include_usage=False, created=1)
    text = (back.feed(b'data: {"delta":"a"}\n\ndata: {"stop":"done","tokens":{"in":1,"out":1}}\n\n')
            + back.flush()).decode()
    assert '"content":"a"' in text and '"finish_reason":"stop"' in text and text.endswith("data: [DONE]\n\n")
