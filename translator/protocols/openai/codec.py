"""The OpenAI Chat Completions codec: what the gateway asks of the protocol (``protocols/base.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.usage import count
from translator.protocols.base import (
    V1_LISTING_ROUTES,
    Codec,
    Endpoint,
    Json,
    Kind,
    Observer,
    Query,
    dicts,
    query_value,
    v1_listing,
)
from translator.protocols.openai import embeddings, observe, request, response, stream, usage
from translator.protocols.openai import errors as errs
from translator.protocols.openai import quirks as quirk_rules

_CHAT = "/v1/chat/completions"
_EMBEDDINGS = "/v1/embeddings"


class OpenAICodec(Codec):
    name = "openai"
    errors = errs.ERRORS
    body_routes = {_CHAT: {"path": _CHAT}, _EMBEDDINGS: {"path": _EMBEDDINGS}}
    listing_routes = V1_LISTING_ROUTES
    # No header of its own: OpenAI is the registry's fallback, whom Envoy shapes whatever is left.

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        if method == "POST":
            if path == _CHAT:
                return Endpoint(self, Kind.CHAT)
            return Endpoint(self, Kind.EMBED_BATCH) if path == _EMBEDDINGS else None
        if method == "GET":
            return v1_listing(self, path, query_value(query, "key"))
        return None

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        return f"{base_path}/embeddings" if kind.embeds else f"{base_path}/chat/completions"

    def credential(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    decode_request = staticmethod(request.decode_request)
    encode_request = staticmethod(request.encode_request)
    decode_response = staticmethod(response.decode_response)
    encode_response = staticmethod(response.encode_response)
    stream_decoder = staticmethod(stream.StreamDecoder)
    stream_encoder = staticmethod(stream.StreamEncoder)
    tool_name = staticmethod(request.tool_name)
    embedder = embeddings.EMBEDDER

    def tool_names(self, body: Json) -> tuple[str, ...]:
        return tuple(str(f.get("name")) for t in dicts(body.get("tools")) if isinstance(f := t.get("function"), dict))

    def output_cap(self, body: Json) -> int | None:
        return count(body.get("max_completion_tokens", body.get("max_tokens")))

    quirks = frozenset(quirk_rules.APPLY)
    limit_output = staticmethod(quirk_rules.limit_output)
    apply_quirks = staticmethod(quirk_rules.apply)

    def asks_stream_usage(self, body: Json) -> bool:
        opts = body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    # Usage is always asked of the upstream; the extra chunk is removed again on the way back.
    stream_usage_option = ("stream_options", {"include_usage": True})

    error_body = staticmethod(errs.error_body)
    error_event = staticmethod(errs.error_event)
    decode_error = staticmethod(errs.decode_error)
    read_usage = staticmethod(usage.read)
    write_usage = staticmethod(usage.write)

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return observe.OpenAIObserver(strip_usage_chunk=strip_usage_chunk)

    def model_entry(self, name: str, owner: str) -> Json:
        return {"id": name, "object": "model", "created": 1735689600, "owned_by": owner}

    def model_list(self, entries: list[Json], names: list[str]) -> dict[str, Any]:
        return {"object": "list", "data": entries}


CODEC = OpenAICodec()
