"""Password hashing with scrypt (stdlib ``hashlib.scrypt``), self-describing and upgradable.

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``. The parameters are read
back from the stored hash, so raising ``N`` later keeps old hashes verifiable and
``needs_rehash`` tells the log-in to re-hash with the current ones. N=2^15, r=8
(32 MiB, ~50-100 ms a guess on one core) is OWASP's scrypt recommendation floor
raised once; it runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_LENGTH, MAX_LENGTH = 10, 1024


class PasswordPolicyError(ValueError):
    """A password that may not be set; the message is fit for the sign-up page."""


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"Use at most {MAX_LENGTH} characters.")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * n * r * p + 1024 * 1024)


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_derive(password, salt, n, r, p))}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches; a malformed ``stored`` is never a match."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        got = _derive(password, _unb64(salt), int(n), int(r), int(p))
        return hmac.compare_digest(got, _unb64(key))
    except (ValueError, TypeError):
        return False


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


# Verified when the e-mail is unknown, so a log-in takes as long either way.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16), n=N)
