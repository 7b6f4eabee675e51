"""From a request's ``Call`` and a ``Reply`` to the ``Response`` to write.

Protocol-neutral: the codec renders, this module decides what to render (the
precedence in ``fakes.script``) and attaches the headers and timing. With no
script the reply is ``ECHO``: the answer is ``echo: <last user text>`` and the
usage is deterministic (input = prompt words + ``PROMPT_OVERHEAD``, output =
answer words + one per tool call, reasoning = reasoning words).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from fakes.codec import Answer, Call, Codec, Kind, words
from fakes.http import Header, Response
from fakes.script import ErrorReply, Event, Reply, Usage

ECHO = Reply()


def answer(call: Call, reply: Reply) -> Answer:
    tool_calls = tuple(reply.tool_calls)
    if reply.text is not None:
        text = reply.text
    else:
        text = "" if tool_calls else "echo: " + call.last_user
    reasoning = reply.reasoning or ""
    usage = reply.usage or Usage(
        input=call.prompt_tokens,
        output=words(text) + len(tool_calls),
        reasoning=words(reasoning),
    )
    return Answer(text, reasoning, tool_calls, usage, reply.finish_reason)


def respond(codec: Codec, call: Call, reply: Reply) -> Response:
    request_id = codec.new_request_id()
    err = reply.effective_error
    if err is not None and (reply.error_after is None or not call.stream):
        return _error(codec, err, request_id, reply)
    status, stream = reply.status, call.stream
    if reply.body is not None:
        pieces, stream = [_raw(reply.body)], False
    elif reply.events is not None:
        pieces, stream = _events(codec, reply.events), True
    elif call.kind is Kind.COUNT:
        pieces, stream = [codec.count(call)], False
    elif call.stream:
        pieces = codec.stream(call, answer(call, reply))
    else:
        pieces = [codec.complete(call, answer(call, reply))]
    if err is not None and reply.error_after is not None:  # in-band, on a stream
        after = reply.error_after
        pieces = [*pieces[:after], codec.stream_error(call, err, request_id, after)]
    base = codec.stream_headers(call) if stream else codec.json_headers
    return _response(status, base, codec.request_id_headers(request_id), pieces, stream, reply)


def error_response(codec: Codec, err: ErrorReply) -> Response:
    """An error in the protocol's shape, not scripted (bad request, unknown path)."""
    return _error(codec, err, codec.new_request_id(), ECHO)


def _error(codec: Codec, err: ErrorReply, request_id: str, reply: Reply) -> Response:
    extra = codec.request_id_headers(request_id) + codec.error_headers(err)
    if err.retry_after is not None:
        extra.append((b"retry-after", b"%g" % err.retry_after))
    pieces = [codec.error(err, request_id)]
    return _response(err.status, codec.json_headers, extra, pieces, False, reply)


def _response(
    status: int,
    base: Sequence[Header],
    extra: list[Header],
    pieces: list[bytes],
    stream: bool,
    reply: Reply,
) -> Response:
    headers = [*base, *extra]
    if reply.headers:
        headers = _override(headers, reply.headers)
    return Response(
        status,
        headers,
        pieces,
        stream=stream,
        delay_first_byte=reply.delay_first_byte,
        delay_between=reply.delay_between,
        disconnect_after=reply.disconnect_after,
    )


def _override(headers: list[Header], scripted: Mapping[str, str]) -> list[Header]:
    """Scripted headers replace defaults of the same name."""
    names = {name.lower().encode() for name in scripted}
    kept = [h for h in headers if h[0] not in names]
    return kept + [(k.lower().encode(), v.encode()) for k, v in scripted.items()]


def _raw(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _events(codec: Codec, events: Sequence[Event]) -> list[bytes]:
    return [e if isinstance(e, bytes) else e.encode() if isinstance(e, str) else codec.frame(e) for e in events]
