"""Names shared by the two filters and the Envoy config: the gateway's own headers and attributes.

How each protocol is called upstream (path, credential, its own headers) is its codec's
(``Codec.upstream_path``, ``credential``, ``upstream_headers``).
"""

from __future__ import annotations

from translator.protocols import REGISTRY

# Every header a client may carry its tokengate key in (and Azure OpenAI's api-key, never read as
# one); none of them goes upstream.
CLIENT_CREDENTIAL_HEADERS = ("authorization", *REGISTRY.key_headers, "api-key")
# Set by the router for Envoy (route choice) and the upstream filter (the caller's context); never sent on.
ROUTE_HEADER = "x-tokengate-model"
CTX_HEADER = "x-tokengate-ctx"
# The content type the caller gets when it differs from the upstream's: a Gemini caller's JSON-array stream
# (no alt=sse) answered by another protocol, whose stream is SSE. A direct route's Lua sets it (render.py).
RESPONSE_TYPE_HEADER = "x-tokengate-response-type"
# The deployment that answered, from its endpoint metadata: one string, cheaper for Envoy to send
# than the whole xds.upstream_host_metadata message.
DEPLOYMENT_ATTR = "xds.upstream_host_metadata.filter_metadata['tokengate']['deployment']"


def direct_route(model: str, caller: str) -> str:
    """The routing header's value for ``model``'s direct route as a ``caller`` protocol reaches it
    ('#' is in no model name)."""
    return f"{model}#{caller}"
