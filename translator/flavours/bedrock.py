"""AWS Bedrock as an upstream: how a provider with ``aws:`` (``core.config.Aws``) is called (docs/providers.md).

    protocol bedrock-converse   <base_url>/model/<modelId>/converse | /converse-stream      (the Converse codec's path)
    protocol anthropic          <base_url>/model/<modelId>/invoke | /invoke-with-response-stream   (InvokeModel)
    credential                  SigV4 (``authorization``, ``x-amz-date``, ``x-amz-security-token``) over the final
                                request, from the keys in ``aws``; or a Bedrock API key (``api_key``) as a bearer

The signature covers the host Envoy sends (the cluster rewrites Host to the provider's host name,
``auto_host_rewrite``), the path as sent and the body bytes, so it is computed last (``sign``), after the body
is final; the body must therefore be read on every attempt (``needs_body``). InvokeModel's body is Anthropic's
Messages body without ``model`` and ``stream`` and with ``anthropic_version: bedrock-2023-05-31`` (``body``);
its answers are Anthropic's, but a stream comes as event-stream frames each holding one Anthropic event and an
error as AWS's ``{"message": …}``: ``reframe`` turns both into Anthropic's own bytes before anything reads them,
so an Anthropic caller still gets its answer passed through (prompt caching, thinking and signatures intact)
and any other caller a translation of it (docs/architecture.md, "Provider flavours").
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import orjson

from core.config import Provider
from translator.endpoints import Kind
from translator.errors import UpstreamError
from translator.eventstream import EventStreamDecoder, Frame
from translator.flavours import Flavour, Json, Reframer
from translator.flavours.sigv4 import Keys, Signer
from translator.protocols.base import Codec
from translator.protocols.bedrock_converse.codec import STREAM_CONTENT_TYPE
from translator.protocols.bedrock_converse.errors import decode_error, decode_exception

SERVICE = "bedrock"  # the signing name of bedrock-runtime (botocore's service model)
ANTHROPIC_VERSION = "bedrock-2023-05-31"


class BedrockFlavour(Flavour):
    def __init__(self, p: Provider, base: Path) -> None:
        aws = p.aws
        assert aws is not None
        self.api = p.protocol.bedrock_api
        self.host = p.host
        self.region = p.aws_region or ""
        self.signer: Signer | None = None
        if aws.access_key_id is not None and aws.secret_access_key is not None:
            key_id, secret = aws.access_key_id.resolve(base), aws.secret_access_key.resolve(base)
            token = aws.session_token.resolve(base) if aws.session_token is not None else None
            if key_id and secret:  # missing keys: the request goes unsigned, and AWS says so (403)
                self.signer = Signer(Keys(key_id, secret, token), self.region, SERVICE)
        self.needs_body = self.signer is not None or self.api == "invoke"

    def __repr__(self) -> str:
        how = "SigV4" if self.signer is not None else "API key"
        return f"BedrockFlavour({self.api}, {self.region}, {how})"

    def upstream_path(self, codec: Codec, base_path: str, kind: Kind, model: str, *, stream: bool,
                      sse: bool) -> str:
        if self.api == "invoke":  # the model id escaped whole, as the Converse codec's path has it
            op = ("count-tokens" if kind is Kind.COUNT_TOKENS else "invoke-with-response-stream" if stream
                  else "invoke")
            return f"{base_path}/model/{quote(model, safe='')}/{op}"
        return codec.upstream_path(base_path, kind, model, stream=stream, sse=sse)

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        if self.signer is not None or not key:
            return {}  # signed in ``sign``
        return {"authorization": f"Bearer {key}"}

    def body(self, codec: Codec, body: Json, kind: Kind, stream: bool) -> Json:
        if self.api != "invoke":
            return body
        out = {k: v for k, v in body.items() if k not in ("model", "stream")}
        out["anthropic_version"] = ANTHROPIC_VERSION
        if kind is Kind.COUNT_TOKENS:  # CountTokens takes the InvokeModel body it would count, as a blob
            out.setdefault("max_tokens", 1)
            return {"input": {"invokeModel": {"body": base64.b64encode(orjson.dumps(out)).decode()}}}
        return out

    def sign(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        if self.signer is None:
            return {}
        return self.signer.headers("POST", self.host, path, body)

    def stream_content_type(self, codec: Codec) -> str:
        return STREAM_CONTENT_TYPE if self.api == "invoke" else codec.stream_content_type

    def reframe(self, codec: Codec, kind: Kind, status: int, stream: bool) -> Reframer | None:
        """InvokeModel's errors are AWS's, its streams event-stream frames around the protocol's events, its token
        counts CountTokens' ``{"inputTokens"}``: each becomes the protocol's own (Converse's are its codec's)."""
        if self.api != "invoke":
            return None
        if status >= 400:
            return error_body(codec, status)
        if kind is Kind.COUNT_TOKENS:
            return token_count(codec)
        return InvokeStream(codec) if stream and status == 200 else None


class InvokeStream:
    """InvokeModelWithResponseStream -> the Anthropic SSE stream it carries: each ``chunk`` frame's ``bytes`` is one
    event's JSON, sent on as ``event: <its type>``; an exception frame is the protocol's in-band error."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._frames = EventStreamDecoder()

    def __repr__(self) -> str:
        return f"InvokeStream({self._frames!r})"

    def feed(self, chunk: bytes) -> bytes:
        out = []
        for f in self._frames.feed(chunk):
            if isinstance(f, Frame) and f.message_type != "event":
                err = decode_exception(f.event, f.data) if f.message_type == "exception" else UpstreamError(
                    str(f.headers.get(":error-message") or "Bedrock stream error"))
                out.append(self._codec.error_event(self._codec.for_client(err)))
            elif f.event == "chunk":
                doc = orjson.loads(f.data)
                data = base64.b64decode(doc["bytes"]) if isinstance(doc, dict) else b""
                event = orjson.loads(data).get("type") if data else None
                if isinstance(event, str):
                    out.append(b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")
        return b"".join(out)

    def flush(self) -> bytes:
        self._frames.flush()  # a frame cut at the end is dropped: the protocol's reader sees no end and says so
        return b""


class WholeBody:
    """A small answer collected and rewritten whole at its end (an error, a token count)."""

    def __init__(self, rewrite: Callable[[bytes], bytes], what: str) -> None:
        self._rewrite, self._what = rewrite, what
        self._buf = bytearray()

    def __repr__(self) -> str:
        return f"WholeBody({self._what}, {len(self._buf)}B)"

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        return b""

    def flush(self) -> bytes:
        return self._rewrite(bytes(self._buf))


def error_body(codec: Codec, status: int) -> WholeBody:
    """An AWS error answer (``{"message": …}``, its kind by status) -> the protocol's error body."""
    return WholeBody(lambda raw: orjson.dumps(codec.error_body(codec.for_client(decode_error(status, raw)))),
                     f"{status} error")


def token_count(codec: Codec) -> WholeBody:
    """CountTokens' ``{"inputTokens": n}`` -> the protocol's count answer (anything else as it came)."""
    def rewrite(raw: bytes) -> bytes:
        doc = orjson.loads(raw)
        n = doc.get("inputTokens") if isinstance(doc, dict) else None
        return orjson.dumps(codec.encode_count(n)) if isinstance(n, int) else raw
    return WholeBody(rewrite, "token count")
