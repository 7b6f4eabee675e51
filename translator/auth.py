"""Who is calling: the tokengate key checked against Redis in one round trip."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from core import redisconn, store
from core.store import KeyInfo
from translator.errors import ServiceUnavailable, Unauthorized

_HINT = "Check the key, and send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
NO_KEY = f"No API key provided. {_HINT}"


async def authenticate(redis: aioredis.Redis, api_key: str | None) -> KeyInfo:
    if not api_key:
        raise Unauthorized(NO_KEY)
    account = store.account_of(api_key)
    if account is None:
        raise Unauthorized(f"Incorrect API key provided. {_HINT}")
    try:
        h = await redis.hgetall(store.key_record(account, store.digest(api_key)))
    except redisconn.ERRORS as exc:
        raise ServiceUnavailable("The gateway cannot check keys right now; retry shortly.") from exc
    if not h:
        raise Unauthorized(f"Incorrect API key provided. {_HINT}")
    info = KeyInfo.from_hash(account, h)
    if info.revoked:
        raise Unauthorized("This API key has been revoked.")
    if not info.usable_at(time.time()):
        raise Unauthorized("This API key has expired.")
    return info
