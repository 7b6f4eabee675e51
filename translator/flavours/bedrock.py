"""AWS Bedrock as an upstream: how a provider with ``aws:`` (``core.config.Aws``) is called (docs/providers.md).

    protocol bedrock-converse   <base_url>/model/<modelId>/converse | /converse-stream      (the Converse codec's path)
    protocol anthropic          <base_url>/model/<modelId>/invoke | /invoke-with-response-stream   (InvokeModel)
    credential                  SigV4 (``authorization``, ``x-amz-date``, ``x-amz-security-token``) over the final
                                request, from the keys in ``aws``; or a Bedrock API key (``api_key``) as a bearer

The signature covers the host Envoy sends (the cluster rewrites Host to the provider's host name,
``auto_host_rewrite``), the path as sent and the body bytes, so it is computed last (``sign``), after the body
is final; the body must therefore be read on every attempt (``needs_body``). InvokeModel's body is Anthropic's
Messages body without ``model`` and ``stream`` and with ``anthropic_version: bedrock-2023-05-31`` (``body``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from core.config import Provider
from translator.endpoints import Kind
from translator.flavours import Flavour, Json
from translator.flavours.sigv4 import Keys, Signer
from translator.protocols.base import Codec

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
            return f"{base_path}/model/{quote(model, safe='')}/" + ("invoke-with-response-stream" if stream
                                                                     else "invoke")
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
        return out

    def sign(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        if self.signer is None:
            return {}
        return self.signer.headers("POST", self.host, path, body)
