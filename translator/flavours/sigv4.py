"""AWS Signature Version 4 over one request's headers (docs/providers.md, "AWS Bedrock").

Small and dependency-free: a canonical request, a string to sign, an HMAC chain. The signing key
depends only on the secret, the day, the region and the service, so it is derived once a day and
kept; a request costs two SHA-256 and one HMAC (docs/performance.md has the measurement against
botocore's signer). Checked against AWS's published test suite and against botocore
(tests/test_sigv4.py).

The canonical URI is the path as sent, URI-encoded once more (every AWS service but S3 wants that:
a model id's ``:`` travels as ``%3A`` and is signed as ``%253A``). The signed headers are ``host``,
``x-amz-date``, ``x-amz-security-token`` with temporary credentials, and whatever the caller adds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class Signer:
    """Signs requests to one service in one region with one set of keys."""

    def __init__(self, keys: Keys, region: str, service: str) -> None:
        self.keys, self.region, self.service = keys, region, service
        self._day = ""
        self._key = b""

    def __repr__(self) -> str:
        return f"Signer({self.keys.access_key_id}, {self.region}, {self.service})"

    def headers(self, method: str, host: str, path: str, body: bytes, extra: dict[str, str] | None = None,
                *, now: float | None = None) -> dict[str, str]:
        """The headers that authenticate the request: ``x-amz-date``, ``x-amz-security-token`` (temporary
        credentials), ``authorization``. ``path`` is the request target as sent (query included); ``extra``:
        more headers to sign, as they are sent."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        out = {"x-amz-date": stamp}
        if self.keys.session_token:
            out["x-amz-security-token"] = self.keys.session_token
        signed = {"host": host, **out, **{k.lower(): v for k, v in (extra or {}).items()}}
        names = sorted(signed)
        path, _, query = path.partition("?")
        canonical = "\n".join((
            method, canonical_uri(path), canonical_query(query),
            "".join(f"{n}:{' '.join(signed[n].split())}\n" for n in names),
            ";".join(names), hashlib.sha256(body).hexdigest(),
        ))
        day = stamp[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        out["authorization"] = (f"{ALGORITHM} Credential={self.keys.access_key_id}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return out

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = ("AWS4" + self.keys.secret_access_key).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key


def canonical_uri(path: str) -> str:
    """The path, dot segments removed, URI-encoded (again)."""
    segments: list[str] = []
    for seg in (path or "/").split("/")[1:]:
        if seg == "..":
            if segments:
                segments.pop()
        elif seg != ".":
            segments.append(seg)
    normal = "/" + "/".join(segments)
    return quote(normal, safe="/~")


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        k, _, v = item.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))
