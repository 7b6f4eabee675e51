"""The Bedrock fake checks what AWS checks (a SigV4 signature recomputed by botocore, session tokens, a Bedrock
API key, the Converse body) and speaks its exact wire format: boto3's own bedrock-runtime client, which parses
event streams and their CRCs, reads every answer and error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from fakes import ErrorReply, FakeProvider, Reply, ToolCall, Usage
from fakes import bedrock as fake_bedrock

STATIC, TEMPORARY = list(fake_bedrock.KEYS)
MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0"
HI = [{"role": "user", "content": [{"text": "hi"}]}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as f:
        yield f


_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProvider) -> Iterator[None]:
    fake.reset()
    yield
    while _CLIENTS:  # their connection pools, closed (filterwarnings = error catches an unclosed socket)
        _CLIENTS.pop().close()


def client(fake: FakeProvider, key_id: str = STATIC, secret: str | None = None, token: str | None = None) -> Any:
    known_secret, known_token = fake_bedrock.KEYS.get(key_id, ("x", None))
    c = boto3.client("bedrock-runtime", region_name=fake_bedrock.REGION, endpoint_url=fake.base_url,
                     aws_access_key_id=key_id, aws_secret_access_key=secret or known_secret,
                     aws_session_token=token if token is not None else known_token,
                     config=Config(retries={"total_max_attempts": 1}))
    _CLIENTS.append(c)
    return c


@pytest.mark.parametrize("key_id", [STATIC, TEMPORARY], ids=["static-keys", "session-token"])
@pytest.mark.parametrize("model", [MODEL, ARN], ids=["profile-id", "arn"])
def test_boto3_reads_a_converse_answer(fake: FakeProvider, key_id: str, model: str) -> None:
    """A signed request (the model id escaped in the path) is answered; the usage keeps cache buckets apart."""
    fake.push(Reply(text="Bonjour", usage=Usage(input=10, output=3, cache_read=4)))
    got = client(fake, key_id).converse(modelId=model, messages=HI)
    assert ([{"text": "Bonjour"}], "end_turn") == (got["output"]["message"]["content"], got["stopReason"])
    assert {"inputTokens": 10, "outputTokens": 3, "totalTokens": 17, "cacheReadInputTokens": 4} == got["usage"]
    assert fake.requests[-1].path.startswith("/model/" + ("arn%3Aaws" if model == ARN else "us.anthropic"))


def test_boto3_reads_a_converse_stream_with_a_tool_call(fake: FakeProvider) -> None:
    """Event-stream frames with their CRCs, as botocore's parser checks them: text, a tool call, stop, usage."""
    fake.push(Reply(text="Let me look.", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="tu1")],
                    usage=Usage(input=7, output=5)))
    stream = client(fake).converse_stream(modelId=MODEL, messages=HI, toolConfig={"tools": [
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]})["stream"]
    events = list(stream)
    names = [next(iter(e)) for e in events]
    assert "messageStart" == names[0] and ["messageStop", "metadata"] == names[-2:]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    args = "".join(e["contentBlockDelta"]["delta"].get("toolUse", {}).get("input", "")
                   for e in events if "contentBlockDelta" in e)
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e]
    assert ("Let me look.", '{"city":"Paris"}', [{"toolUseId": "tu1", "name": "get_weather"}]) == (text, args, starts)
    assert ("tool_use", 12) == (events[-2]["messageStop"]["stopReason"], events[-1]["metadata"]["usage"]["totalTokens"])


def test_an_in_stream_exception_is_an_exception_frame(fake: FakeProvider) -> None:
    """After some events, a scripted error is a throttlingException frame boto3 raises."""
    fake.push(Reply(text="one two three", error=ErrorReply(429, "Too many tokens, please wait."), error_after=2))
    stream = client(fake).converse_stream(modelId=MODEL, messages=HI)["stream"]
    with pytest.raises(EventStreamError) as info:
        list(stream)
    stream.close()
    assert "throttlingException" in str(info.value) and "Too many tokens" in str(info.value)


@pytest.mark.parametrize(("status", "name"), [(429, "ThrottlingException"), (400, "ValidationException"),
                                              (503, "ServiceUnavailableException"), (403, "AccessDeniedException")])
def test_an_http_error_names_its_exception(fake: FakeProvider, status: int, name: str) -> None:
    fake.push(Reply(error=ErrorReply(status, "nope")))
    with pytest.raises(ClientError) as info:
        client(fake).converse(modelId=MODEL, messages=HI)
    assert (name, "nope", status) == (info.value.response["Error"]["Code"], info.value.response["Error"]["Message"],
                                      info.value.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize(("kw", "code"), [
    ({"secret": "wrong/secret"}, "InvalidSignatureException"),
    ({"key_id": "AKIAUNKNOWN000000000"}, "UnrecognizedClientException"),
    ({"key_id": TEMPORARY, "token": ""}, "UnrecognizedClientException"),
], ids=["wrong-secret", "unknown-key", "missing-session-token"])
def test_a_wrong_credential_is_awss_403(fake: FakeProvider, kw: dict[str, str], code: str) -> None:
    with pytest.raises(ClientError) as info:
        client(fake, **kw).converse(modelId=MODEL, messages=HI)
    err = info.value.response
    assert (403, code) == (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"])
    if code == "InvalidSignatureException":
        assert err["Error"]["Message"].startswith("The request signature we calculated does not match")


def test_a_changed_body_breaks_the_signature(fake: FakeProvider) -> None:
    """The signature covers the body: a body changed after signing is refused."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{fake.base_url}/model/{MODEL.replace(':', '%3A')}/converse"
    req = AWSRequest(method="POST", url=url, data=b'{"messages":[]}', headers={"content-type": "application/json"})
    SigV4Auth(Credentials(STATIC, fake_bedrock.KEYS[STATIC][0]), "bedrock", fake_bedrock.REGION).add_auth(req)
    headers = dict(req.headers.items())
    ok = httpx.post(url, headers=headers, content=b'{"messages":[]}')
    bad = httpx.post(url, headers=headers, content=b'{"messages":[1]}')
    assert (400, "ValidationException") == (ok.status_code, ok.headers["x-amzn-errortype"].split(":")[0])
    assert (403, "InvalidSignatureException") == (bad.status_code, bad.headers["x-amzn-errortype"].split(":")[0])


@pytest.mark.parametrize(("auth", "status", "code"), [
    (f"Bearer {fake_bedrock.API_KEY}", 200, None),
    ("Bearer ABSKwrong", 403, "UnrecognizedClientException"),
    (None, 403, "MissingAuthenticationTokenException"),
], ids=["api-key", "wrong-api-key", "no-credential"])
def test_a_bedrock_api_key_is_a_bearer_token(fake: FakeProvider, auth: str | None, status: int,
                                              code: str | None) -> None:
    headers = {"authorization": auth} if auth else {}
    r = httpx.post(f"{fake.base_url}/model/{MODEL}/converse", headers=headers, json={"messages": HI})
    assert (status, code) == (r.status_code, r.headers.get("x-amzn-errortype", "").split(":")[0] or None)


@pytest.mark.parametrize(("body", "message"), [
    ({"model": MODEL, "messages": HI}, "extraneous key [model]"),
    ({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}, "must start with a user message"),
    ({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}, "exactly one member"),
    ({"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]}]},
     "toolConfig field must be defined"),
])
def test_converse_refuses_what_bedrock_refuses(fake: FakeProvider, body: dict[str, Any], message: str) -> None:
    r = httpx.post(f"{fake.base_url}/model/{MODEL}/converse", json=body,
                   headers={"authorization": f"Bearer {fake_bedrock.API_KEY}"})
    assert (400, "ValidationException") == (r.status_code, r.headers["x-amzn-errortype"].split(":")[0])
    assert message in r.json()["message"]


INVOKE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
               "messages": [{"role": "user", "content": "hi"}]}


def test_boto3_reads_invoke_model_and_its_stream(fake: FakeProvider) -> None:
    """InvokeModel answers Anthropic's message; the stream is chunk frames of base64 Anthropic events, the last
    one with Bedrock's invocation metrics."""
    import json

    c = client(fake)
    fake.push(Reply(text="Hello", usage=Usage(input=5, output=1)))
    whole = json.loads(c.invoke_model(modelId=MODEL, body=json.dumps(INVOKE_BODY))["body"].read())
    assert ("message", [{"type": "text", "text": "Hello"}], MODEL) == (whole["type"], whole["content"], whole["model"])
    fake.push(Reply(text="Hello there"))
    stream = c.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(INVOKE_BODY))["body"]
    events = [json.loads(e["chunk"]["bytes"]) for e in stream]
    assert "message_start" == events[0]["type"] and "message_stop" == events[-1]["type"]
    assert "amazon-bedrock-invocationMetrics" in events[-1]
    assert "Hello there" == "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


@pytest.mark.parametrize(("change", "message"), [
    ({"model": MODEL}, "extraneous key [model]"), ({"stream": True}, "extraneous key [stream]"),
    ({"anthropic_version": "2023-06-01"}, "anthropic_version must be 'bedrock-2023-05-31'"),
], ids=["model", "stream", "version"])
def test_invoke_model_refuses_what_bedrock_refuses(fake: FakeProvider, change: dict[str, Any], message: str) -> None:
    r = httpx.post(f"{fake.base_url}/model/{MODEL}/invoke", json={**INVOKE_BODY, **change},
                   headers={"authorization": f"Bearer {fake_bedrock.API_KEY}"})
    assert (400, "ValidationException") == (r.status_code, r.headers["x-amzn-errortype"].split(":")[0])
    assert message in r.json()["message"]


def test_boto3_counts_tokens_of_an_invoke_model_body(fake: FakeProvider) -> None:
    """CountTokens takes the InvokeModel body as a blob (base64 in the JSON, as boto3 sends it)."""
    import json

    got = client(fake).count_tokens(modelId="anthropic.claude-3-5-sonnet-20241022-v2:0",
                                    input={"invokeModel": {"body": json.dumps(INVOKE_BODY).encode()}})
    assert 1 + 3 == got["inputTokens"]  # "hi": one word, and the fake's overhead
