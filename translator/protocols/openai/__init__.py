"""OpenAI Chat Completions codec: requests, responses, streams and errors <-> IR."""

from __future__ import annotations

from translator.ir import Codec
from translator.protocols.openai.request import decode_request, encode_request, tool_name
from translator.protocols.openai.response import decode_error, decode_response, encode_response
from translator.protocols.openai.stream import StreamDecoder, StreamEncoder

CODEC = Codec(
    decode_request=decode_request,
    encode_request=encode_request,
    decode_response=decode_response,
    encode_response=encode_response,
    stream_decoder=StreamDecoder,
    stream_encoder=StreamEncoder,
    decode_error=decode_error,
    tool_name=tool_name,
)
