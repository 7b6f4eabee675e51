"""Redeem codes: issued by an admin for an amount, redeemed once into one account.

    tg:portal:code:<sha256(code)>  hash: amount, created, created_by, note, hint, expires_at,
                                   redeemed_by, redeemed_at
    tg:portal:codes                zset: code hash -> created (the admin list)

Only the code's SHA-256 is kept; the admin sees a code once when it is issued.
A code looks like ``TG-7K3Q-…`` (16 Crockford base-32 characters, 80 bits);
input is forgiving (case, dashes, spaces, O/0 and I/L/1).

Claiming marks the code with the account atomically; the money then moves as
an order whose id is derived from the code, completed through
``Orders.complete`` — so if the process dies between the two steps, the same
account redeeming the same code again finishes the credit, still only once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.store import text
from portal.payments.orders import Orders
from portal.payments.provider import Done, Refused, Step, TopUp
from portal.security.ratelimit import FailureLimit

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODES = "tg:portal:codes"
MAX_FAILURES_PER_HOUR = 10
_CONFUSABLE = str.maketrans("OIL", "011")

# KEYS: code   ARGV: account, now
_CLAIM = """
local c = redis.call('HMGET', KEYS[1], 'amount', 'redeemed_by', 'expires_at')
if not c[1] then return {'unknown'} end
if c[2] and c[2] ~= '' and c[2] ~= ARGV[1] then return {'used'} end
local exp = tonumber(c[3] or '0') or 0
if (not c[2] or c[2] == '') and exp > 0 and tonumber(ARGV[2]) >= exp then return {'expired'} end
if not c[2] or c[2] == '' then
  redis.call('HSET', KEYS[1], 'redeemed_by', ARGV[1], 'redeemed_at', ARGV[2])
end
return {'ok', c[1]}
"""


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(16))
    return "TG-" + "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalise(code: str) -> str:
    s = "".join(ch for ch in code.upper() if ch.isalnum())
    s = s.translate(_CONFUSABLE)
    return s[2:] if len(s) == 18 and s.startswith("TG") else s


def digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def code_key(code_digest: str) -> str:
    return f"tg:portal:code:{code_digest}"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    digest: str
    hint: str  # the last four characters
    amount_nano: int
    created: float
    created_by: str
    note: str
    expires_at: int
    redeemed_by: str
    redeemed_at: float


class RedeemCodes:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)

    async def issue(self, amount_nano: int, *, count: int, by: str, note: str = "",
                    expires_at: int = 0) -> list[str]:
        if amount_nano <= 0:
            raise ValueError("a code must be worth a positive amount")
        if not 1 <= count <= 100:
            raise ValueError("issue 1 to 100 codes at a time")
        codes, now = [], time.time()
        for _ in range(count):
            code = new_code()
            d = digest(code)
            # two keys of two hash slots, so no transaction (Redis Cluster): the code first, then the
            # listing (a code missing from the listing still redeems; the listing skips a missing code)
            await self.redis.hset(code_key(d), mapping={"amount": amount_nano, "created": f"{now:.3f}",
                                                        "created_by": by, "note": note[:200], "hint": code[-4:],
                                                        "expires_at": expires_at})
            await self.redis.zadd(CODES, {d: now})
            codes.append(code)
        return codes

    async def recent(self, n: int = 50) -> list[CodeInfo]:
        out = []
        for d in await self.redis.zrevrange(CODES, 0, n - 1):
            h = {text(k): text(v) for k, v in (await self.redis.hgetall(code_key(text(d)))).items()}
            if h:
                out.append(CodeInfo(text(d), h.get("hint", ""), int(h["amount"]), float(h["created"]),
                                    h.get("created_by", ""), h.get("note", ""), int(h.get("expires_at") or 0),
                                    h.get("redeemed_by", ""), float(h.get("redeemed_at") or 0)))
        return out

    async def claim(self, code: str, account: str) -> tuple[str, int]:
        """('ok', amount) when the code is (now or already) this account's; else (reason, 0)."""
        res = await self._claim(keys=[code_key(digest(code))], args=[account, f"{time.time():.3f}"])
        outcome = text(res[0])
        return (outcome, int(text(res[1]))) if outcome == "ok" else (outcome, 0)


class RedeemProvider:
    name = "redeem"
    label = "Redeem code"
    chooses_amount = False

    _REFUSALS = {"unknown": "That code is not valid.", "used": "That code has already been redeemed.",
                 "expired": "That code has expired."}

    def __init__(self, orders: Orders, codes: RedeemCodes, limit: FailureLimit) -> None:
        self.orders, self.codes, self.limit = orders, codes, limit

    async def start(self, top_up: TopUp) -> Step:
        attempts = f"tg:{{{top_up.account}}}:portal:fail:redeem"
        if wait := await self.limit.retry_after(attempts):
            return Refused(f"Too many invalid codes; try again in {max(wait // 60, 1)} minutes.")
        code = top_up.form.get("code", "")
        outcome, amount = await self.codes.claim(code, top_up.account) if normalise(code) else ("unknown", 0)
        if outcome != "ok":
            await self.limit.fail(attempts)
            return Refused(self._REFUSALS[outcome])
        order_id = "rc" + digest(code)[:30]  # one order per code: a retry finishes the same one
        hint = normalise(code)[-4:]
        order = await self.orders.open(top_up.account, order_id, amount, self.name, note=f"code …{hint}")
        credited = await self.orders.complete(order, reason=f"redeem code …{hint}")
        return Done(order, credited)
