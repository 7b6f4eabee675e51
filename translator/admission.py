"""Admission: who is calling, may they use this model, can their balance cover it.

One Redis round trip (``core.billing.scripts.ADMIT``) checks the key, the
model allow-list, the key's rate limits and the balance, and places a hold for
the request's estimated maximum cost. The hold is released and the real cost
charged when the request's metering event is settled.

Most requests make no round trip at all: a key without rate limits on an account
whose balance covers many requests gets a *lease* in that call — a slice of the
balance moved into a hold owned by this process — and the process admits the
account's next requests against it locally, with the key's facts cached for
``key_cache_s``. Each request's cost comes out of the lease's hold when its event
settles; a lease that runs low is topped up (one call), one past half its TTL is
renewed, an idle one is given back, and a dead process's lease is released by the
reaper when its TTL ends. docs/billing.md states the bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from core import redisconn, store
from core.billing.ops import Admission, Billing, LeaseAsk
from core.config import Billing as BillingConfig
from core.pricing import Price
from core.store import KeyInfo
from translator import metrics
from translator.auth import NO_KEY
from translator.errors import (
    Forbidden,
    InsufficientQuota,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UserFacingError,
)
from translator.protocols.base import estimate_tokens

# tokengate_admission_outcomes_total's outcome for each refusal's error kind (fail_closed: Redis
# could not be asked in time, so the request is refused rather than let through unchecked)
OUTCOMES = {"authentication": "unauthenticated", "permission": "forbidden", "rate_limit": "rate_limited",
            "insufficient_quota": "insufficient_balance", "unavailable": "fail_closed"}
REDIS_TIMEOUT_S = 2.0  # how long a translator waits for Redis (its client's socket timeout)


def estimate_hold(price: Price, body_bytes: int, output_cap: int) -> int:
    """An upper estimate of the request's cost in nano-USD: the body's prompt estimate and a third
    more (prompts dense in tokens — code, CJK — run nearer 3 bytes a token than the estimate's 4),
    up to ``output_cap`` output tokens, each at its bucket's dearest rate."""
    estimate = estimate_tokens(body_bytes)
    prompt = estimate + estimate // 3 + 1
    r = price.rates_for(prompt)
    pico = prompt * max(r.input, r.cache_write) + output_cap * max(r.output, r.reasoning)
    return -(-pico // 1000)


@dataclass
class Lease:
    """This process's lease on one account: what it was granted and what it has used."""

    id: str
    granted: int = 0  # nano-USD moved into the lease hold, in all
    inflight: int = 0  # holds of running requests admitted against it
    spent: int = 0  # costs of its finished requests
    renew_at: float = 0.0  # monotonic: ask Redis again (renews the TTL) from here on
    dead_at: float = 0.0  # monotonic: the reaper may release it soon after; never used past this
    last_used: float = 0.0

    @property
    def available(self) -> int:
        return self.granted - self.inflight - self.spent


@dataclass(frozen=True, slots=True)
class CachedKey:
    key: KeyInfo  # account and key id, as each request admitted with it carries them
    expires_at: int  # unix seconds; 0: never
    models: frozenset[str]  # empty: every model
    until: float  # monotonic


@dataclass(frozen=True, slots=True)
class Admitted:
    key: KeyInfo
    lease_id: str = ""  # admitted against this process's lease; "": a hold of its own


class Admitter:
    """Admission for one translator process: its leases and its key cache."""

    def __init__(self, billing: Billing, cfg: BillingConfig, *, redis_timeout_s: float = REDIS_TIMEOUT_S) -> None:
        self.billing = billing
        self.cfg = cfg
        # The admission call stops counting a little before the client stops waiting for Redis.
        self.deadline_s = max(redis_timeout_s - 0.25, 0.1)
        self.leases: dict[str, Lease] = {}  # account -> its lease
        # key -> what the last round trip said; keyed by the key as the request carries it, so that a hit costs
        # no SHA-256 (the digest Redis knows it by) and no parsing
        self._keys: dict[str, CachedKey] = {}
        self._returning: set[asyncio.Task[None]] = set()  # grants given back in the background
        self._local = metrics.ADMISSIONS.labels("lease")
        self._redis = metrics.ADMISSIONS.labels("redis")
        self._outcomes = {o: metrics.ADMISSION_OUTCOMES.labels(o) for o in ("admitted", "other", *OUTCOMES.values())}
        self._admitted = self._outcomes["admitted"]

    async def admit(self, api_key: str | None, model: str, *, hold: int, hold_id: str,
                    reap_charge: int = 0) -> Admitted:
        """``reap_charge``: what the reaper charges should a hold placed here never be settled."""
        try:
            admitted = await self._admit(api_key, model, hold=hold, hold_id=hold_id, reap_charge=reap_charge)
        except UserFacingError as err:
            metrics.TALLY.inc(self._outcomes[OUTCOMES.get(err.kind, "other")])
            raise
        metrics.TALLY.inc(self._admitted)  # the tally: prometheus_client's inc takes a lock and writes a file
        return admitted

    async def _admit(self, api_key: str | None, model: str, *, hold: int, hold_id: str,
                     reap_charge: int) -> Admitted:
        if not api_key:
            raise Unauthorized(NO_KEY)
        cached = self._keys.get(api_key)
        # a key seen before is well formed, and its account known
        account = cached.key.account if cached is not None else store.account_of(api_key)
        if account is None:
            raise Unauthorized("Incorrect API key provided. Check the key and how it is sent.")
        now = time.monotonic()
        lease = self.leases.get(account)
        if lease is not None and now >= lease.dead_at:
            del self.leases[account]  # the reaper may release it any moment: never admit against it again
            lease = None
        if cached is not None and now < cached.until and lease is not None and now < lease.renew_at \
                and lease.available >= hold:
            if cached.expires_at and time.time() >= cached.expires_at:
                raise Unauthorized("This API key has expired.")
            if cached.models and model not in cached.models:
                raise Forbidden(f"This API key may not use the model '{model}'.")
            metrics.TALLY.inc(self._local)
            return self._on_lease(lease, cached.key, hold, now)
        digest = store.digest(api_key)
        lc = self.cfg.lease
        ask = LeaseAsk()
        if lc.enabled and hold > 0:
            ask = LeaseAsk(lease.id if lease else f"lease:{uuid.uuid4().hex}", smallest=lc.min_requests * hold,
                           largest=lc.max_nano - max(lease.available if lease else 0, 0), ttl_s=lc.ttl_s,
                           covered=lease is not None and lease.available >= hold)
        try:
            metrics.TALLY.inc(self._redis)
            a = await self.billing.admit(account, digest, model, hold=hold, hold_id=hold_id,
                                         hold_ttl_s=self.cfg.hold_ttl_s, lease=ask,
                                         deadline=time.time() + self.deadline_s,
                                         reap_charge=reap_charge)
        except redisconn.ERRORS as exc:
            raise ServiceUnavailable("The gateway cannot check keys and balances right now; retry shortly.") from exc
        if a.outcome == "lease":
            models = frozenset(m for m in a.models.split(",") if m)
            key = KeyInfo(account=account, key_id=a.key_id)
            self._keys[api_key] = CachedKey(key, a.expires_at, models, now + lc.key_cache_s)
            current = self.leases.get(account)
            if lease is None and current is not None:
                # another request of this process was granted a lease while this one asked (one lease
                # an account and process): this grant goes back, all of it when the other covers this
                # request; else less this request's hold (what its cost leaves of that, the reaper
                # releases at the lease's TTL)
                if current.available >= hold:
                    self._give_back_soon(account, ask.lease_id, a.leased)
                    return self._on_lease(current, key, hold, now)
                self._give_back_soon(account, ask.lease_id, a.leased - hold)
                return Admitted(key, ask.lease_id)
            if lease is None:
                lease = self.leases[account] = Lease(ask.lease_id)
            lease.granted += a.leased
            lease.renew_at, lease.dead_at = now + lc.ttl_s / 2, now + lc.ttl_s * 0.9
            return self._on_lease(lease, key, hold, now)
        self._keys.pop(api_key, None)
        return Admitted(_accepted(a, account, model, hold))

    @staticmethod
    def _on_lease(lease: Lease, key: KeyInfo, hold: int, now: float) -> Admitted:
        lease.inflight += hold
        lease.last_used = now
        return Admitted(key, lease.id)

    def _give_back_soon(self, account: str, lease_id: str, amount: int) -> None:
        async def give() -> None:
            with contextlib.suppress(*redisconn.ERRORS):  # else the reaper releases it at its TTL
                await self.billing.return_lease(account, lease_id, amount)

        task = asyncio.get_running_loop().create_task(give())
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    def finished(self, account: str, lease_id: str, hold: int, cost: int) -> None:
        """A request admitted against ``lease_id`` ended and costs ``cost``."""
        lease = self.leases.get(account)
        if lease is not None and lease.id == lease_id:
            lease.inflight -= hold
            lease.spent += cost

    async def give_back(self, *, idle_only: bool = True) -> int:
        """Return unused leases (idle ones, or all at shutdown); nano-USD given back."""
        now = time.monotonic()
        back = 0
        for account, lease in list(self.leases.items()):
            if now >= lease.dead_at:
                del self.leases[account]  # past its TTL: the reaper releases it
                continue
            if idle_only and (lease.inflight or now - lease.last_used < self.cfg.lease.idle_s):
                continue
            del self.leases[account]
            if lease.available > 0:
                try:
                    back += await self.billing.return_lease(account, lease.id, lease.available)
                except redisconn.ERRORS:
                    pass  # the reaper releases it when its TTL ends
        return back


def _accepted(a: Admission, account: str, model: str, hold: int) -> KeyInfo:
    """The KeyInfo of an 'ok' admission, or the user-facing error of a refusal."""
    if a.outcome == "ok":
        return KeyInfo(account=account, key_id=a.key_id)
    if a.outcome == "late":  # Redis ran the call after the deadline (it stalled): nothing was held
        raise ServiceUnavailable("The gateway cannot check keys and balances right now; retry shortly.")
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
