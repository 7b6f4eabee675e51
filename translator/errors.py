"""The gateway's error tree, and the table type each protocol spells errors with.

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

A *kind* is the protocol-neutral name of an error. Each protocol spells kinds its
own way — an ``ErrorTable`` in ``translator/protocols/<name>/errors.py`` — and its
codec renders any ``UserFacingError`` in that shape (docs/protocols.md, "Errors").
Exceptions become answers at one boundary, ``translator/extproc/boundary.py``;
anything that is not a ``UserFacingError`` is a 500 ``api_error`` there.

What an upstream's HTTP status means (``kind_for_status``) is HTTP's, the same
whichever protocol answered (529 is Anthropic's "overloaded", and means that from
anyone); the tables say how each protocol names and numbers the kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


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


def cut_short() -> UpstreamError:
    """An upstream stream that ended without its protocol's last event: an error, never a finished answer."""
    return UpstreamError("upstream stream ended before it finished", status=502)


# --- what an HTTP status means, and the usual status of a kind ---------------------------

_STATUS_KIND = {
    400: "invalid_request", 401: "authentication", 403: "permission", 404: "not_found",
    413: "request_too_large", 429: "rate_limit", 500: "api_error", 503: "overloaded",
    504: "timeout", 529: "overloaded",
}
_KIND_STATUS = {
    "invalid_request": 400, "authentication": 401, "permission": 403, "not_found": 404,
    "request_too_large": 413, "rate_limit": 429, "insufficient_quota": 429, "api_error": 500,
    "overloaded": 503, "unavailable": 503, "timeout": 504,
}


def kind_for_status(status: int) -> str:
    """The error kind of an upstream HTTP status (docs/protocols.md, "Errors")."""
    if status in _STATUS_KIND:
        return _STATUS_KIND[status]
    return "api_error" if status >= 500 else "invalid_request"


# --- how one protocol spells the kinds ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spelling:
    """One row of a protocol's error table: how it spells one error kind."""

    kind: str
    name: str  # the protocol's error type (Gemini: its status name)
    status: int | None = None  # the status this protocol gives the kind; None: the kind's usual one when
    #                            reading, the error's own when an upstream error is respelled for a client
    code: str | None = None  # the code this protocol's clients get for an upstream error that has none
    read_only: bool = False  # a name only read in upstream errors, never written


class ErrorTable:
    """A protocol's error kinds, read both ways (each row has its test in tests/protocols/test_error_tables.py).

    Writing: the first row that is not ``read_only`` for a kind (``api_error``'s for a kind the
    table lacks). Reading an upstream's in-band error: the first row with its name.
    """

    def __init__(self, *rows: Spelling) -> None:
        self.rows = rows
        self._write: dict[str, Spelling] = {}
        self._read: dict[str, Spelling] = {}
        for r in rows:
            if not r.read_only:
                self._write.setdefault(r.kind, r)
            self._read.setdefault(r.name, r)
        if "api_error" not in self._write:
            raise ValueError("an error table needs an api_error row")

    def __iter__(self) -> Iterator[Spelling]:
        return iter(self.rows)

    def spell(self, kind: str) -> Spelling:
        """How this protocol writes ``kind``."""
        return self._write.get(kind) or self._write["api_error"]

    def read(self, name: object) -> tuple[str, int]:
        """The kind and status of an upstream error this protocol named ``name`` (unknown: api_error, 500)."""
        row = self._read.get(name) if isinstance(name, str) else None
        if row is None:
            return "api_error", 500
        return row.kind, row.status if row.status is not None else _KIND_STATUS.get(row.kind, 500)

    def respell(self, err: UserFacingError) -> UserFacingError:
        """An upstream's error as this protocol's client gets it: the status and code this protocol
        gives its kind, where it has its own (Anthropic's overloaded is 529, OpenAI's 503)."""
        row = self.spell(err.kind)
        if row.status is not None:
            err.status = row.status
        if err.code is None and row.code is not None:
            err.code = row.code
        return err

    def client_status(self, status: int) -> int:
        """The status an upstream's error status becomes for this protocol's client."""
        if status < 400:
            return status
        row = self.spell(kind_for_status(status))
        return row.status if row.status is not None else status
