"""Top-up orders, and the one place a payment becomes money.

    tg:{<account>}:portal:order:<id>  hash: id, amount (nano-USD), provider, status, created, paid_at, note
    tg:{<account>}:portal:orders      zset: order id -> created (newest first on the account page)

An order's id comes from the top-up form (a random nonce rendered into it), so a
double-clicked form opens one order, not two. ``complete`` credits the balance
through ``Billing.credit`` with the reference ``order:<id>``: the credit script's
done-marker makes a second completion — a webhook delivered twice, two
replicas racing — change nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.billing.ops import Billing
from core.store import text

ORDER_ID_RE = re.compile(r"^[a-z0-9]{16,40}$")
PENDING, PAID, FAILED = "pending", "paid", "failed"

_OPEN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'amount', ARGV[2], 'provider', ARGV[3], 'status', 'pending',
           'created', ARGV[4], 'note', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""


def order_key(account: str, order_id: str) -> str:
    return f"tg:{{{account}}}:portal:order:{order_id}"


def orders_index(account: str) -> str:
    return f"tg:{{{account}}}:portal:orders"


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    account: str
    amount_nano: int
    provider: str
    status: str
    created: float
    paid_at: float = 0.0
    note: str = ""


class Orders:
    def __init__(self, redis: aioredis.Redis, billing: Billing) -> None:
        self.redis, self.billing = redis, billing
        self._open = redis.register_script(_OPEN)

    async def open(self, account: str, order_id: str, amount_nano: int, provider: str, note: str = "") -> Order:
        """The order with this id, opened now unless it already was (then unchanged)."""
        if not ORDER_ID_RE.match(order_id):
            raise ValueError("malformed order id")
        if amount_nano <= 0:
            raise ValueError("a top-up must be positive")
        await self._open(keys=[order_key(account, order_id), orders_index(account)],
                         args=[order_id, amount_nano, provider, f"{time.time():.3f}", note])
        order = await self.get(account, order_id)
        assert order is not None
        return order

    async def get(self, account: str, order_id: str) -> Order | None:
        if not ORDER_ID_RE.match(order_id):
            return None
        h = {text(k): text(v) for k, v in (await self.redis.hgetall(order_key(account, order_id))).items()}
        if not h:
            return None
        return Order(h["id"], account, int(h["amount"]), h["provider"], h["status"], float(h["created"]),
                     float(h.get("paid_at") or 0), h.get("note", ""))

    async def recent(self, account: str, n: int = 10) -> list[Order]:
        ids = await self.redis.zrevrange(orders_index(account), 0, n - 1)
        out = [await self.get(account, text(i)) for i in ids]
        return [o for o in out if o is not None]

    async def complete(self, order: Order, *, reason: str) -> bool:
        """Credit the order's amount exactly once; True when this call credited it."""
        new_balance = await self.billing.credit(order.account, order.amount_nano, kind="topup",
                                                ref=f"order:{order.id}", reason=reason)
        key = order_key(order.account, order.id)
        if await self.redis.hsetnx(key, "paid_at", f"{time.time():.3f}"):
            await self.redis.hset(key, "status", PAID)
        return new_balance is not None

    async def fail(self, order: Order, reason: str) -> None:
        key = order_key(order.account, order.id)
        if order.status == PENDING:
            await self.redis.hset(key, mapping={"status": FAILED, "note": reason[:200]})
