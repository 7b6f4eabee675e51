"""The Bedrock Converse codec: what the gateway asks of the protocol (``protocols/base.py``).

Upstream only: it claims no client endpoint and no Envoy route. A provider speaking it is called at
``<base_url>/model/<modelId>/converse`` or ``/converse-stream`` (the model id URL-escaped as a whole: an inference
profile's ``us.anthropic.…:0`` or an ARN with its ``/``), with a Bedrock API key as a bearer token; SigV4 signing
instead is the provider flavour's (``translator/flavours/bedrock.py``). Streams are AWS event streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from core.usage import count
from translator.eventstream import EventStreamDecoder
from translator.protocols.base import Codec, Endpoint, FrameDecoder, Json, Kind, Observer, Query, dicts
from translator.protocols.bedrock_converse import errors as errs
from translator.protocols.bedrock_converse import observe, request, response, stream, usage

STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def model_path(base_path: str, model: str) -> str:
    """``<base>/model/<modelId>``, the id escaped whole (``:`` and ``/`` included), as AWS's SDKs send it."""
    return f"{base_path}/model/{quote(model, safe='')}"


class BedrockConverseCodec(Codec):
    name = "bedrock-converse"
    errors = errs.ERRORS
    model_in_body = False
    stream_content_type = STREAM_CONTENT_TYPE

    def endpoint(self, method: str, path: str, query: Query, headers: Mapping[str, str]) -> Endpoint | None:
        return None  # no client speaks Converse

    def upstream_path(self, base_path: str, kind: Kind, model: str, *, stream: bool, sse: bool) -> str:
        return model_path(base_path, model) + ("/converse-stream" if stream else "/converse")

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
        config = body.get("toolConfig")
        tools = dicts(config.get("tools")) if isinstance(config, dict) else []
        return tuple(str(t["toolSpec"].get("name")) for t in tools if isinstance(t.get("toolSpec"), dict))

    def output_cap(self, body: Json) -> int | None:
        config = body.get("inferenceConfig")
        return count(config.get("maxTokens")) if isinstance(config, dict) else None

    def limit_output(self, body: Json, cap: int) -> Json:
        # maxTokens lowered; an Anthropic thinking budget must stay below it (at least 1024, or no thinking)
        config = body.get("inferenceConfig")
        if isinstance(config, dict) and isinstance(config.get("maxTokens"), int) and config["maxTokens"] > cap:
            body["inferenceConfig"] = {**config, "maxTokens": cap}
            extra = body.get("additionalModelRequestFields")
            thinking = extra.get("thinking") if isinstance(extra, dict) else None
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if isinstance(extra, dict) and isinstance(thinking, dict) and isinstance(budget, int) and budget >= cap:
                if cap - 1 >= request.MIN_BUDGET:
                    body["additionalModelRequestFields"] = {**extra, "thinking": {**thinking, "budget_tokens": cap - 1}}
                else:
                    body["additionalModelRequestFields"] = {k: v for k, v in extra.items() if k != "thinking"}
        elif not isinstance(config, dict) or "maxTokens" not in config:
            body["inferenceConfig"] = {**(config if isinstance(config, dict) else {}), "maxTokens": cap}
        return body

    error_body = staticmethod(errs.error_body)
    error_event = staticmethod(errs.error_event)
    decode_error = staticmethod(errs.decode_error)
    read_usage = staticmethod(usage.read)
    write_usage = staticmethod(usage.write)

    def stream_frames(self) -> FrameDecoder:
        return EventStreamDecoder()

    def observer(self, *, strip_usage_chunk: bool) -> Observer:
        return observe.ConverseObserver()

    def model_entry(self, name: str, owner: str) -> Json:
        return {"modelId": name, "providerName": owner}

    def model_list(self, entries: list[Json], names: list[str]) -> Json:
        return {"modelSummaries": entries}


CODEC = BedrockConverseCodec()


