"""The Anthropic Messages codec: what the gateway asks of the protocol (``protocols/base.py``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from core.usage import count
from translator import ir
from translator.protocols.anthropic import errors as errs
from translator.protocols.anthropic import observe, request, response, stream, usage
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
from translator.sse import SSEEvent, encode_event

VERSION = "2023-06-01"  # the anthropic-version an upstream gets when the caller did not send one
# Sent by Anthropic callers; forwarded only to Anthropic upstreams.
ONLY_HEADERS = frozenset({"anthropic-version", "anthropic-beta"})
_MESSAGES = "/v1/messages"
_COUNT = "/v1/messages/count_tokens"
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
_EPOCH_ISO = "2025-01-01T00:00:00Z"


class AnthropicCodec(Codec):
    name = "anthropic"
    errors = errs.ERRORS
    body_routes = {_MESSAGES: {"path": _MESSAGES}, _COUNT: {"path": _COUNT}}
    listing_routes = V1_LISTING_ROUTES
    # Its version header; or its path, for a client that left the header out (Envoy's 413 comes first).
    envoy_match = ({"name": "anthropic-version", "present_match": True},
                   {"name": ":path", "string_match": {"prefix": _MESSAGES}})
    key_headers = ("x-api-key",)
    counts_tokens = True

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        if method == "POST":
            if path == _MESSAGES:
                return Endpoint(self, Kind.CHAT)
            return Endpoint(self, Kind.COUNT_TOKENS) if path == _COUNT else None
        if method == "GET" and ("anthropic-version" in headers or "x-api-key" in headers):
            return v1_listing(self, path, query_value(query, "key"))
        return None

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        return f"{base_path}/v1/messages" + ("/count_tokens" if kind is Kind.COUNT_TOKENS else "")

    def credential(self, key: str | None) -> dict[str, str]:
        return {"x-api-key": key} if key else {}

    def upstream_headers(self, client_headers: Collection[str], *, same: bool) -> tuple[Mapping[str, str],
                                                                                        frozenset[str]]:
        headers = {} if same and "anthropic-version" in client_headers else {"anthropic-version": VERSION}
        return headers, ONLY_HEADERS if same else frozenset()

    decode_request = staticmethod(request.decode_request)
    encode_request = staticmethod(request.encode_request)
    decode_response = staticmethod(response.decode_response)
    encode_response = staticmethod(response.encode_response)
    stream_decoder = staticmethod(stream.StreamDecoder)
    stream_encoder = staticmethod(stream.StreamEncoder)
    tool_name = staticmethod(request.tool_name)

    def tool_names(self, body: Json) -> tuple[str, ...]:
        return tuple(str(t.get("name")) for t in dicts(body.get("tools")))

    def output_cap(self, body: Json) -> int | None:
        return count(body.get("max_tokens"))

    def limit_output(self, body: Json, cap: int) -> Json:
        # max_tokens is required; a thinking budget must stay below it (at least 1024, or no thinking)
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > cap:
            body["max_tokens"] = cap
            thinking = body.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if isinstance(thinking, dict) and isinstance(budget, int) and budget >= cap:
                if cap - 1 >= request.MIN_BUDGET:
                    body["thinking"] = {**thinking, "budget_tokens": cap - 1}
                else:
                    body.pop("thinking")
        return body

    error_body = staticmethod(errs.error_body)
    error_event = staticmethod(errs.error_event)
    decode_error = staticmethod(errs.decode_error)
    read_usage = staticmethod(usage.read)
    write_usage = staticmethod(usage.write)

    renames_model = True

    def rename_model(self, ev: SSEEvent, model: str) -> bytes | None:
        """``message_start`` names the model the client asked for (Claude Code keeps an answer's thinking
        only when it does)."""
        doc = ir.parse_json(ev.data) if ev.event == "message_start" else None
        if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict):
            return None
        doc["message"]["model"] = model
        return encode_event(ir.dumps(doc), event="message_start")

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return observe.AnthropicObserver()

    def encode_count_request(self, req: ir.Request, model: str) -> Json:
        return {k: v for k, v in self.encode_request(req, model, False).items() if k in _COUNT_FIELDS}

    def encode_count(self, tokens: int) -> Json:
        return {"input_tokens": tokens}

    def decode_count(self, doc: Json) -> object:
        return doc.get("input_tokens")

    def model_entry(self, name: str, owner: str) -> Json:
        return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH_ISO}

    def model_list(self, entries: list[Json], names: list[str]) -> dict[str, Any]:
        return {"data": entries, "has_more": False, "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None}


CODEC = AnthropicCodec()
