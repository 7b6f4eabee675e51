"""Which endpoint a request path is, and so which protocol the caller speaks.

An explicit table, the registry's: each protocol's codec claims its own paths
(``Codec.endpoint``); a path none claims is not ours (404), never guessed. The
Envoy route table is rendered from the same codecs (``Codec.body_routes``,
``Codec.listing_routes``), so Envoy and the translator cannot disagree on a path.
"""

from __future__ import annotations

from collections.abc import Mapping

from translator.protocols import REGISTRY
from translator.protocols.base import Endpoint, Kind

__all__ = ["Endpoint", "Kind", "classify", "client_key"]


def classify(method: str, full_path: str, headers: Mapping[str, str]) -> Endpoint | None:
    """The endpoint for ``method`` and ``full_path`` (query included), or None."""
    return REGISTRY.classify(method, full_path, headers)


def client_key(endpoint: Endpoint, headers: Mapping[str, str]) -> str | None:
    """The caller's tokengate key, from wherever any protocol puts one (an SDK of one protocol
    pointed at another's path still authenticates)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    for name in REGISTRY.key_headers:
        if v := headers.get(name):
            return v.strip()
    return endpoint.query_key
