"""OpenAI errors: ``{"error": {message, type, param, code}}``, in a stream ``data: {"error": …}``.

Azure OpenAI's are the same plus ``innererror`` and ``status``; its filtered prompt (400, ``code:
content_filter``) keeps its code and gets a message naming the filter and the categories it tripped.

The table reads an upstream's in-band ``type`` and writes every kind for OpenAI clients
(docs/protocols.md, "Errors"). Several kinds share ``invalid_request_error`` and
``server_error``; reading one gives the first row's kind.
"""

from __future__ import annotations

from typing import Any

import orjson

from translator import ir
from translator.errors import ErrorTable, Spelling, UpstreamError, UserFacingError, kind_for_status

ERRORS = ErrorTable(
    #        kind                   type                     status  code
    Spelling("invalid_request",     "invalid_request_error"),
    Spelling("authentication",      "invalid_request_error", code="invalid_api_key"),
    Spelling("permission",          "permission_error"),
    Spelling("not_found",           "invalid_request_error", code="model_not_found"),
    Spelling("request_too_large",   "invalid_request_error"),
    Spelling("rate_limit",          "rate_limit_error"),
    Spelling("insufficient_quota",  "insufficient_quota"),
    Spelling("api_error",           "server_error"),
    Spelling("overloaded",          "server_error",          503),
    Spelling("unavailable",         "server_error"),
    Spelling("timeout",             "server_error"),
)


def error_body(err: UserFacingError) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": ERRORS.spell(err.kind).name, "param": err.param,
                      "code": err.code}}


def error_event(err: UserFacingError) -> bytes:
    return b"data: " + orjson.dumps(error_body(err)) + b"\n\n"


def decode_error(status: int, body: bytes) -> UserFacingError:
    data = ir.parse_json(body)
    err = data.get("error") if isinstance(data, dict) else None
    err = err if isinstance(err, dict) else {}
    message = err.get("message") if isinstance(err.get("message"), str) else None
    code = err.get("code") if isinstance(err.get("code"), str) else None
    kind = kind_for_status(status)
    if code == "insufficient_quota" or err.get("type") == "insufficient_quota":
        kind = "insufficient_quota"
    message = message or body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
    if code == "content_filter":  # Azure OpenAI refused the prompt
        message = filtered_prompt(message, err)
    return UpstreamError(message, status=status, kind=kind, code=code, param=err.get("param"))


def decode_stream_error(data: dict[str, Any]) -> UserFacingError:
    """An ``{"error": …}`` chunk after the stream started (no HTTP status to go by)."""
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    assert isinstance(err, dict)
    kind, status = ERRORS.read(err.get("type"))
    code = err.get("code") if isinstance(err.get("code"), str) else None
    return UpstreamError(str(err.get("message") or "upstream stream error"), status=status, kind=kind, code=code)


def filtered_prompt(message: str, err: dict[str, Any]) -> str:
    """A prompt Azure OpenAI's content filter refused, said plainly with the categories that tripped
    (``innererror.content_filter_result``: ``{"hate": {"filtered": true, "severity": "high"}, …}``)."""
    inner = err.get("innererror")
    results = inner.get("content_filter_result") if isinstance(inner, dict) else None
    tripped = sorted(k for k, v in results.items() if isinstance(v, dict) and v.get("filtered") is True
                     ) if isinstance(results, dict) else []
    why = f" ({', '.join(tripped)})" if tripped else ""
    return f"The prompt was blocked by the provider's content filter{why}: {message}"
