"""The Bedrock Converse codec (``translator/protocols/bedrock_converse/``) and the Bedrock flavour
(``translator/flavours/bedrock.py``): the request each client's body becomes, the round trip through the IR, the
error answers read, the path, credential and signature of an attempt, and the config that asks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from core.config import Provider
from fakes import bedrock as fake_bedrock
from translator import ir
from translator.endpoints import Kind
from translator.errors import BadRequest
from translator.flavours import for_provider
from translator.flavours.bedrock import BedrockFlavour
from translator.protocols import REGISTRY
from translator.protocols.convert import translate_error, translate_request

BED = REGISTRY.get("bedrock-converse")
PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def from_openai(body: dict[str, Any], model: str = PROFILE) -> dict[str, Any]:
    return translate_request("openai", BED, {"model": "m", **body}, upstream_model=model, stream=False)


def test_an_openai_request_becomes_a_converse_request() -> None:
    """System prompts, an image as bytes, tool history and results, inference settings, no model or stream."""
    sent = from_openai({
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                  "function": {"name": "get_weather", "arguments": '{"c":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        ],
        "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 100, "temperature": 0.5, "stop": ["END"], "seed": 7,
    })
    assert {
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather here?"},
                                         {"image": {"format": "png", "source": {"bytes": PNG}}}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather",
                                                           "input": {"c": "Oslo"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "rain"}]}}]},
        ],
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}],
                       "toolChoice": {"tool": {"name": "get_weather"}}},
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]},
    } == sent


@pytest.mark.parametrize(("model", "extra"), [
    (PROFILE, {"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    ("amazon.nova-pro-v1:0", None),
], ids=["anthropic-model", "other-model"])
def test_reasoning_is_a_model_field_for_anthropic_models_only(model: str, extra: Any) -> None:
    sent = from_openai({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "medium",
                        "max_tokens": 100}, model)
    assert extra == sent.get("additionalModelRequestFields")
    assert (3072 if extra else 100) == sent["inferenceConfig"]["maxTokens"]


def test_tool_choice_none_leaves_the_tools_out_unless_history_needs_them() -> None:
    plain = from_openai({"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER], "tool_choice": "none"})
    assert "toolConfig" not in plain
    history = from_openai({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}], "tools": [WEATHER], "tool_choice": "none"})
    assert {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]} == (
        history["toolConfig"])


def test_an_image_by_url_is_a_clear_400() -> None:
    with pytest.raises(BadRequest, match="bytes, not by URL"):
        from_openai({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})


def test_a_converse_request_round_trips_through_the_ir() -> None:
    body = from_openai({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
                        "tools": [WEATHER], "tool_choice": "required", "max_tokens": 9, "top_p": 0.5})
    again = BED.encode_request(BED.decode_request(body), PROFILE, False)
    assert body == again
    assert (("get_weather",), 9) == (BED.tool_names(body), BED.output_cap(body))


@pytest.mark.parametrize(("status", "body", "kind"), [
    (400, {"message": "Malformed input request"}, "invalid_request"),
    (403, {"Message": "User is not authorized"}, "permission"),
    (404, {"message": "Model not found"}, "not_found"),
    (408, {"message": "Model timed out"}, "timeout"),
    (424, {"message": "Model errored"}, "api_error"),
    (429, {"message": "Too many requests"}, "rate_limit"),
    (503, {"message": "Service unavailable"}, "overloaded"),
])
def test_bedrock_error_answers_are_read_by_status(status: int, body: dict[str, str], kind: str) -> None:
    err = BED.decode_error(status, orjson.dumps(body))
    assert (status, kind, next(iter(body.values()))) == (err.status, err.kind, err.message)


def test_a_bedrock_error_reaches_an_anthropic_client_in_its_shape() -> None:
    status, out = translate_error("anthropic", BED, 429, b'{"message":"Too many tokens"}')
    assert (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Too many tokens"}}) == (
        status, orjson.loads(out))


def test_a_stream_exception_frame_is_an_in_band_error() -> None:
    events = BED.stream_decoder().feed(fake_bedrock.event("messageStart", {"role": "assistant"})
                                       + fake_bedrock.exception("throttlingException", "Slow down"))
    assert isinstance(events[-1], ir.Failed)
    assert ("rate_limit", 429, "Slow down") == (events[-1].error.kind, events[-1].error.status,
                                                events[-1].error.message)


# --- the flavour and its config -----------------------------------------------------------------


def provider(**kw: Any) -> Provider:
    return Provider.model_validate({"name": "bed", "protocol": "bedrock-converse",
                                    "base_url": "https://bedrock-runtime.us-east-1.amazonaws.com", **kw})


KEYS = {"region": "us-east-1", "access_key_id": {"env": "TG_UT_AWS_ID"}, "secret_access_key": {"env": "TG_UT_AWS_SK"}}


@pytest.mark.parametrize(("model", "path"), [
    (PROFILE, "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream"),
    ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
     "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3/converse-stream"),
])
def test_the_model_id_is_escaped_whole_in_the_path(model: str, path: str) -> None:
    assert path == BED.upstream_path("", Kind.CHAT, model, stream=True, sse=True)


def test_sigv4_keys_sign_the_final_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """With keys: no credential header of its own; the signature over host, path and body, a session token too."""
    monkeypatch.setenv("TG_UT_AWS_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("TG_UT_AWS_SK", "secret")
    monkeypatch.setenv("TG_UT_AWS_TOKEN", "token")
    f = for_provider(provider(aws={**KEYS, "session_token": {"env": "TG_UT_AWS_TOKEN"}}))
    assert isinstance(f, BedrockFlavour) and f.needs_body
    assert {} == f.credential(BED, None)
    signed = f.sign("/model/x/converse", {}, b"{}")
    assert signed["x-amz-security-token"] == "token"
    assert signed["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f.sign("/model/x/converse", {}, b"{}")["authorization"] != f.sign("/model/x/converse", {}, b"{ }")[
        "authorization"]


def test_an_api_key_is_a_bearer_token_and_the_body_is_left_alone() -> None:
    """Without aws: the codec's own credential; with aws: {region} and an api_key, the flavour's, body unread."""
    assert {"authorization": "Bearer k"} == BED.credential("k")
    f = for_provider(provider(aws={"region": "eu-west-1"}, api_key={"env": "X"}))
    assert isinstance(f, BedrockFlavour) and not f.needs_body
    assert ({"authorization": "Bearer k"}, {}) == (f.credential(BED, "k"), f.sign("/", {}, b""))


def test_keys_missing_from_the_environment_leave_the_request_unsigned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_UT_AWS_ID", raising=False)
    f = for_provider(provider(aws=KEYS), Path("."))
    assert isinstance(f, BedrockFlavour) and f.signer is None and {} == f.sign("/", {}, b"")


@pytest.mark.parametrize(("kw", "message"), [
    ({"aws": {"region": "us-east-1", "access_key_id": {"env": "A"}}}, "give both"),
    ({"aws": {"region": "us-east-1", "session_token": {"env": "T"}}, "api_key": {"env": "K"}}, "session_token"),
    ({"aws": KEYS, "api_key": {"env": "K"}}, "one of the two"),
    ({"aws": {"region": "us-east-1"}}, "one of the two"),
    ({"aws": {"region": "Virginia"}, "api_key": {"env": "K"}}, "pattern"),
    ({"aws": KEYS, "protocol": "gemini"}, "AWS Bedrock serves protocol anthropic or bedrock-converse, not gemini"),
])
def test_the_aws_section_is_checked(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        provider(**kw)




def test_the_aws_bedrock_preset_takes_an_api_key_or_sigv4_keys() -> None:
    """Three lines with a Bedrock API key from $AWS_BEARER_TOKEN_BEDROCK; SigV4 keys instead leave api_key unset."""
    bearer = Provider.model_validate({"name": "b", "preset": "aws-bedrock", "params": {"region": "eu-west-3"}})
    signed = Provider.model_validate({"name": "b", "preset": "aws-bedrock", "params": {"region": "eu-west-3"},
                                      "aws": {k: v for k, v in KEYS.items() if k != "region"}})
    assert ("AWS_BEARER_TOKEN_BEDROCK", None) == (bearer.api_key.env if bearer.api_key else None, signed.api_key)
    assert ("eu-west-3", "https://bedrock-runtime.eu-west-3.amazonaws.com") == (signed.aws_region, signed.base_url)


@pytest.mark.parametrize(("body", "cap", "expected"), [
    ({"inferenceConfig": {"maxTokens": 9000}}, 4096, {"inferenceConfig": {"maxTokens": 4096}}),
    ({"inferenceConfig": {"maxTokens": 100}}, 4096, {"inferenceConfig": {"maxTokens": 100}}),
    ({"messages": []}, 4096, {"messages": [], "inferenceConfig": {"maxTokens": 4096}}),
    ({"inferenceConfig": {"maxTokens": 9000}, "additionalModelRequestFields": {"thinking": {"type": "enabled",
                                                                                             "budget_tokens": 8000}}},
     4096, {"inferenceConfig": {"maxTokens": 4096},
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 4095}}}),
    ({"inferenceConfig": {"maxTokens": 9000}, "additionalModelRequestFields": {"thinking": {"budget_tokens": 8000},
                                                                                "top_k": 5}},
     1000, {"inferenceConfig": {"maxTokens": 1000}, "additionalModelRequestFields": {"top_k": 5}}),
], ids=["lowered", "kept", "set", "budget-below", "thinking-off"])
def test_a_deployments_output_cap_lowers_max_tokens_and_the_thinking_budget(body: dict[str, Any], cap: int,
                                                                           expected: dict[str, Any]) -> None:
    assert expected == BED.limit_output(body, cap)


# --- InvokeModel: the Anthropic answer inside Bedrock's framing -------------------------------------------


def _invoke(monkeypatch: pytest.MonkeyPatch) -> BedrockFlavour:
    monkeypatch.setenv("TG_UT_AWS_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("TG_UT_AWS_SK", "secret")
    f = for_provider(Provider.model_validate({"name": "c", "protocol": "anthropic", "aws": KEYS,
                                              "base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"}))
    assert isinstance(f, BedrockFlavour)
    return f


def test_invoke_model_paths_and_body(monkeypatch: pytest.MonkeyPatch) -> None:
    f, ant = _invoke(monkeypatch), REGISTRY.get("anthropic")
    assert "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream" == f.upstream_path(
        ant, "", Kind.CHAT, PROFILE, stream=True, sse=True)
    body = {"model": "x", "stream": True, "max_tokens": 5, "messages": []}
    assert {"max_tokens": 5, "messages": [], "anthropic_version": "bedrock-2023-05-31"} == f.body(ant, body, Kind.CHAT,
                                                                                                 True)
    assert "application/vnd.amazon.eventstream" == f.stream_content_type(ant)


ANT_EVENTS = [{"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "héllo"}},
              {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}]


def _chunk(doc: dict[str, Any]) -> bytes:
    import base64

    return fake_bedrock.encode_frame({":event-type": "chunk", ":message-type": "event"},
                                     orjson.dumps({"bytes": base64.b64encode(orjson.dumps(doc)).decode()}))


@pytest.mark.parametrize("size", [1, 7, 10_000], ids=["byte-by-byte", "small-chunks", "whole"])
def test_an_invoke_stream_becomes_anthropics_sse_under_any_chunking(monkeypatch: pytest.MonkeyPatch,
                                                                    size: int) -> None:
    """Each chunk frame is one Anthropic event, sent on as SSE; an exception frame is Anthropic's in-band error."""
    rf = _invoke(monkeypatch).reframe(REGISTRY.get("anthropic"), Kind.CHAT, 200, True)
    assert rf is not None
    raw = b"".join(_chunk(d) for d in ANT_EVENTS) + fake_bedrock.exception("throttlingException", "Slow down")
    out = b"".join(rf.feed(raw[i:i + size]) for i in range(0, len(raw), size)) + rf.flush()
    expected = b"".join(b"event: " + d["type"].encode() + b"\ndata: " + orjson.dumps(d) + b"\n\n" for d in ANT_EVENTS)
    assert expected + b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}' \
        b"\n\n" == out


def test_an_invoke_error_becomes_anthropics_error_body(monkeypatch: pytest.MonkeyPatch) -> None:
    rf = _invoke(monkeypatch).reframe(REGISTRY.get("anthropic"), Kind.CHAT, 503, False)
    assert rf is not None
    assert b"" == rf.feed(b'{"message":"Bedrock is ') + rf.feed(b'unavailable"}')
    assert {"type": "error", "error": {"type": "overloaded_error", "message": "Bedrock is unavailable"}} == (
        orjson.loads(rf.flush()))
    assert _invoke(monkeypatch).reframe(REGISTRY.get("anthropic"), Kind.CHAT, 200, False) is None  # a whole answer is Anthropic's


def test_a_reframed_passthrough_hands_the_client_the_unwrapped_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same protocol: the Anthropic caller gets the events as SSE, usage read from them, the stream complete."""
    from translator.responses import handler_for

    ant = REGISTRY.get("anthropic")
    h = handler_for(ant, ant, 200, stream=True, sse=True, include_usage=True, model="m", tool_names=(),
                    reframer=_invoke(monkeypatch).reframe(ant, Kind.CHAT, 200, True))
    raw = b"".join(_chunk(d) for d in ANT_EVENTS)
    out = (h.feed(raw[:40]) or b"") + (h.feed(raw[40:]) or b"") + (h.flush() or b"")
    assert out.startswith(b"event: message_start\ndata: ") and out.endswith(b"event: message_stop\ndata: " + orjson.dumps(
        ANT_EVENTS[-1]) + b"\n\n")
    assert (3, True) == (h.usage.input, h.complete)


def test_the_demo_renders_bedrock_routes_that_set_the_callers_stream_type(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/demo.yaml's Bedrock models: every caller's direct route takes the Lua that sets its stream's content
    type (Converse for every caller; InvokeModel for the Anthropic caller too, whose answer passes through)."""
    import yaml

    from core.config import load
    from tokengate.render import render, translator_addresses

    root = Path(__file__).resolve().parents[2]
    cfg = load(root / "examples/demo.yaml")
    doc = yaml.safe_load(render(cfg, source="x", addresses=translator_addresses(cfg, 1)))
    routes = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    lua = {r["name"]: r["typed_per_filter_config"].get("tokengate.status", {}).get("name") for r in routes
           if r["name"].startswith("direct/") and "/bedrock-" in r["name"]}
    assert {f"direct/{c}/{m}": f"status/{c}/typed" for c in ("openai", "anthropic", "gemini", "openai-responses")
            for m in ("bedrock-nova", "bedrock-claude")} == lua


@pytest.mark.parametrize("protocol", ["bedrock-converse", "anthropic"])
def test_a_bedrock_model_without_a_price_gets_genai_prices_aws_price(protocol: str) -> None:
    """Bedrock's own prices from the catalogue (provider aws), for Converse and for Claude through InvokeModel."""
    from core.config import parse

    cfg = parse({"providers": [{"name": "b", "protocol": protocol, "api_key": {"env": "K"}, "aws": {},
                                "base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"}],
                 "deployments": [{"name": "d", "provider": "b", "model": PROFILE}],
                 "models": [{"name": "claude", "deployments": ["d"]}]}, "test")
    assert cfg.prices()["claude"].source.startswith("genai-prices:aws/")
