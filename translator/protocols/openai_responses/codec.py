"""The OpenAI Responses API codec: what the gateway asks of the protocol (``protocols/base.py``).

Callers: ``POST /v1/responses`` (the ``openai`` SDK's ``client.responses``, Codex CLI). Providers:
an OpenAI-compatible provider configured with ``protocol: openai-responses`` is called at
``<base_url>/responses`` (``https://api.openai.com/v1`` → ``/v1/responses``), Bearer key.

Its HTTP errors have Chat Completions' shape, so Envoy's own replies need no matcher of their own:
the registry's fallback (OpenAI) shapes them identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.usage import count
from translator import ir
from translator.errors import UserFacingError
from translator.protocols.base import Codec, Endpoint, Json, Kind, Observer, Query, dicts
from translator.protocols.openai_responses import errors as errs
from translator.protocols.openai_responses import observe, request, response, stream, usage

_RESPONSES = "/v1/responses"


class ResponsesCodec(Codec):
    name = "openai-responses"
    errors = errs.ERRORS
    body_routes = {_RESPONSES: {"path": _RESPONSES}}

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        return Endpoint(self, Kind.CHAT) if method == "POST" and path == _RESPONSES else None

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        return f"{base_path}/responses"

    def credential(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    decode_request = staticmethod(request.decode_request)
    encode_request = staticmethod(request.encode_request)
    decode_response = staticmethod(response.decode_response)
    encode_response = staticmethod(response.encode_response)
    stream_decoder = staticmethod(stream.StreamDecoder)
    stream_encoder = staticmethod(stream.StreamEncoder)
    tool_name = staticmethod(request.tool_name)

    def tool_names(self, body: Json) -> tuple[str, ...]:
        return tuple(ir.CustomToolName(t["name"]) if t.get("type") == "custom" else str(t.get("name"))
                     for t in dicts(body.get("tools")) if isinstance(t.get("name"), str))

    def output_cap(self, body: Json) -> int | None:
        return count(body.get("max_output_tokens"))

    def limit_output(self, body: Json, cap: int) -> Json:
        if isinstance(body.get("max_output_tokens"), int) and body["max_output_tokens"] > cap:
            body["max_output_tokens"] = cap
        return body

    error_body = staticmethod(errs.error_body)
    decode_error = staticmethod(errs.decode_error)
    read_usage = staticmethod(usage.read)
    write_usage = staticmethod(usage.write)

    def error_event(self, err: UserFacingError) -> bytes:
        return errs.error_event(err)

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return observe.ResponsesObserver()

    def model_entry(self, name: str, owner: str) -> Json:
        return {"id": name, "object": "model", "created": 1735689600, "owned_by": owner}

    def model_list(self, entries: list[Json], names: list[str]) -> dict[str, Any]:
        return {"object": "list", "data": entries}

CODEC = ResponsesCodec()
