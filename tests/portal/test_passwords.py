"""Password hashing: scrypt, salted, self-describing, constant-time compared."""

from __future__ import annotations

import pytest

from portal.security import passwords


def test_a_hash_verifies_its_password_only() -> None:
    """The right password verifies; a wrong one, or the right one with other case, does not."""
    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify_password("correct horse battery", stored)
    assert not passwords.verify_password("Correct horse battery", stored)
    assert not passwords.verify_password("", stored)


def test_hashes_are_salted_and_name_their_parameters() -> None:
    """Two hashes of one password differ; each says scrypt and its N, r, p."""
    a, b = passwords.hash_password("same password"), passwords.hash_password("same password")
    assert a != b
    assert a.startswith(f"scrypt${passwords.N}${passwords.R}${passwords.P}$")
    assert not passwords.needs_rehash(a)


def test_old_parameters_still_verify_and_ask_for_a_rehash() -> None:
    """A hash made with weaker parameters verifies, and is flagged for re-hashing at log-in."""
    old = passwords.hash_password("an older password", n=2**10)
    assert passwords.verify_password("an older password", old)
    assert passwords.needs_rehash(old)


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$x$8$1$a$b", "bcrypt$1$2$3$4$5", "scrypt$16384$8$1$!!$!!"],
                         ids=["empty", "no-fields", "bad-n", "other-scheme", "bad-base64"])
def test_malformed_stored_hash_never_matches(stored: str) -> None:
    """A damaged or foreign stored value is a mismatch, never an exception."""
    assert not passwords.verify_password("anything", stored)


@pytest.mark.parametrize(("password", "ok"), [("short", False), ("x" * 9, False), ("x" * 10, True),
                                               ("x" * 1024, True), ("x" * 1025, False)],
                         ids=["5", "9", "10", "1024", "1025"])
def test_password_policy_bounds_length(password: str, ok: bool) -> None:
    """At least 10 characters, at most 1024."""
    if ok:
        passwords.check_policy(password)
    else:
        with pytest.raises(passwords.PasswordPolicyError):
            passwords.check_policy(password)
