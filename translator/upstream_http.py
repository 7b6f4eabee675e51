"""How each protocol is called upstream: the path, and where the credential goes."""

from __future__ import annotations

from core.protocols import Protocol
from translator.endpoints import Kind

# Every header a client may carry its tokengate key in; none of them goes upstream.
CLIENT_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
ANTHROPIC_VERSION = "2023-06-01"
# Set by the router for Envoy (route choice) and the upstream filter (the caller's context); never sent on.
ROUTE_HEADER = "x-tokengate-model"
CTX_HEADER = "x-tokengate-ctx"
# The deployment that answered, from its endpoint metadata: one string, cheaper for Envoy to send
# than the whole xds.upstream_host_metadata message.
DEPLOYMENT_ATTR = "xds.upstream_host_metadata.filter_metadata['tokengate']['deployment']"



def direct_route(model: str, caller: Protocol) -> str:
    """The routing header's value for ``model``'s direct route as ``caller`` reaches it ('#' is in no model name)."""
    return f"{model}#{caller.value}"
# Sent by Anthropic callers; forwarded only to Anthropic upstreams.
ANTHROPIC_ONLY_HEADERS = ("anthropic-version", "anthropic-beta")


def path(protocol: Protocol, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
    """The request path for ``protocol`` under the provider's base URL path."""
    if protocol is Protocol.OPENAI:
        return f"{base_path}/chat/completions"
    if protocol is Protocol.ANTHROPIC:
        return f"{base_path}/v1/messages" + ("/count_tokens" if kind is Kind.COUNT_TOKENS else "")
    if kind is Kind.COUNT_TOKENS:
        method = "countTokens"
    elif stream:
        method = "streamGenerateContent" + ("?alt=sse" if sse else "")
    else:
        method = "generateContent"
    return f"{base_path}/v1beta/models/{model}:{method}"


def credential_headers(protocol: Protocol, key: str | None) -> dict[str, str]:
    if not key:
        return {}
    if protocol is Protocol.OPENAI:
        return {"authorization": f"Bearer {key}"}
    if protocol is Protocol.ANTHROPIC:
        return {"x-api-key": key}
    return {"x-goog-api-key": key}
