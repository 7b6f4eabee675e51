"""AWS Bedrock Runtime's Converse and InvokeModel APIs, as bedrock-runtime.<region>.amazonaws.com answers them.

    POST /model/{modelId}/converse                       a ConverseResponse (JSON)
    POST /model/{modelId}/converse-stream                an AWS event stream (application/vnd.amazon.eventstream)
    POST /model/{modelId}/invoke                         an Anthropic model's own answer (Messages JSON)
    POST /model/{modelId}/invoke-with-response-stream    event-stream ``chunk`` frames, each ``{"bytes": <base64
                                                         of one Anthropic stream event's JSON>}``
    POST /model/{modelId}/count-tokens                   ``{"inputTokens": n}`` for ``{"input": {"invokeModel":
                                                         {"body": <base64 of an InvokeModel body>}}}``

The model id travels URL-escaped (an inference profile's ``:``, an ARN's ``/``). Checked as AWS checks them:

- the credential: a SigV4 ``Authorization`` recomputed with botocore's own signer (an implementation
  independent of the gateway's) for the keys the fake knows (``KEYS``; a session token where the keys are
  temporary) over the headers the request says it signed, its path and its body — a mismatch is AWS's 403
  ``InvalidSignatureException``; an unknown key id or a missing or wrong session token 403
  ``UnrecognizedClientException``; an ``x-amz-date`` more than 5 minutes off 403 ``InvalidSignatureException``
  (signature expired); no credential at all 403 ``MissingAuthenticationTokenException``. Or a Bedrock API key
  as ``Authorization: Bearer`` (``API_KEY``).
- the body: only ConverseRequest's members (no ``model``, no ``stream``), a conversation that starts with a user
  message and alternates, one member per content block, images in Bedrock's formats with base64 bytes, and a
  ``toolConfig`` whenever the history holds tool blocks — a ``ValidationException`` (400) otherwise. InvokeModel:
  Anthropic's Messages body with ``anthropic_version: bedrock-2023-05-31`` and without ``model`` or ``stream``
  (then the Anthropic fake's own checks).

Errors are ``{"message": …}`` with the exception's name in ``x-amzn-ErrorType``; a stream's error after some
events is an exception frame (``:message-type: exception``, ``:exception-type: throttlingException`` …). Frames
carry AWS's prelude and message CRC32s and a ``p`` padding field in each payload, as Bedrock's do.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import re
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import orjson

from fakes.anthropic import AnthropicCodec
from fakes.codec import (
    Answer,
    BadRequest,
    Call,
    Codec,
    Kind,
    Route,
    collect_text,
    json_object,
    json_pieces,
    random_id,
    signature,
    text_pieces,
)
from fakes.http import Header, Response
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply, Usage

# Keys the fake knows: access key id -> (secret, session token or None). The second pair is temporary.
KEYS: dict[str, tuple[str, str | None]] = {
    "AKIAFAKEBEDROCK00001": ("fake/Secret+Key/for/Bedrock/0000000000001", None),
    "ASIAFAKEBEDROCK00002": ("fake/Secret+Key/for/Bedrock/0000000000002", "FwoGZXIvYXdzEFAKE//session+token="),
}
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1mYWtlLWtleS0wMDAx"  # a Bedrock API key (bearer)
REGION = "us-east-1"
SERVICE = "bedrock"
MAX_SKEW_S = 300
_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream|invoke|invoke-with-response-stream"
                   r"|count-tokens)$")
ANTHROPIC_VERSION = "bedrock-2023-05-31"
# The model ids and ARNs Converse takes (simplified from botocore's ConversationalModelId pattern).
_MODEL_ID = re.compile(r"^(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{0,12}:[a-z-]+/[a-zA-Z0-9-:._/]+"
                       r"|[a-zA-Z0-9-:._]+)$")
_REQUEST_MEMBERS = frozenset({"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
                              "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
                              "requestMetadata", "performanceConfig", "serviceTier", "outputConfig"})
_BLOCKS = frozenset({"text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent",
                     "cachePoint", "reasoningContent", "citationsContent", "searchResult"})
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_EXCEPTIONS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}
_STREAM_EXCEPTIONS = {400: "validationException", 424: "modelStreamErrorException", 429: "throttlingException",
                      500: "internalServerException", 503: "serviceUnavailableException"}
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
_SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                       "Secret Access Key and signing method. Consult the service documentation for details.")


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths, CRC32), string headers, payload, message CRC32."""
    head = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        head += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: Mapping[str, Any]) -> bytes:
    """An event frame as Bedrock sends one (a ``p`` field pads the payload)."""
    body = {**payload, "p": _PAD[: 1 + len(name) % len(_PAD)]}
    return encode_frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                        orjson.dumps(body))


def exception(name: str, message: str) -> bytes:
    """An exception frame (``name``: the stream member, e.g. ``throttlingException``)."""
    return encode_frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                        orjson.dumps({"message": message}))


def error(status: int, name: str, message: str) -> Response:
    return Response(status, [(b"content-type", b"application/json"),
                             (b"x-amzn-requestid", random_id("", 32).encode()),
                             (b"x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode())],
                    [orjson.dumps({"message": message})])


# --- the credential -------------------------------------------------------------------------


def check_auth(request: RecordedRequest, api_key: str = API_KEY) -> Response | None:
    """None when the request is authenticated as AWS would have it; else AWS's 403."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer "):
        if auth[7:] != api_key:
            return error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        return None
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in p)
    key_id, _, scope = fields.get("Credential", "").partition("/")
    known = KEYS.get(key_id)
    token = request.headers.get("x-amz-security-token")
    if known is None or known[1] != token:
        return error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stamp = request.headers.get("x-amz-date", "")
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return error(403, "IncompleteSignatureException", "Authorization header requires existence of either a "
                     "'X-Amz-Date' or a 'Date' header.")
    if skew > MAX_SKEW_S:
        return error(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than the time "
                     "allowed (5 minutes of skew).")
    day, region, service, _ = (scope.split("/") + ["", "", "", ""])[:4]
    if (region, service) != (REGION, SERVICE) or day != stamp[:8]:
        return error(403, "InvalidSignatureException", f"Credential should be scoped to a valid region and service "
                     f"({REGION}/{SERVICE}).")
    if _botocore_authorization(request, key_id, known, fields.get("SignedHeaders", ""), stamp, region) != auth:
        return error(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)
    return None


def _botocore_authorization(request: RecordedRequest, key_id: str, known: tuple[str, str | None], signed: str,
                            stamp: str, region: str) -> str:
    """The Authorization botocore computes for this request, signing the headers the request says it signed."""
    from botocore.awsrequest import AWSRequest  # a test dependency: only a Bedrock request pays for the import
    from botocore.credentials import Credentials

    names = [n for n in signed.split(";") if n]
    headers = {n: request.headers.get(n, "") for n in names if n not in ("x-amz-date", "x-amz-security-token")}
    aws = AWSRequest(method=request.method, url=f"http://{request.headers.get('host', '')}{request.target}",
                     data=request.body, headers=headers)
    return botocore_sign(aws, Credentials(key_id, known[0], known[1]), region, stamp)


def botocore_sign(aws: Any, credentials: Any, region: str, stamp: str) -> str:
    """botocore's ``SigV4Auth.add_auth`` at the instant ``stamp`` (add_auth itself signs at the present second)."""
    from botocore.auth import SigV4Auth

    signer = SigV4Auth(credentials, SERVICE, region)
    aws.context["timestamp"] = stamp
    signer._modify_request_before_signing(aws)
    signature = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    signer._inject_signature_to_request(aws, signature)
    return str(aws.headers["Authorization"])


# --- Converse ---------------------------------------------------------------------------------


def route(request: RecordedRequest, api_key: str = API_KEY) -> Route | Response:
    """The route for a ``/model/…`` request, or the error Bedrock would answer with."""
    denied = check_auth(request, api_key)
    if denied is not None:
        return denied
    match = _PATH.fullmatch(request.path) if request.method == "POST" else None
    if match is None:
        return error(404, "UnknownOperationException", "Unknown operation")
    model = unquote(match["model"])
    if not _MODEL_ID.fullmatch(model):
        return error(400, "ValidationException", f"1 validation error detected: Value '{model}' at 'modelId' failed "
                     "to satisfy constraint: Member must satisfy regular expression pattern")
    op = match["op"]
    if op == "count-tokens":
        return Route(INVOKE, Kind.COUNT, model=model)
    codec = INVOKE if op.startswith("invoke") else CONVERSE
    return Route(codec, Kind.GENERATE, model=model, stream=op.endswith("stream"))


def _check_blocks(blocks: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BadRequest(f"1 validation error detected: Value at '{where}' failed to satisfy constraint: "
                         "Member must be a list of content blocks")
    for b in blocks:
        if len(b) != 1 or next(iter(b)) not in _BLOCKS:
            raise BadRequest(f"A content block of {where} must set exactly one member, not {sorted(b)}")
        if "image" in b:
            img = b["image"]
            src = img.get("source") if isinstance(img, dict) else None
            if not isinstance(src, dict) or img.get("format") not in _IMAGE_FORMATS:
                raise BadRequest("The image format must be png, jpeg, gif or webp, with a source")
            try:
                base64.b64decode(str(src.get("bytes", "")), validate=True)
            except binascii.Error:
                raise BadRequest("Invalid base64 in image.source.bytes") from None
    return blocks


def check_request(body: Mapping[str, Any]) -> None:
    """What Converse refuses with a ValidationException."""
    extra = sorted(set(body) - _REQUEST_MEMBERS)
    if extra:
        raise BadRequest(f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please reformat "
                         "your input and try again.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("The messages field is required and must not be empty")
    tools = False
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") != ("user" if i % 2 == 0 else "assistant"):
            raise BadRequest("A conversation must start with a user message and alternate between user and "
                             "assistant roles. Try again with a conversation that starts with a user message.")
        blocks = _check_blocks(m.get("content"), f"messages.{i + 1}.member.content")
        tools = tools or any("toolUse" in b or "toolResult" in b for b in blocks)
    if tools and not isinstance(body.get("toolConfig"), dict):
        raise BadRequest("The toolConfig field must be defined when using toolUse and toolResult content blocks.")


class ConverseCodec(Codec):
    name = "bedrock-converse"
    json_headers = ((b"content-type", b"application/json"),)
    sse_headers = ((b"content-type", b"application/vnd.amazon.eventstream"),)

    def request_id_headers(self, request_id: str) -> list[Header]:
        return [(b"x-amzn-requestid", request_id.encode())]

    def new_request_id(self) -> str:
        return random_id("", 32)

    def error_headers(self, err: ErrorReply) -> list[Header]:
        name = err.type or _EXCEPTIONS.get(err.status, "InternalServerException")
        return [(b"x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode())]

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        check_request(body)
        prompt = collect_text(body.get("system"), [])
        last_user: list[str] = []
        for m in body["messages"]:
            texts = collect_text(m.get("content"), [])
            prompt += texts
            if m.get("role") == "user":
                last_user = texts
        return Call(route.kind, route.model or "", stream=route.stream, prompt=" ".join(prompt),
                    last_user=" ".join(last_user))

    def complete(self, call: Call, answer: Answer) -> bytes:
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            content.append({"reasoningContent": {"reasoningText": {"text": answer.reasoning,
                                                                   "signature": signature(answer.reasoning)}}})
        if answer.text:
            content.append({"text": answer.text})
        content += [{"toolUse": {"toolUseId": cid, "name": name, "input": args}} for cid, name, args in _calls(answer)]
        return orjson.dumps({"output": {"message": {"role": "assistant", "content": content}},
                             "stopReason": _stop(answer), "usage": _usage(answer.usage), "metrics": {"latencyMs": 42}})

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        out = [event("messageStart", {"role": "assistant"})]
        index = 0
        if answer.reasoning:
            out += [event("contentBlockDelta", {"delta": {"reasoningContent": {"text": p}}, "contentBlockIndex": index})
                    for p in text_pieces(answer.reasoning)]
            out.append(event("contentBlockDelta", {"delta": {"reasoningContent": {"signature": signature(
                answer.reasoning)}}, "contentBlockIndex": index}))
            out.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if answer.text:
            out += [event("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": index})
                    for p in text_pieces(answer.text)]
            out.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for cid, name, args in _calls(answer):
            out.append(event("contentBlockStart", {"start": {"toolUse": {"toolUseId": cid, "name": name}},
                                                   "contentBlockIndex": index}))
            out += [event("contentBlockDelta", {"delta": {"toolUse": {"input": p}}, "contentBlockIndex": index})
                    for p in json_pieces(orjson.dumps(args).decode())]
            out.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        out.append(event("messageStop", {"stopReason": _stop(answer)}))
        out.append(event("metadata", {"usage": _usage(answer.usage), "metrics": {"latencyMs": 42}}))
        return out

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        return orjson.dumps({"message": err.message})

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        name = err.type or _STREAM_EXCEPTIONS.get(err.status, "internalServerException")
        return exception(name[0].lower() + name[1:], err.message)

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        """A scripted event: ``{"type": <event type>, …its payload}``."""
        return event(str(payload.get("type", "")), {k: v for k, v in payload.items() if k != "type"})

    def models(self, names: Sequence[str]) -> bytes:
        return orjson.dumps({"modelSummaries": [{"modelId": n} for n in names]})


def _calls(answer: Answer) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id or random_id("tooluse_", 22), c.name, dict(c.args)) for c in answer.tool_calls]


def _stop(answer: Answer) -> str:
    return answer.finish_reason or ("tool_use" if answer.tool_calls else "end_turn")


def _usage(u: Usage) -> dict[str, int]:
    out = {"inputTokens": u.input, "outputTokens": u.output_total, "totalTokens": u.prompt_total + u.output_total}
    if u.cache_read:
        out["cacheReadInputTokens"] = u.cache_read
    if u.cache_write:
        out["cacheWriteInputTokens"] = u.cache_write
    return out


CONVERSE = ConverseCodec()


class InvokeAnthropicCodec(AnthropicCodec):
    """InvokeModel for an Anthropic model: the Anthropic fake's answers, the model from the path, Bedrock's framing
    of a stream and Bedrock's errors."""

    name = "bedrock-invoke"
    sse_headers = ConverseCodec.sse_headers  # type: ignore[assignment]
    request_id_headers = ConverseCodec.request_id_headers
    error_headers = ConverseCodec.error_headers
    error = ConverseCodec.error
    new_request_id = ConverseCodec.new_request_id

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        if route.kind is Kind.COUNT:  # CountTokens: {"input": {"invokeModel": {"body": <base64 InvokeModel body>}}}
            inner = body.get("input", {}).get("invokeModel", {}) if isinstance(body.get("input"), dict) else {}
            try:
                body = orjson.loads(base64.b64decode(inner.get("body", ""), validate=True))
            except (binascii.Error, orjson.JSONDecodeError, AttributeError):
                raise BadRequest("input.invokeModel.body must be a base64 InvokeModel body") from None
            if not isinstance(body, dict):
                raise BadRequest("input.invokeModel.body must be a base64 InvokeModel body")
        extra = sorted(k for k in ("model", "stream") if k in body)
        if extra:
            raise BadRequest(f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please reformat "
                             "your input and try again.")
        if body.get("anthropic_version") != ANTHROPIC_VERSION:
            raise BadRequest(f"Malformed input request: anthropic_version must be {ANTHROPIC_VERSION!r}")
        named = dataclasses.replace(request, body=orjson.dumps({**body, "model": route.model}))
        if route.kind is Kind.COUNT:
            return super().parse(named, route)
        return dataclasses.replace(super().parse(named, route), stream=route.stream)

    def count(self, call: Call) -> bytes:
        return orjson.dumps({"inputTokens": call.prompt_tokens})

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        return [self._chunk(piece) for piece in super().stream(call, answer) if b"event: ping" not in piece]

    def stream_error(self, call: Call, err: ErrorReply, request_id: str, after: int) -> bytes:
        return CONVERSE.stream_error(call, err, request_id, after)

    def frame(self, payload: Mapping[str, Any]) -> bytes:
        return self._chunk(b"data: " + orjson.dumps(payload) + b"\n\n")

    @staticmethod
    def _chunk(piece: bytes) -> bytes:
        """An Anthropic SSE event as Bedrock streams it: its JSON, base64, in a ``chunk`` frame (the last one with
        Bedrock's invocation metrics)."""
        data = next(line[6:] for line in piece.split(b"\n") if line.startswith(b"data: "))
        doc = orjson.loads(data)
        if doc.get("type") == "message_stop":
            doc["amazon-bedrock-invocationMetrics"] = {"inputTokenCount": 1, "outputTokenCount": 1,
                                                       "invocationLatency": 42, "firstByteLatency": 21}
            data = orjson.dumps(doc)
        return encode_frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                            orjson.dumps({"bytes": base64.b64encode(data).decode(), "p": _PAD[:7]}))


INVOKE = InvokeAnthropicCodec()
