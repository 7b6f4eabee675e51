"""Fixed-window counters of failed attempts (log-ins, redeem codes) in Redis.

A window starts at the first failure and lasts ``window_s``; at ``limit``
failures further attempts are refused without being checked until it ends.
A success clears the counter of what succeeded (the e-mail), not the IP's.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from core.store import text


def ident_key(kind: str, ident: str) -> str:
    """A global counter key; the identity is hashed (e-mails and IPs are not keys' names)."""
    return f"tg:portal:fail:{kind}:{hashlib.sha256(ident.encode()).hexdigest()[:32]}"


class FailureLimit:
    def __init__(self, redis: aioredis.Redis, *, limit: int, window_s: int) -> None:
        self.redis, self.limit, self.window_s = redis, limit, window_s

    async def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        count = await self.redis.get(key)
        if count is None or int(text(count)) < self.limit:
            return 0
        ttl = int(await self.redis.ttl(key))
        return max(ttl, 1)

    async def fail(self, key: str) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.incr(key)
            p.expire(key, self.window_s, nx=True)
            await p.execute()

    async def clear(self, key: str) -> None:
        await self.redis.delete(key)
