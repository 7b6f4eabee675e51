"""Responses API errors: over HTTP ``{"error": {message, type, param, code}}`` (Chat Completions'
shape); in band ``response.failed`` (``response.error {code, message}``) or an ``error`` event.

The table writes HTTP errors as OpenAI does, and reads an upstream's in-band error by its
``type`` when it has a known one, else by its ``code`` (the read-only rows: the codes
``response.failed`` carries). In band, a kind is written with a code the SDK's ``ResponseError``
lists (``rate_limit_exceeded``, ``invalid_prompt``, else ``server_error``) — or OpenAI's own
``insufficient_quota``, on which Codex stops instead of retrying — and the error's type beside it;
an upstream error that came with a code keeps it.
"""

from __future__ import annotations

from typing import Any

import orjson

from translator.errors import ErrorTable, Spelling, UpstreamError, UserFacingError
from translator.protocols.openai import errors as openai_errors

ERRORS = ErrorTable(
    *openai_errors.ERRORS,  # Chat Completions' spellings over HTTP, then the in-band codes of response.failed:
    #        kind                   in-band code             status  code
    Spelling("rate_limit",          "rate_limit_exceeded",   read_only=True),
    Spelling("overloaded",          "server_is_overloaded",  read_only=True),
    Spelling("overloaded",          "slow_down",             read_only=True),
    Spelling("invalid_request",     "invalid_prompt",        read_only=True),
    Spelling("invalid_request",     "context_length_exceeded", read_only=True),
)
_NAMES = frozenset(r.name for r in ERRORS)
# The in-band code of a kind (response.failed's error.code); any other kind: server_error.
_CODE = {"rate_limit": "rate_limit_exceeded", "insufficient_quota": "insufficient_quota",
         "invalid_request": "invalid_prompt"}


def error_body(err: UserFacingError) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": ERRORS.spell(err.kind).name, "param": err.param,
                      "code": err.code}}


def in_band(err: UserFacingError) -> dict[str, Any]:
    """``err`` as ``response.error``."""
    return {"code": err.code or _CODE.get(err.kind, "server_error"), "message": err.message,
            "type": ERRORS.spell(err.kind).name, "param": err.param}


def error_event(err: UserFacingError, sequence_number: int = 0) -> bytes:
    """``err`` as an ``error`` event: for a stream whose state the writer does not know (a same-protocol
    answer cut short, the gateway failing mid-stream); a translated stream ends in ``response.failed``."""
    e = in_band(err)
    doc = {"type": "error", "code": e["code"], "message": e["message"], "param": e["param"],
           "sequence_number": sequence_number}
    return b"event: error\ndata: " + orjson.dumps(doc) + b"\n\n"


# Over HTTP a Responses upstream's error body is Chat Completions' (Azure's filtered prompt included).
decode_error = openai_errors.decode_error


def decode_stream_error(err: Any) -> UserFacingError:
    """An in-band error (``response.error``, an ``error`` event, or its nested ``error``): no HTTP
    status to go by, so its type, else its code, is read through the table."""
    err = err if isinstance(err, dict) else {}
    name = err.get("type") if err.get("type") in _NAMES else err.get("code")
    kind, status = ERRORS.read(name)
    code = err.get("code") if isinstance(err.get("code"), str) else None
    return UpstreamError(str(err.get("message") or "upstream stream error"), status=status, kind=kind, code=code)
