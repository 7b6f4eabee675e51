"""Sessions in Redis under the account's hash tag.

The cookie is ``<account>.<secret>``; Redis keeps ``tg:{<account>}:portal:session:<sha256(secret)>``
(a hash: e-mail, created), so a copy of Redis holds no usable session and every
key of one account stays in its Cluster slot. A session lives 12 hours from its
last use and never longer than 7 days; log-out deletes it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from core import store
from core.store import text

COOKIE = "tg_session"
ANON_COOKIE = "tg_anon"  # binds the CSRF token of the log-in and sign-up forms
IDLE_S = 12 * 3600
ABSOLUTE_S = 7 * 24 * 3600


def session_key(account: str, secret: str) -> str:
    return f"tg:{{{account}}}:portal:session:{hashlib.sha256(secret.encode()).hexdigest()}"


def _split(cookie: str) -> tuple[str, str] | None:
    account, sep, secret = cookie.partition(".")
    if not sep or not store.ACCOUNT_RE.match(account) or not 32 <= len(secret) <= 64:
        return None
    return account, secret


@dataclass(frozen=True, slots=True)
class Session:
    account: str
    email: str
    cookie: str
    created: float
    key: str  # its Redis hash


class Sessions:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(self, account: str, email: str) -> Session:
        secret = secrets.token_urlsafe(32)
        now = time.time()
        key = session_key(account, secret)
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(key, mapping={"email": email, "created": f"{now:.3f}"})
            p.expire(key, IDLE_S)
            await p.execute()
        return Session(account, email, f"{account}.{secret}", now, key)

    async def load(self, cookie: str) -> Session | None:
        parts = _split(cookie)
        if parts is None:
            return None
        key = session_key(*parts)
        email, created = await self.redis.hmget(key, ["email", "created"])
        if email is None or created is None:
            return None
        if time.time() - float(text(created)) > ABSOLUTE_S:
            await self.redis.delete(key)
            return None
        await self.redis.expire(key, IDLE_S)
        return Session(parts[0], text(email), cookie, float(text(created)), key)

    async def destroy(self, cookie: str) -> None:
        if (parts := _split(cookie)) is not None:
            await self.redis.delete(session_key(*parts))

    async def flash(self, s: Session, message: str) -> None:
        """A message for the next page this session sees."""
        await self.redis.hset(s.key, "flash", message)

    async def pop_flash(self, s: Session) -> str:
        async with self.redis.pipeline(transaction=True) as p:
            p.hget(s.key, "flash")
            p.hdel(s.key, "flash")
            msg, _ = await p.execute()
        return text(msg) if msg is not None else ""
