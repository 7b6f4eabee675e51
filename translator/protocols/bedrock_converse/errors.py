"""Bedrock errors: an HTTP status with ``{"message": …}`` (the type is in the ``x-amzn-ErrorType`` header), and in
a stream an exception frame (``:message-type: exception``, ``:exception-type: throttlingException``, the same body).

The table names the exceptions of Bedrock Runtime's service model (botocore ``bedrock-runtime``), each with its
status. An HTTP error is read by its status (the router does not see the upstream's headers: the statuses of the
exceptions tell them apart, but for 429, which is both ThrottlingException and ModelNotReadyException, and 400,
ValidationException and ServiceQuotaExceededException); an exception frame by its type. No client speaks
Converse, so writing is only for the fake-free tests and the table's symmetry: ``{"message": …}``, and in band an
exception frame.
"""

from __future__ import annotations

from typing import Any

from translator import ir
from translator.errors import ErrorTable, Spelling, UpstreamError, UserFacingError, kind_for_status
from translator.eventstream import encode_frame

ERRORS = ErrorTable(
    #        kind                   exception                          status
    Spelling("invalid_request",     "ValidationException",             400),
    Spelling("authentication",      "UnrecognizedClientException",     403),
    Spelling("permission",          "AccessDeniedException",           403),
    Spelling("not_found",           "ResourceNotFoundException",       404),
    Spelling("request_too_large",   "ValidationException",             400, read_only=True),
    Spelling("rate_limit",          "ThrottlingException",             429),
    Spelling("insufficient_quota",  "ServiceQuotaExceededException",   400),
    Spelling("api_error",           "InternalServerException",         500),
    Spelling("overloaded",          "ServiceUnavailableException",     503),
    Spelling("unavailable",         "ServiceUnavailableException",     503),
    Spelling("timeout",             "ModelTimeoutException",           408),
    Spelling("overloaded",          "ModelNotReadyException",          429, read_only=True),
    Spelling("api_error",           "ModelErrorException",             424, read_only=True),
    Spelling("api_error",           "ModelStreamErrorException",       424, read_only=True),
    Spelling("authentication",      "InvalidSignatureException",       403, read_only=True),
)
# Statuses whose kind is Bedrock's own, not HTTP's (kind_for_status): a model's timeout and a model's error.
_STATUS_KIND = {408: "timeout", 424: "api_error"}


def error_body(err: UserFacingError) -> dict[str, Any]:
    return {"message": err.message}


def error_event(err: UserFacingError) -> bytes:
    name = ERRORS.spell(err.kind).name
    return encode_frame({":message-type": "exception", ":exception-type": name[0].lower() + name[1:],
                         ":content-type": "application/json"}, ir.dumps(error_body(err)).encode())


def message_of(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    message = data.get("message", data.get("Message"))
    return message if isinstance(message, str) else None


def decode_error(status: int, body: bytes) -> UserFacingError:
    message = message_of(ir.parse_json(body)) or body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
    return UpstreamError(message, status=status, kind=_STATUS_KIND.get(status) or kind_for_status(status))


def decode_exception(name: str | None, payload: str) -> UserFacingError:
    """An exception frame (``throttlingException`` …) as the error it is."""
    kind, status = ERRORS.read(name[0].upper() + name[1:] if name else None)
    return UpstreamError(message_of(ir.parse_json(payload)) or payload[:500] or f"Bedrock {name}",
                         status=status, kind=kind)
