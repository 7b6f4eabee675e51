"""The request the gateway builds for an Azure OpenAI provider (``translator/flavours/azure.py``), its config
checks, and Azure's errors as the OpenAI codecs read them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from core.config import Azure, Provider
from core.protocols import Protocol
from translator.endpoints import Kind
from translator.extproc.upstream import attempt_headers
from translator.flavours.azure import AzureFlavour
from translator.protocols import REGISTRY
from translator.protocols.openai import errors as openai_errors
from translator.protocols.openai import response as openai_response
from translator.protocols.openai import stream as openai_stream
from translator.protocols.openai_responses import errors as responses_errors
from translator.state import Target

DEPLOYMENTS = Azure(api="deployments", api_version="2024-10-21")
V1 = Azure(api="v1")
CLIENT = ("content-type", "api-key", "authorization", "x-request-id")


def target(protocol: str, azure: Azure, base_path: str = "", key: str | None = "k3y") -> Target:
    p = Protocol(protocol)
    return Target("az", p, REGISTRY.get(p), "gpt4o-prod", base_path, key, AzureFlavour(azure))


@pytest.mark.parametrize(("protocol", "azure", "kind", "base_path", "path"), [
    ("openai", DEPLOYMENTS, Kind.CHAT, "",
     "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"),
    ("openai", DEPLOYMENTS, Kind.EMBED_BATCH, "", "/openai/deployments/gpt4o-prod/embeddings?api-version=2024-10-21"),
    ("openai", V1, Kind.CHAT, "", "/openai/v1/chat/completions"),
    ("openai", V1, Kind.EMBED_BATCH, "", "/openai/v1/embeddings"),
    ("openai-responses", V1, Kind.CHAT, "", "/openai/v1/responses"),
    ("openai", V1, Kind.CHAT, "/proxy", "/proxy/openai/v1/chat/completions"),
], ids=["deployments-chat", "deployments-embeddings", "v1-chat", "v1-embeddings", "v1-responses",
        "v1-under-a-base-path"])
def test_path_query_and_api_key(protocol: str, azure: Azure, kind: Kind, base_path: str, path: str) -> None:
    """Each URL style's path and query; the key in api-key, never as a bearer token."""
    caller = REGISTRY.get(Protocol(protocol))
    headers, remove = attempt_headers(caller, kind, False, True, target(protocol, azure, base_path), CLIENT)
    assert {":path": path, "api-key": "k3y"} == headers
    assert "authorization" in remove  # a caller's credential never goes on
    assert "api-key" not in remove


def test_a_translated_attempt_gets_the_same_request_line() -> None:
    """An Anthropic caller's attempt to an Azure deployment: Azure's path and api-key, JSON body."""
    headers, _ = attempt_headers(REGISTRY.get(Protocol.ANTHROPIC), Kind.CHAT, True, True,
                                 target("openai", DEPLOYMENTS), ("content-type",))
    assert "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21" == headers[":path"]
    assert ("k3y", "application/json") == (headers["api-key"], headers["content-type"])


def test_no_key_no_header() -> None:
    headers, _ = attempt_headers(REGISTRY.get(Protocol.OPENAI), Kind.CHAT, False, True,
                                 target("openai", V1, key=None), ())
    assert {":path": "/openai/v1/chat/completions"} == headers


def test_a_deployment_name_is_escaped_in_the_path() -> None:
    t = Target("az", Protocol.OPENAI, REGISTRY.get(Protocol.OPENAI), "my dep/1", "", None, AzureFlavour(DEPLOYMENTS))
    headers, _ = attempt_headers(REGISTRY.get(Protocol.OPENAI), Kind.CHAT, False, True, t, ())
    assert "/openai/deployments/my%20dep%2F1/chat/completions?api-version=2024-10-21" == headers[":path"]


BASE = {"name": "az", "base_url": "https://res.openai.azure.com", "api_key": {"env": "AZ"}}


@pytest.mark.parametrize(("doc", "expected"), [
    ({"protocol": "openai", "azure": {"api": "deployments"}}, "'api_version' is needed"),
    ({"protocol": "openai", "azure": {"api": "v1", "api_version": "2024-10-21"}}, "'api_version' is needed"),
    ({"protocol": "openai", "azure": {"api": "deployments", "api_version": "latest"}}, "should match pattern"),
    ({"protocol": "openai", "azure": {"api": "classic"}}, "'deployments' or 'v1'"),
    ({"protocol": "anthropic", "azure": {"api": "v1"}}, "v1 API serves protocol openai or openai-responses, not anthropic"),
    ({"protocol": "openai-responses", "azure": {"api": "deployments", "api_version": "2024-10-21"}},
     "deployments API serves protocol openai, not openai-responses"),
    ({"protocol": "openai", "azure": {"api": "v1", "auth": "entra"}}, "Extra inputs are not permitted"),
], ids=["deployments-without-version", "v1-with-version", "bad-version", "unknown-api", "not-openai",
        "responses-on-deployments", "unknown-field"])
def test_bad_azure_config_is_refused(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Provider.model_validate({**BASE, **doc})


def test_good_azure_configs_load() -> None:
    p = Provider.model_validate({**BASE, "protocol": "openai",
                                 "azure": {"api": "deployments", "api_version": "2025-01-01-preview"}})
    assert p.azure == Azure(api="deployments", api_version="2025-01-01-preview")
    assert Provider.model_validate({**BASE, "protocol": "openai-responses", "azure": {}}).azure == V1


FILTERED = orjson.dumps({"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"},
        "jailbreak": {"filtered": True, "detected": True}}}}})


@pytest.mark.parametrize("decode", [openai_errors.decode_error, responses_errors.decode_error],
                         ids=["chat", "responses"])
def test_a_filtered_prompt_is_an_invalid_request_saying_so(decode: Any) -> None:
    err = decode(400, FILTERED)
    assert (400, "invalid_request", "content_filter", "prompt") == (err.status, err.kind, err.code, err.param)
    assert err.message.startswith("The prompt was blocked by the provider's content filter (jailbreak, violence): ")
    assert "content management policy" in err.message


def test_azures_401_is_an_authentication_error() -> None:
    err = openai_errors.decode_error(401, b'{"error": {"code": "401", "message": "Access denied due to invalid '
                                          b'subscription key or wrong API endpoint."}}')
    assert (401, "authentication") == (err.status, err.kind)
    assert err.message.startswith("Access denied")


def test_a_filtered_answer_with_azures_extra_fields_is_a_refusal() -> None:
    """prompt_filter_results / content_filter_results are read past; content_filter is the refusal stop."""
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant",
                         "content": "Here is"}, "content_filter_results": {"violence": {"filtered": True}}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    resp = openai_response.decode_response(body)
    assert ("refusal", "content_filter") == (resp.stop.value, resp.native_stop)


def test_a_filtered_azure_stream_is_a_refusal() -> None:
    chunks = [
        {"id": "", "object": "", "created": 0, "model": "", "choices": [],
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Here is"}, "finish_reason": None,
                      "content_filter_results": {}}]},
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                      "content_filter_results": {"violence": {"filtered": True}}}]},
    ]
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    dec = openai_stream.StreamDecoder()
    events = dec.feed(raw) + dec.flush()
    finished = [e for e in events if type(e).__name__ == "Finished"]
    assert ["refusal"] == [e.stop.value for e in finished]  # type: ignore[attr-defined]
