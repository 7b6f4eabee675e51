"""Creating, listing and revoking API keys in Redis (the ``tokengate keys`` command)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from core import store


async def create_key(
    r: aioredis.Redis,
    account: str,
    *,
    name: str = "default",
    expires_at: int = 0,
    models: list[str] | None = None,
    rpm: int = 0,
    tpm: int = 0,
) -> str:
    """Create a key for ``account`` (and the account if new); return the key once."""
    if not store.ACCOUNT_RE.match(account):
        raise ValueError("account ids are 1-32 lowercase letters and digits")
    api_key = store.new_key(account)
    d = store.digest(api_key)
    await r.sadd(store.ACCOUNTS, account)  # not in the transaction: another hash slot (Redis Cluster)
    async with r.pipeline(transaction=True) as p:  # the account's keys: one slot
        p.hsetnx(store.account_key(account), "created", str(int(time.time())))
        fields = store.key_fields(api_key, name=name, expires_at=expires_at, models=models, rpm=rpm, tpm=tpm)
        p.hset(store.key_record(account, d), mapping=fields)  # type: ignore[arg-type]  # redis-py's Mapping is invariant
        p.sadd(store.account_keys(account), d)
        await p.execute()
    return api_key


async def list_keys(r: aioredis.Redis, account: str) -> list[dict[str, str]]:
    digests = sorted(store.text(d) for d in await r.smembers(store.account_keys(account)))
    out = []
    for d in digests:
        h = await r.hgetall(store.key_record(account, d))
        out.append({store.text(k): store.text(v) for k, v in h.items()})
    return out


async def revoke_key(r: aioredis.Redis, account: str, key_id: str) -> bool:
    for d in await r.smembers(store.account_keys(account)):
        rec = store.key_record(account, store.text(d))
        if store.text(await r.hget(rec, "id") or b"") == key_id:
            await r.hset(rec, "revoked", "1")
            return True
    return False
