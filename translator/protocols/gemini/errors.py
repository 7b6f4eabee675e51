"""Gemini errors: ``{"error": {code, message, status}}``, in a stream a ``data:`` chunk of that.

The table reads an upstream's ``error.status`` name (when its ``code`` is missing) and
writes every kind for Gemini clients (docs/protocols.md, "Errors"); Gemini answers a
too-large request with 400 and overload with 503.
"""

from __future__ import annotations

from typing import Any

import orjson

from translator import ir
from translator.errors import ErrorTable, Spelling, UpstreamError, UserFacingError, kind_for_status

ERRORS = ErrorTable(
    #        kind                   status name              status
    Spelling("invalid_request",     "INVALID_ARGUMENT"),
    Spelling("authentication",      "UNAUTHENTICATED"),
    Spelling("permission",          "PERMISSION_DENIED"),
    Spelling("not_found",           "NOT_FOUND"),
    Spelling("request_too_large",   "INVALID_ARGUMENT",      400),
    Spelling("rate_limit",          "RESOURCE_EXHAUSTED"),
    Spelling("insufficient_quota",  "RESOURCE_EXHAUSTED"),
    Spelling("api_error",           "INTERNAL"),
    Spelling("overloaded",          "UNAVAILABLE",           503),
    Spelling("unavailable",         "UNAVAILABLE"),
    Spelling("timeout",             "DEADLINE_EXCEEDED"),
    Spelling("invalid_request",     "FAILED_PRECONDITION",   read_only=True),
    Spelling("invalid_request",     "CANCELLED",             499, read_only=True),
)


def error_body(err: UserFacingError) -> dict[str, Any]:
    return {"error": {"code": err.status, "message": err.message, "status": ERRORS.spell(err.kind).name}}


def error_event(err: UserFacingError) -> bytes:
    return b"data: " + orjson.dumps(error_body(err)) + b"\n\n"


def _error_of(data: Any) -> ir.Json:
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def decode_error(status: int, body: bytes) -> UserFacingError:
    err = _error_of(ir.parse_json(body))
    message = err.get("message") if isinstance(err.get("message"), str) else None
    message = message or body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
    return UpstreamError(message, status=status, kind=kind_for_status(status))


def decode_stream_error(data: Any) -> UserFacingError:
    err = _error_of(data)
    code = err.get("code")
    if isinstance(code, int):
        kind, status = kind_for_status(code), code
    else:
        kind, status = ERRORS.read(err.get("status"))
    return UpstreamError(str(err.get("message") or "upstream stream error"), status=status, kind=kind)
