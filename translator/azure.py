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
from translator.protocols.base import Kind

_CHAT = {"openai": "chat/completions", "openai-responses": "responses"}


def upstream_path(azure: Azure, base_path: str, protocol: str, kind: Kind, model: str) -> str:
    """The request path and query under the resource endpoint's path."""
    op = "embeddings" if kind.embeds else _CHAT[protocol]
    if azure.api == "deployments":
        return f"{base_path}/openai/deployments/{quote(model, safe='')}/{op}?api-version={azure.api_version}"
    return f"{base_path}/openai/v1/{op}"


def credential(key: str | None) -> dict[str, str]:
    return {"api-key": key} if key else {}
