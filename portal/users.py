"""Portal users. Each owns one billing account, made at sign-up with a random id.

    tg:portal:user:<email>          hash: email, account, password (scrypt), created, tz
    tg:{<account>}:portal:owner     the owner's e-mail (admin listings)

The user record is global (it is found by e-mail at log-in); everything else a
user has lives under its account's hash tag. E-mails are compared lower-cased.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from core import store
from core.billing.ops import Billing
from core.store import text
from portal.security import passwords

EMAIL_RE = re.compile(r"^[^@\s{}<>\"']{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")
_ACCOUNT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

# Creates the user only if the e-mail is new: one atomic step on one key.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'email', ARGV[1], 'account', ARGV[2], 'password', ARGV[3],
           'created', ARGV[4], 'tz', ARGV[5])
return 1
"""


class SignupError(ValueError):
    """Why a sign-up was refused, fit for the page."""


def user_key(email: str) -> str:
    return f"tg:portal:user:{email}"


def owner_key(account: str) -> str:
    return f"tg:{{{account}}}:portal:owner"


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


@dataclass(frozen=True, slots=True)
class User:
    email: str
    account: str
    tz: str
    created: float


def _user(h: dict[str, str]) -> User:
    return User(h["email"], h["account"], h.get("tz") or "UTC", float(h.get("created") or 0))


class Users:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.billing = Billing(redis)
        self._create = redis.register_script(_CREATE)

    async def _hash(self, email: str) -> dict[str, str]:
        return {text(k): text(v) for k, v in (await self.redis.hgetall(user_key(email))).items()}

    async def get(self, email: str) -> User | None:
        h = await self._hash(email)
        return _user(h) if h.get("account") else None

    async def sign_up(self, raw_email: str, password: str, tz: str = "UTC") -> User:
        email = normalise_email(raw_email)
        if len(email) > 254 or not EMAIL_RE.match(email):
            raise SignupError("Enter a valid e-mail address.")
        try:
            passwords.check_policy(password)
        except passwords.PasswordPolicyError as exc:
            raise SignupError(str(exc)) from None
        if await self.redis.exists(user_key(email)):
            raise SignupError("That e-mail already has an account: log in instead.")
        hashed = await asyncio.to_thread(passwords.hash_password, password)
        account = await self._new_account()
        now = time.time()
        if not await self._create(keys=[user_key(email)], args=[email, account, hashed, f"{now:.3f}", tz]):
            await self.redis.srem(store.ACCOUNTS, account)  # lost a race for the e-mail
            raise SignupError("That e-mail already has an account: log in instead.")
        await self.redis.set(owner_key(account), email)
        await self.billing.credit(account, 0, kind="open", ref="open", reason="account created")
        return User(email, account, tz, now)

    async def _new_account(self) -> str:
        """A fresh random account id, claimed in ``tg:accounts`` (so two sign-ups never share one)."""
        while True:
            account = "u" + "".join(secrets.choice(_ACCOUNT_ALPHABET) for _ in range(15))  # ~77 bits
            if await self.redis.sadd(store.ACCOUNTS, account):
                return account

    async def authenticate(self, raw_email: str, password: str) -> User | None:
        """The user when the password matches; as slow for an unknown e-mail as for a wrong password."""
        email = normalise_email(raw_email)
        h = await self._hash(email) if len(email) <= 254 else {}
        stored = h.get("password") or passwords.DUMMY_HASH
        too_long = len(password) > passwords.MAX_LENGTH  # never set; still costs one scrypt
        ok = await asyncio.to_thread(passwords.verify_password, "" if too_long else password, stored)
        if too_long or not ok or not h.get("account"):
            return None
        if passwords.needs_rehash(stored):
            await self.redis.hset(user_key(email), "password",
                                  await asyncio.to_thread(passwords.hash_password, password))
        return _user(h)

    async def set_zone(self, email: str, tz: str) -> None:
        await self.redis.hset(user_key(email), "tz", tz)

    async def owner(self, account: str) -> str:
        v = await self.redis.get(owner_key(account))
        return text(v) if v is not None else ""
