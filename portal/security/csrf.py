"""CSRF tokens: an HMAC of what the browser holds, checked on every POST.

The token is ``HMAC-SHA256(secret, "csrf:" + binding)`` where the binding is the
session cookie when logged in, else an anonymous random cookie (so the log-in and
sign-up forms are covered too). An attacker's page can neither read the cookie
(http-only, same-site) nor compute the HMAC without the server's secret, and a
token from one session is worthless in another. Logging in starts a new
session, so a token seen before log-in stops working after it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

FIELD = "csrf"


def csrf_token(secret: bytes, binding: str) -> str:
    mac = hmac.new(secret, b"csrf:" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_ok(secret: bytes, binding: str, given: str) -> bool:
    if not binding or not given:
        return False
    return hmac.compare_digest(csrf_token(secret, binding).encode(), given.encode())
