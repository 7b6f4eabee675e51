"""The webhook signature check, Stripe's scheme: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from portal.payments.stripe import SignatureError, sign, verify

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","type":"checkout.session.completed"}'
NOW = 1_800_000_000


def reference_mac(ts: int, body: bytes = BODY, secret: str = SECRET) -> str:
    """Computed here from Stripe's documentation, not with the code under test."""
    return hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()


def test_signature_matches_stripes_scheme() -> None:
    """``sign`` writes exactly the header Stripe sends, and ``verify`` accepts it."""
    assert f"t={NOW},v1={reference_mac(NOW)}" == sign(BODY, SECRET, NOW)
    assert NOW == verify(BODY, f"t={NOW},v1={reference_mac(NOW)}", SECRET, now=NOW)


@pytest.mark.parametrize("header", [
    f"t={NOW},v1={reference_mac(NOW)}",
    f"t={NOW},v1={'0' * 64},v1={reference_mac(NOW)}",
    f"t={NOW}, v1={reference_mac(NOW)}, v0=ignored",
    f"t={NOW - 299},v1={reference_mac(NOW - 299)}",
], ids=["plain", "rotated-secret-second-v1", "spaces-and-v0", "just-inside-tolerance"])
def test_valid_headers_are_accepted(header: str) -> None:
    """Any one matching v1 inside the tolerance window is enough."""
    verify(BODY, header, SECRET, now=NOW, tolerance_s=300)


@pytest.mark.parametrize(("body", "header", "reason"), [
    (BODY, f"t={NOW},v1={reference_mac(NOW, secret='whsec_other')}", "mismatch"),
    (BODY + b" ", f"t={NOW},v1={reference_mac(NOW)}", "mismatch"),
    (BODY, f"t={NOW + 1},v1={reference_mac(NOW)}", "mismatch"),
    (BODY, f"t={NOW - 301},v1={reference_mac(NOW - 301)}", "tolerance"),
    (BODY, f"t={NOW + 301},v1={reference_mac(NOW + 301)}", "tolerance"),
    (BODY, f"v1={reference_mac(NOW)}", "no timestamp"),
    (BODY, f"t={NOW}", "no v1"),
    (BODY, f"t={NOW},v0={reference_mac(NOW)}", "no v1"),
    (BODY, f"t=soon,v1={reference_mac(NOW)}", "malformed"),
    (BODY, "", "no timestamp"),
], ids=["other-secret", "tampered-body", "tampered-timestamp", "replayed-old", "from-the-future",
        "no-t", "no-v1", "v0-only", "bad-t", "empty"])
def test_invalid_headers_are_refused(body: bytes, header: str, reason: str) -> None:
    """Wrong secret, changed body or timestamp, outside the window, or malformed: refused, saying why."""
    with pytest.raises(SignatureError, match=reason):
        verify(body, header, SECRET, now=NOW, tolerance_s=300)
