"""Admission: who is calling, may they use this model, can their balance cover it.

One Redis round trip (``tokengate.billing.scripts.ADMIT``) checks the key, the
model allow-list, the key's rate limits and the balance, and places a hold for
the request's estimated maximum cost. The hold is released and the real cost
charged when the request's metering event is settled.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from tokengate import store
from tokengate.billing.ops import Billing
from tokengate.pricing import Price
from tokengate.store import KeyInfo
from translator.auth import NO_KEY
from translator.errors import Forbidden, InsufficientQuota, RateLimited, ServiceUnavailable, Unauthorized
from translator.protocols import Protocol

BYTES_PER_TOKEN = 3  # conservative: real prompts run about 4 bytes per token


def requested_output(protocol: Protocol, body: dict[str, Any]) -> int | None:
    """The caller's own cap on output tokens, if it set one."""
    if protocol is Protocol.GEMINI:
        gc = body.get("generationConfig") or body.get("generation_config") or {}
        v = gc.get("maxOutputTokens", gc.get("max_output_tokens")) if isinstance(gc, dict) else None
    elif protocol is Protocol.OPENAI:
        v = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        v = body.get("max_tokens")
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def estimate_hold(price: Price, body_bytes: int, output_cap: int) -> int:
    """An upper estimate of the request's cost in nano-USD: every body byte a prompt
    token, up to ``output_cap`` output tokens, each at its bucket's dearest rate."""
    prompt = body_bytes // BYTES_PER_TOKEN + 1
    r = price.rates_for(prompt)
    pico = prompt * max(r.input, r.cache_write) + output_cap * max(r.output, r.reasoning)
    return -(-pico // 1000)


async def admit(billing: Billing, api_key: str | None, model: str, *, hold: int, hold_id: str,
                hold_ttl_s: int) -> KeyInfo:
    if not api_key:
        raise Unauthorized(NO_KEY)
    account = store.account_of(api_key)
    if account is None:
        raise Unauthorized("Incorrect API key provided. Check the key and how it is sent.")
    try:
        a = await billing.admit(account, store.digest(api_key), model, hold=hold, hold_id=hold_id,
                                hold_ttl_s=hold_ttl_s)
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable("The gateway cannot check keys and balances right now; retry shortly.") from exc
    if a.outcome == "ok":
        return KeyInfo(account=account, key_id=a.key_id)
    if a.outcome == "unknown":
        raise Unauthorized("Incorrect API key provided. Check the key and how it is sent.")
    if a.outcome == "revoked":
        raise Unauthorized("This API key has been revoked.")
    if a.outcome == "expired":
        raise Unauthorized("This API key has expired.")
    if a.outcome == "forbidden":
        raise Forbidden(f"This API key may not use the model '{model}'.")
    if a.outcome == "rate_limited":
        raise RateLimited(f"Rate limit reached for this API key; retry in {a.retry_after}s.",
                          headers={"retry-after": str(a.retry_after)})
    raise InsufficientQuota(
        "Your balance is too low for this request (it needs up to "
        f"${hold / 1e9:.6f}, ${max(a.available, 0) / 1e9:.6f} is available). Top up to continue.")
