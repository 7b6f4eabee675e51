"""Building ext_proc responses and reading the attributes Envoy sends.

Kept apart from the processors so they read as decisions, not proto plumbing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Struct, Value

ATTR_NAMESPACE = "envoy.filters.http.ext_proc"
_OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD


def _value(v: Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return v.number_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: _value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return None


def attributes(req: pb.ProcessingRequest) -> dict[str, Any]:
    """The CEL attributes Envoy evaluated for this message, as plain Python values."""
    if ATTR_NAMESPACE not in req.attributes:
        return {}
    s: Struct = req.attributes[ATTR_NAMESPACE]
    return {k: _value(v) for k, v in s.fields.items()}


def response_facts(req: pb.ProcessingRequest, deployment_attr: str) -> tuple[int, int, str]:
    """The status, the upstream attempts (1 when not sent) and the deployment (``deployment_attr``: "" when there
    was none) of a response's first message, read as the types Envoy sends them (numbers, a string) without
    converting the other attributes: the hot path's part of ``attributes``."""
    s = req.attributes.get(ATTR_NAMESPACE)
    if s is None:
        return 0, 1, ""
    fields = s.fields
    code, attempts, deployment = (fields.get("response.code"), fields.get("upstream.request_attempt_count"),
                                  fields.get(deployment_attr))
    return (int(code.number_value) if code is not None else 0,
            int(attempts.number_value or 1) if attempts is not None else 1,
            deployment.string_value if deployment is not None else "")


_FIELD = re.compile(r'key: "(\w+)" value \{ string_value: "([^"]*)" \}')


@functools.lru_cache(maxsize=256)
def tokengate_metadata(text: str) -> dict[str, str]:
    """Our endpoint metadata out of ``xds.upstream_host_metadata``.

    Envoy sends that attribute as the proto text format of ``config.core.v3.Metadata``;
    the handful of distinct values (one per deployment) are parsed once and cached.
    """
    section = text.partition('key: "tokengate"')[2]
    return dict(_FIELD.findall(section))


def header_map(headers: pb.HttpHeaders) -> dict[str, str]:
    out: dict[str, str] = {}
    # over a list: iterating the repeated field itself ends in an IndexError raised and caught (0.2 µs of 4.3)
    for h in headers.headers.headers[:]:
        raw = h.raw_value  # what Envoy sends; ``value`` only from older ones
        out[h.key] = raw.decode("latin-1") if raw else h.value
    return out


def header_mutation(
    set_headers: Mapping[str, str] | None = None, remove: Iterable[str] = ()
) -> pb.HeaderMutation:
    return pb.HeaderMutation(
        set_headers=[
            HeaderValueOption(
                header=HeaderValue(key=k, raw_value=v.encode("latin-1")), append_action=_OVERWRITE
            )
            for k, v in (set_headers or {}).items()
        ],
        remove_headers=list(remove),
    )


def immediate(status: int, headers: Mapping[str, str], body: bytes, details: str) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=HttpStatus(code=status),
            headers=header_mutation(headers),
            body=body,
            details=details,
        )
    )


def common(
    *,
    body: bytes | None = None,
    set_headers: Mapping[str, str] | None = None,
    remove_headers: Iterable[str] = (),
    clear_route_cache: bool = False,
) -> pb.CommonResponse:
    """A CommonResponse; ``body=None`` leaves the body as it is, ``b""`` clears it."""
    resp = pb.CommonResponse(clear_route_cache=clear_route_cache)
    if set_headers or remove_headers:
        resp.header_mutation.CopyFrom(header_mutation(set_headers, remove_headers))
    if body is not None:
        _set_body(resp, body)
    return resp


def _set_body(c: pb.CommonResponse, body: bytes) -> None:
    """The body replaced by ``body``; ``b""`` clears it."""
    if body:
        c.body_mutation.body = body
    else:
        c.body_mutation.clear_body = True


_ROUTED: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], tuple[pb.ProcessingResponse, bytes]] = {}
MAX_ROUTED = 1024


def routed(set_headers: Mapping[str, str], remove_headers: Iterable[str],
           body: bytes | None = None) -> pb.ProcessingResponse:
    """The reply to a request body: these headers set and removed, the route cache cleared, and with
    ``body`` the body replaced (and its content-length set). Built once per distinct header set (a route's
    requests mostly share theirs: building the message is most of the reply's cost): the reply to an
    unchanged body is that shared message (never mutate it); one with a body is a copy parsed from its
    bytes, then given the body — 2.7 µs, against 12.7 built field by field."""
    key = (tuple(set_headers.items()), tuple(remove_headers))
    cached = _ROUTED.get(key)
    if cached is None:
        if len(_ROUTED) >= MAX_ROUTED:  # credentials that change (tokens refreshed), many routes: afresh
            _ROUTED.clear()
        resp = request_body(common(set_headers=set_headers, remove_headers=key[1], clear_route_cache=True))
        cached = _ROUTED[key] = (resp, resp.SerializeToString())
    if body is None:
        return cached[0]
    resp = pb.ProcessingResponse.FromString(cached[1])
    c = resp.request_body.response
    c.header_mutation.set_headers.add(header=HeaderValue(key="content-length", raw_value=b"%d" % len(body)),
                                      append_action=_OVERWRITE)
    _set_body(c, body)
    return resp


def request_body(c: pb.CommonResponse) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(request_body=pb.BodyResponse(response=c))


def response_body(c: pb.CommonResponse) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(response_body=pb.BodyResponse(response=c))


def request_headers(c: pb.CommonResponse) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=c))


def body_reply(body: bytes | None) -> pb.ProcessingResponse:
    """A new reply to a response body chunk: ``None`` passes it on as it is, ``b""`` drops it, other bytes
    replace it. Set in place: 0.6 µs, against 2.2 for ``response_body(common(body=…))`` (a translated
    stream builds one a chunk)."""
    resp = pb.ProcessingResponse()
    if body is None:
        resp.response_body.response.SetInParent()
    else:
        _set_body(resp.response_body.response, body)
    return resp


def response_headers(c: pb.CommonResponse) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(response_headers=pb.HeadersResponse(response=c))


# Answers that change nothing, built once (gRPC serializes a reply as it sends it; never mutate these).
CONTINUE_REQUEST_HEADERS = request_headers(pb.CommonResponse())
CONTINUE_RESPONSE_BODY = response_body(pb.CommonResponse())


def metadata(resp: pb.ProcessingResponse, namespace: str) -> Any:
    """The fields of ``resp``'s dynamic metadata under ``namespace``, to be set one by one
    (``f[name].string_value = …``): a few µs, where ``Struct.update`` from a dict, pure Python in
    protobuf, takes 2–3 times that."""
    return resp.dynamic_metadata.fields[namespace].struct_value.fields
