"""CSRF tokens: an HMAC of the browser's own cookie under the server's secret."""

from __future__ import annotations

import pytest

from portal.security.csrf import csrf_ok, csrf_token

SECRET = b"server-secret"


def test_token_is_stable_for_one_binding() -> None:
    """The same session always gets the same token (forms in several tabs keep working)."""
    assert csrf_token(SECRET, "acct.session") == csrf_token(SECRET, "acct.session")
    assert csrf_ok(SECRET, "acct.session", csrf_token(SECRET, "acct.session"))


@pytest.mark.parametrize(("binding", "given"), [
    ("acct.session", ""),
    ("acct.session", "forged"),
    ("acct.session", csrf_token(SECRET, "acct.other-session")),
    ("acct.session", csrf_token(b"another-secret", "acct.session")),
    ("", csrf_token(SECRET, "")),
], ids=["missing", "forged", "other-session", "other-secret", "no-binding"])
def test_any_other_token_is_refused(binding: str, given: str) -> None:
    """Missing, forged, another session's or another server's token: refused."""
    assert not csrf_ok(SECRET, binding, given)
