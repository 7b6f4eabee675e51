"""Calling the billing scripts, and reading balances, ledgers and usage."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from core import event, redisconn, store
from core.billing import scripts
from core.event import MeteringEvent
from core.store import text

DONE_TTL_S = 60 * 60 * 24 * 30  # how long a settled event id is remembered (redelivery window)
METRICS = ("requests", "input", "cache_read", "cache_write", "output", "reasoning", "cost", "failed", "reaped")


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: str  # ok | lease | unknown | revoked | expired | forbidden | rate_limited | insufficient | late
    key_id: str = ""
    retry_after: int = 0
    available: int = 0
    leased: int = 0  # 'lease': nano-USD added to the lease hold
    expires_at: int = 0  # 'lease': the key's expiry (0: never), for the process's key cache
    models: str = ""  # 'lease': the key's model allow-list (comma-separated; empty: all)


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """What an admission may lease: ``smallest`` 0 asks for no lease."""

    lease_id: str = ""
    smallest: int = 0
    largest: int = 0
    ttl_s: int = 60
    covered: bool = False  # the lease already covers this request: renew it even if nothing is added


class Billing:
    """The billing scripts bound to one Redis client (registered once, run by SHA)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._admit = redis.register_script(scripts.ADMIT)
        self._settle = redis.register_script(scripts.SETTLE)
        self._release = redis.register_script(scripts.RELEASE_EXPIRED)
        self._credit = redis.register_script(scripts.CREDIT)
        self._return_lease = redis.register_script(scripts.RETURN_LEASE)

    async def admit(self, account: str, digest: str, model: str, *, hold: int, hold_id: str,
                    hold_ttl_s: int, lease: LeaseAsk = LeaseAsk(), deadline: float = 0.0,
                    reap_charge: int = 0, now: float | None = None) -> Admission:
        """``deadline`` (unix seconds): the script does nothing when Redis runs it later than that.
        ``reap_charge``: what the reaper charges if a hold placed here is never settled."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        kid = store.key_id(digest)
        res = await self._admit(
            keys=[store.key_record(account, digest), store.account_key(account), store.holds(account),
                  store.hold_expiries(account), store.rate_counter(account, "rpm", kid, minute),
                  store.rate_counter(account, "tpm", kid, minute), store.hold_info(account)],
            args=[int(now), model, hold, hold_id, hold_ttl_s, 60 - int(now % 60),
                  lease.lease_id, lease.smallest, lease.largest, lease.ttl_s, int(lease.covered),
                  f"{deadline:.3f}", reap_charge],
        )
        outcome = text(res[0])
        if outcome == "ok":
            return Admission(outcome, key_id=text(res[1]))
        if outcome == "lease":
            return Admission(outcome, key_id=text(res[1]), leased=int(res[2]), expires_at=int(text(res[3]) or 0),
                             models=text(res[4]))
        if outcome == "rate_limited":
            return Admission(outcome, retry_after=int(text(res[1])))
        if outcome == "insufficient":
            return Admission(outcome, available=int(res[1]))
        return Admission(outcome)

    async def settle(self, ev: MeteringEvent | Mapping[str, Any]) -> str:
        """Apply one metering event exactly once; 'ok' or 'duplicate'."""
        [outcome] = await self.settle_many([Settlement.of(ev)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def settle_many(self, batch: list[Settlement]) -> list[str | Exception]:
        """Apply checked events in one pipelined round trip, one script call per account: 'ok' or
        'duplicate' for each, or the error Redis gave. A call that failed is retried one event at
        a time, so one bad event does not hold back the others (those already applied come back
        'duplicate')."""
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(batch):
            groups.setdefault(s.account, []).append(i)
        outcomes: list[str | Exception] = [""] * len(batch)
        failed: list[int] = []
        replies = await self._settle_groups([[batch[i] for i in idx] for idx in groups.values()])
        for idx, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                failed += idx
            else:
                for i, r in zip(idx, reply, strict=True):
                    outcomes[i] = text(r)
        if failed:
            if any(isinstance(r, NoScriptError) for r in replies):
                await self.load_scripts()  # a cluster node that never saw them (a replica just promoted)
            replies = await self._settle_groups([[batch[i]] for i in failed])
            for i, reply in zip(failed, replies, strict=True):
                outcomes[i] = reply if isinstance(reply, Exception) else text(reply[0])
        return outcomes

    async def _settle_groups(self, groups: list[list[Settlement]]) -> list[Any]:
        """One SETTLE call per group, pipelined, then WAIT on each master written to (when the
        Redis URL asks for replicas): raises NotReplicated rather than let the caller acknowledge
        a settlement a failover could still lose."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                account = group[0].account
                keys = [store.account_key(account), store.holds(account), store.hold_expiries(account),
                        store.ledger(account), store.recent_requests(account), store.key_last_used(account),
                        store.hold_info(account)]
                args: list[Any] = [DONE_TTL_S]
                for s in group:
                    keys += s.keys
                    args += s.args
                await self._settle(keys=keys, args=args, client=pipe)
            waits = redisconn.queue_waits(pipe, self.redis, [store.account_key(g[0].account) for g in groups])
            replies = list(await pipe.execute(raise_on_error=False))
        if waits:
            redisconn.check_waits(self.redis, replies[-waits:])
            del replies[-waits:]
        return replies

    async def load_scripts(self) -> None:
        """Load every script on every master (a cluster's pipelines do not load them themselves)."""
        for script in (self._admit, self._settle, self._release, self._credit, self._return_lease):
            await self.redis.script_load(script.script)

    async def return_lease(self, account: str, lease_id: str, amount: int) -> int:
        """Give back up to ``amount`` of a lease's hold; how many nano-USD were given back."""
        return int(await self._return_lease(
            keys=[store.account_key(account), store.holds(account), store.hold_expiries(account)],
            args=[lease_id, amount]))

    async def release_expired(self, account: str, now: float | None = None) -> int:
        """Release this account's holds that outlived their request, each request's with its record
        (ledger, usage; charged what admission said); how many nano-USD were freed."""
        now = time.time() if now is None else now
        due = await self.redis.zrangebyscore(store.hold_expiries(account), "-inf", now, start=0, num=500)
        freed = 0
        day = store.usage_day(account, _day(int(now // 86400)))
        for hold_id in map(text, due):
            freed += int(await self._release(
                keys=[store.account_key(account), store.holds(account), store.hold_expiries(account),
                      store.hold_info(account), store.ledger(account), day, store.reaped(account, hold_id)],
                args=[hold_id, now, DONE_TTL_S, f"{now:.3f}"]))
        return freed

    async def credit(self, account: str, amount_nano: int, *, kind: str, ref: str, reason: str) -> int | None:
        """Top-up or adjustment, applied once per ``ref``; the new balance, or None if ``ref`` was seen."""
        if not store.ACCOUNT_RE.match(account):
            raise ValueError("account ids are 1-32 lowercase letters and digits")
        await self.redis.sadd(store.ACCOUNTS, account)
        await self.redis.hsetnx(store.account_key(account), "created", str(int(time.time())))
        keys = [store.account_key(account), store.ledger(account), store.done(account, f"credit:{ref}")]
        args: list[str | int] = [amount_nano, kind, ref, reason, f"{time.time():.3f}"]
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._credit(keys=keys, args=args, client=pipe)
                waits = redisconn.queue_waits(pipe, self.redis, keys[:1])
                res, *acks = await pipe.execute(raise_on_error=False)
            if isinstance(res, NoScriptError) and not attempt:
                await self.load_scripts()
                continue
            if isinstance(res, Exception):
                raise res
            if waits:  # applied, but a failover could still lose it: the caller is told (same ref again is safe)
                redisconn.check_waits(self.redis, acks)
            break
        return int(res[1]) if text(res[0]) == "ok" else None

    async def balance(self, account: str) -> tuple[int, int]:
        """(balance, held) in nano-USD."""
        bal, held = await self.redis.hmget(store.account_key(account), ["balance", "held"])
        return int(text(bal or b"0")), int(text(held or b"0"))

    async def ledger(self, account: str, count: int = 50) -> list[dict[str, str]]:
        rows = await self.redis.xrevrange(store.ledger(account), count=count)
        return [{"id": text(i), **{text(k): text(v) for k, v in (f or {}).items()}} for i, f in rows or []]

    async def usage(self, account: str, start: dt.date, end: dt.date,
                    key_id: str | None = None) -> list[dict[str, Any]]:
        """Rows of (date, model, metrics...) for each UTC day in [start, end]."""
        out: list[dict[str, Any]] = []
        day = start
        while day <= end:
            h = await self.redis.hgetall(store.usage_day(account, day.isoformat()))
            by_model: dict[str, dict[str, int]] = {}
            for f, v in h.items():
                parts = text(f).split("|")
                if key_id is None and len(parts) == 2:
                    model, metric = parts
                elif key_id is not None and len(parts) == 3 and parts[0] == key_id:
                    model, metric = parts[1], parts[2]
                else:
                    continue
                by_model.setdefault(model, dict.fromkeys(METRICS, 0))[metric] = int(text(v))
            out += [{"date": day.isoformat(), "model": m, **vals} for m, vals in sorted(by_model.items())]
            day += dt.timedelta(days=1)
        return out


@functools.lru_cache(maxsize=8)
def _day(n: int) -> str:
    """The UTC date of day ``n`` since the epoch."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=n)).isoformat()


@dataclass(frozen=True, slots=True)
class Settlement:
    """One metering event checked and ready for the SETTLE script (``of`` raises ValueError for
    an event the script could not apply: it goes to the dead letters instead)."""

    account: str
    keys: tuple[str, str, str, str]  # done marker, usage day hash, the key's tpm counter, reaped marker
    args: tuple[bytes | str, ...]  # what the script reads of it (scripts.SETTLE's ARGV per event)

    @classmethod
    def of_entry(cls, fields: Mapping[Any, Any]) -> Settlement:
        """The settlement of a ``tg:metering`` entry (``event.from_entry``): a serialized event's own bytes go on to
        the recent requests as they came, not serialized again."""
        data = event.entry_data(fields)
        return cls.of(event.from_entry(fields), data if isinstance(data, bytes) else None)

    @classmethod
    def of(cls, ev: MeteringEvent | Mapping[str, Any], data: bytes | None = None) -> Settlement:
        """``ev``: an event of any version, or a JSON object of one (version 0's, as tests write them); ``data``: its
        serialized form, when the caller has it."""
        if not isinstance(ev, MeteringEvent):
            ev = event.from_json(ev)
        if ev.version not in event.READS:
            raise ValueError(f"version {ev.version} is newer than this settler reads "
                             f"({', '.join(map(str, sorted(event.READS)))}): upgrade the settler")
        account, event_id = ev.account, ev.event_id
        if not store.ACCOUNT_RE.match(account):
            raise ValueError(f"bad account {account!r}")
        if not event_id:
            raise ValueError("event without event_id")
        ts = ev.ts or time.time()
        keys = (store.done(account, event_id), store.usage_day(account, _day(int(ts // 86400))),
                store.rate_counter(account, "tpm", ev.key_id or "-", int(ts // 60)),
                store.reaped(account, event_id))
        u = ev.usage
        failed = int(ev.status >= 400 or not ev.complete)
        counts = f"{ev.cost_nano} {failed} {u.input} {u.cache_read} {u.cache_write} {u.output} {u.reasoning}"
        raw = ev.SerializeToString() if data is None else data
        return cls(account, keys, (raw, f"{ts:.3f}", event_id, ev.model, ev.key_id, ev.lease,
                                   counts))  # scripts.SETTLE_ARGS of them
