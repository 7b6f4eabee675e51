"""The Gemini generateContent codec: what the gateway asks of the protocol (``protocols/base.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.usage import count
from translator import ir
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
from translator.protocols.gemini import embeddings, observe, request, response, stream, usage
from translator.protocols.gemini import errors as errs

_METHOD = re.compile(
    r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens)$"
)
# A route of its own: one regex for both would pass RE2's program size limit in Envoy (100).
_EMBED = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>embedContent|batchEmbedContents)$")
_EMBED_KINDS = {"embedContent": Kind.EMBED, "batchEmbedContents": Kind.EMBED_BATCH}
_LIST = re.compile(r"^/v1(?:beta|alpha)/models$")
_MODEL = re.compile(r"^/v1(?:beta|alpha)/models/(?P<model>[^/:]+)$")
_GET = [{"name": ":method", "string_match": {"exact": "GET"}}]
_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]


class GeminiCodec(Codec):
    name = "gemini"
    errors = errs.ERRORS
    body_routes = {"/v1beta/models": {"safe_regex": {"regex": _METHOD.pattern}},
                   "/v1beta/models:embed": {"safe_regex": {"regex": _EMBED.pattern}}}
    listing_routes = {
        **V1_LISTING_ROUTES,
        "/v1beta/models": {"safe_regex": {"regex": _LIST.pattern}, "headers": _GET},
        "/v1beta/models/{id}": {"safe_regex": {"regex": _MODEL.pattern}, "headers": _GET},
    }
    envoy_match = ({"name": ":path", "string_match": {"safe_regex": {"regex": "^/v1(beta|alpha)/.*"}}},)
    key_headers = ("x-goog-api-key",)
    model_in_body = False
    counts_tokens = True
    array_streams = True
    gen_ai_operation = "generate_content"  # the GenAI conventions' name for Gemini's generateContent

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        key = query_value(query, "key")
        if method == "POST":
            if m := _METHOD.match(path):
                name = m["method"]
                return Endpoint(self, Kind.COUNT_TOKENS if name == "countTokens" else Kind.CHAT, model=m["model"],
                                stream=name == "streamGenerateContent", sse=query_value(query, "alt") == "sse",
                                query_key=key)
            if m := _EMBED.match(path):
                return Endpoint(self, _EMBED_KINDS[m["method"]], model=m["model"], stream=False, query_key=key)
            return None
        if method != "GET":
            return None
        if "x-goog-api-key" in headers or key:
            if ep := v1_listing(self, path, key):
                return ep
        if _LIST.fullmatch(path):
            return Endpoint(self, Kind.LIST_MODELS, query_key=key)
        if m := _MODEL.match(path):
            return Endpoint(self, Kind.GET_MODEL, model=m["model"], query_key=key)
        return None

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        if kind is Kind.COUNT_TOKENS:
            method = "countTokens"
        elif kind.embeds:
            method = embeddings.METHODS[kind]
        elif stream:
            method = "streamGenerateContent" + ("?alt=sse" if sse else "")
        else:
            method = "generateContent"
        return f"{base_path}/v1beta/models/{model}:{method}"

    def credential(self, key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    decode_request = staticmethod(request.decode_request)
    encode_request = staticmethod(request.encode_request)
    decode_response = staticmethod(response.decode_response)
    encode_response = staticmethod(response.encode_response)
    stream_decoder = staticmethod(stream.StreamDecoder)
    stream_encoder = staticmethod(stream.StreamEncoder)
    tool_name = staticmethod(request.tool_name)
    embedder = embeddings.EMBEDDER

    def tool_names(self, body: Json) -> tuple[str, ...]:
        decls = [d for t in dicts(body.get("tools"))
                 for d in dicts(t.get("functionDeclarations") or t.get("function_declarations"))]
        return tuple(str(d.get("name")) for d in decls)

    def output_cap(self, body: Json) -> int | None:
        gc = body.get("generationConfig") or body.get("generation_config") or {}
        return count(gc.get("maxOutputTokens", gc.get("max_output_tokens"))) if isinstance(gc, dict) else None

    def limit_output(self, body: Json, cap: int) -> Json:
        for gc in (body.get("generationConfig"), body.get("generation_config")):
            for key in ("maxOutputTokens", "max_output_tokens"):
                if isinstance(gc, dict) and isinstance(gc.get(key), int) and gc[key] > cap:
                    gc[key] = cap
        return body

    error_body = staticmethod(errs.error_body)
    error_event = staticmethod(errs.error_event)
    decode_error = staticmethod(errs.decode_error)
    read_usage = staticmethod(usage.read)
    write_usage = staticmethod(usage.write)

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return observe.GeminiObserver()

    def count_request(self, body: Json) -> Json:
        inner = body.get("generateContentRequest")
        return inner if isinstance(inner, dict) else body

    def encode_count_request(self, req: ir.Request, model: str) -> Json:
        return {"generateContentRequest": {"model": f"models/{model}", **self.encode_request(req, model, False)}}

    def encode_count(self, tokens: int) -> Json:
        return {"totalTokens": tokens}

    def decode_count(self, doc: Json) -> object:
        return doc.get("totalTokens")

    def model_entry(self, name: str, owner: str) -> Json:
        return {"name": f"models/{name}", "version": "1", "displayName": name,
                "supportedGenerationMethods": list(_METHODS)}

    def model_list(self, entries: list[Json], names: list[str]) -> dict[str, Any]:
        return {"models": entries}


CODEC = GeminiCodec()
