"""Anthropic errors: ``{"type": "error", "error": {type, message}}``, in a stream ``event: error``.

The table reads an upstream's in-band ``error.type`` and writes every kind for Anthropic
clients (docs/protocols.md, "Errors"); overloaded is Anthropic's own 529.
"""

from __future__ import annotations

from typing import Any

import orjson

from translator import ir
from translator.errors import ErrorTable, Spelling, UpstreamError, UserFacingError, kind_for_status

ERRORS = ErrorTable(
    #        kind                   type                     status
    Spelling("invalid_request",     "invalid_request_error"),
    Spelling("authentication",      "authentication_error"),
    Spelling("permission",          "permission_error"),
    Spelling("not_found",           "not_found_error"),
    Spelling("request_too_large",   "request_too_large"),
    Spelling("rate_limit",          "rate_limit_error"),
    Spelling("insufficient_quota",  "rate_limit_error"),
    Spelling("api_error",           "api_error"),
    Spelling("overloaded",          "overloaded_error",      529),
    Spelling("unavailable",         "api_error"),
    Spelling("timeout",             "timeout_error"),
    Spelling("permission",          "billing_error",         read_only=True),
)


def error_body(err: UserFacingError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERRORS.spell(err.kind).name, "message": err.message}}


def error_event(err: UserFacingError) -> bytes:
    return b"event: error\ndata: " + orjson.dumps(error_body(err)) + b"\n\n"


def _error_of(data: object) -> tuple[str | None, str | None]:
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, None
    kind, message = err.get("type"), err.get("message")
    return (kind if isinstance(kind, str) else None,
            message if isinstance(message, str) else None)


def decode_error(status: int, body: bytes) -> UserFacingError:
    _, message = _error_of(ir.parse_json(body))
    message = message or body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
    return UpstreamError(message, status=status, kind=kind_for_status(status))


def decode_stream_error(data: object) -> UserFacingError:
    name, message = _error_of(data)
    kind, status = ERRORS.read(name)
    return UpstreamError(message or "upstream stream error", status=status, kind=kind)
