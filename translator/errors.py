"""The gateway's error tree, and how each error looks in each client protocol.

    GatewayError                      anything raised inside the translator
    └── UserFacingError               carries status + kind; only these reach clients
        ├── BadRequest                400 invalid_request
        ├── Unauthorized              401 authentication
        ├── Forbidden                 403 permission
        ├── NotFound                  404 not_found
        │   └── ModelNotFound         404 not_found, code model_not_found
        ├── HeadersTooLarge           431 request_too_large
        ├── RateLimited               429 rate_limit
        ├── InsufficientQuota         429 insufficient_quota (x-should-retry: false)
        ├── UpstreamError             502 api_error
        └── ServiceUnavailable        503 unavailable

Anything else that escapes is mapped to a 500 ``api_error`` at the one boundary
in ``extproc``. ``render`` gives the error in the caller's own protocol shape
(docs/protocols.md, "Errors"), ``stream_event`` the in-band form
for a stream that has already started (§4.3).
"""

from __future__ import annotations

from typing import Any

import orjson

from core.protocols import Protocol

# kind -> (OpenAI type, Anthropic type, Gemini status)
_KINDS: dict[str, tuple[str, str, str]] = {
    "invalid_request": ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    "authentication": ("invalid_request_error", "authentication_error", "UNAUTHENTICATED"),
    "permission": ("permission_error", "permission_error", "PERMISSION_DENIED"),
    "not_found": ("invalid_request_error", "not_found_error", "NOT_FOUND"),
    "request_too_large": ("invalid_request_error", "request_too_large", "INVALID_ARGUMENT"),
    "rate_limit": ("rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    "insufficient_quota": ("insufficient_quota", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    "api_error": ("server_error", "api_error", "INTERNAL"),
    "overloaded": ("server_error", "overloaded_error", "UNAVAILABLE"),
    "unavailable": ("server_error", "api_error", "UNAVAILABLE"),
    "timeout": ("server_error", "timeout_error", "DEADLINE_EXCEEDED"),
}


class GatewayError(Exception):
    """Base of every error the translator raises on purpose."""


class UserFacingError(GatewayError):
    status = 500
    kind = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.headers = dict(headers or {})

    def body(self, protocol: Protocol) -> dict[str, Any]:
        oai_type, ant_type, gem_status = _KINDS.get(self.kind, _KINDS["api_error"])
        if protocol is Protocol.ANTHROPIC:
            return {"type": "error", "error": {"type": ant_type, "message": self.message}}
        if protocol is Protocol.GEMINI:
            return {"error": {"code": self.status, "message": self.message, "status": gem_status}}
        return {
            "error": {
                "message": self.message,
                "type": oai_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def render(self, protocol: Protocol) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and JSON body of this error as ``protocol`` spells errors."""
        headers = {"content-type": "application/json", **self.headers}
        return self.status, headers, orjson.dumps(self.body(protocol))

    def stream_event(self, protocol: Protocol) -> bytes:
        """The in-band error for a stream the client is already reading."""
        data = orjson.dumps(self.body(protocol))
        if protocol is Protocol.ANTHROPIC:
            return b"event: error\ndata: " + data + b"\n\n"
        return b"data: " + data + b"\n\n"


class BadRequest(UserFacingError):
    status, kind = 400, "invalid_request"


class Unauthorized(UserFacingError):
    status, kind, code = 401, "authentication", "invalid_api_key"


class Forbidden(UserFacingError):
    status, kind = 403, "permission"


class NotFound(UserFacingError):
    status, kind = 404, "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class HeadersTooLarge(UserFacingError):
    status, kind = 431, "request_too_large"


class RateLimited(UserFacingError):
    status, kind, code = 429, "rate_limit", "rate_limit_exceeded"


class InsufficientQuota(UserFacingError):
    status, kind, code = 429, "insufficient_quota", "insufficient_quota"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("x-should-retry", "false")


class UpstreamError(UserFacingError):
    status, kind = 502, "api_error"


class ServiceUnavailable(UserFacingError):
    status, kind = 503, "unavailable"
