"""Azure OpenAI as an upstream: how a provider with ``azure:`` (``core.config.Azure``) is called.

Azure speaks OpenAI's Chat Completions and Responses protocols, so the codecs are OpenAI's; only
the request line and the credential differ (docs/providers.md, "Azure OpenAI"):

    api: deployments   <endpoint>/openai/deployments/<deployment>/chat/completions?api-version=<v>
                       <endpoint>/openai/deployments/<deployment>/embeddings?api-version=<v>
    api: v1            <endpoint>/openai/v1/chat/completions | /responses | /embeddings (model in the body)
    credential         api-key: <key>

Its answers are OpenAI's plus ``prompt_filter_results`` / ``content_filter_results`` (ignored by
the decoders), ``finish_reason: content_filter`` for a filtered answer (the refusal stop reason)
and a 400 ``code: content_filter`` for a filtered prompt (``translator/protocols/openai/errors.py``).
"""

from __future__ import annotations

from urllib.parse import quote

from core.config import Azure
from translator.endpoints import Kind
from translator.flavours import Flavour
from translator.protocols.base import Codec


class AzureFlavour(Flavour):
    def __init__(self, azure: Azure) -> None:
        self.azure = azure

    def __repr__(self) -> str:
        return f"AzureFlavour({self.azure.api})"

    def upstream_path(self, codec: Codec, base_path: str, kind: Kind, model: str, *, stream: bool,
                      sse: bool) -> str:
        """The protocol's own path (OpenAI's ``/chat/completions``, ``/embeddings``, the Responses API's
        ``/responses``) under Azure's prefix."""
        if self.azure.api == "deployments":
            prefix = f"{base_path}/openai/deployments/{quote(model, safe='')}"
            return (codec.upstream_path(prefix, kind, model, stream=stream, sse=sse)
                    + f"?api-version={self.azure.api_version}")
        return codec.upstream_path(f"{base_path}/openai/v1", kind, model, stream=stream, sse=sse)

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        return {"api-key": key} if key else {}
