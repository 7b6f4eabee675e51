"""The settlement worker: applies every metering event exactly once.

A consumer group reads ``tg:metering`` (and each shard ``tg:metering:{s<i>}`` translators
announced, one reader task each); each event (``core/event.py``: any version a
translator may have written, the previous one's JSON included) is applied by the idempotent
settle script (charge, release the hold, ledger, usage aggregates) and only then
acknowledged. A crash between the two redelivers the event, and the script's
``done`` marker makes the second application a no-op. Entries left pending by a
dead consumer are claimed after ``claim_idle_s``. A reaper releases holds whose
request never reported (a translator killed mid-request) once they expire.
Malformed events go to ``tg:metering:dead`` — kept, never silently dropped. At start
the settler applies the dead letters it can read (``redrive``): events an older
settler refused because their encoding or version was newer than it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from core import redisconn, store
from core.billing.ops import Billing, Settlement
from core.store import text
from settler import metrics

log = structlog.get_logger("tokengate.settler")
GROUP = "settlers"
DEAD_LETTERS = "tg:metering:dead"


class Settler:
    def __init__(self, redis: aioredis.Redis, *, consumer: str | None = None, batch: int = 200,
                 block_ms: int = 500, claim_idle_s: float = 30.0, reap_every_s: float = 2.0,
                 linger_s: float = 0.2) -> None:
        self.redis = redis
        self.billing = Billing(redis)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch, self.block_ms = batch, block_ms
        self.claim_idle_s, self.reap_every_s, self.linger_s = claim_idle_s, reap_every_s, linger_s
        self.look_every_s = 10.0  # how often to look for shards a translator announced
        self.keep_s = 3600.0  # settled metering entries are dropped from the streams after this
        self.streams: list[str] = []  # the metering streams this settler reads (their group made)
        self.applied = 0
        self.duplicates = 0

    async def ensure_group(self) -> list[str]:
        """The consumer group on every metering stream (shards: up to the largest count a translator
        announced, ``core.store``); the streams it was not on before."""
        counts = [int(text(n)) for n in await self.redis.smembers(store.METERING_SHARDS)]
        wanted = [store.metering_stream(i) for i in range(max([1, *counts]))]
        new = [s for s in wanted if s not in self.streams]
        for stream in new:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self.streams.append(stream)
        return new

    async def run(self, stop: asyncio.Event) -> None:
        """One reader per stream (on a cluster the shards are on different masters, and one
        XREADGROUP cannot name streams of two slots); claims, reaping and looking for new shards
        in this loop."""
        readers: dict[str, asyncio.Task[None]] = {}
        next_claim = next_reap = next_look = 0.0
        while not stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_look:
                    await self.ensure_group()
                    if not readers:
                        await self.redrive()
                    for stream in [s for s in self.streams if s not in readers]:
                        await self._drain_own_pending(stream)
                        readers[stream] = asyncio.create_task(self._read(stream, stop))
                    next_look = now + self.look_every_s
                if now >= next_claim:
                    for stream in self.streams:
                        await self.claim_abandoned(stream)
                        await self.trim(stream)
                    next_claim = now + self.claim_idle_s / 2
                if now >= next_reap:
                    await self.reap()
                    await metrics.observe(self.redis, self.streams, GROUP, DEAD_LETTERS)
                    # a pass asks every account: with many it takes a while, and then runs less often
                    next_reap = now + max(self.reap_every_s, 4 * (time.monotonic() - now))
            except redisconn.ERRORS as exc:
                log.warning("settler_redis_error", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(1.0, self.reap_every_s))
        await asyncio.gather(*readers.values())

    async def _read(self, stream: str, stop: asyncio.Event) -> None:
        resume = False  # a batch failed (Redis away, failing over, not replicated): settle it again first
        while not stop.is_set():
            try:
                if resume:
                    await self._drain_own_pending(stream)
                    resume = False
                reply: Any = await self.redis.xreadgroup(GROUP, self.consumer, {stream: ">"},
                                                         count=self.batch, block=self.block_ms)
                got = 0
                for _, entries in reply or []:
                    await self.apply(entries, stream)
                    got += len(entries)
                if 0 < got < self.batch:
                    await asyncio.sleep(self.linger_s)  # let a batch gather: one round trip for many events
            except redisconn.ERRORS as exc:
                log.warning("settler_redis_error", stream=stream, error=str(exc))
                resume = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _drain_own_pending(self, stream: str = store.METERING_STREAM) -> None:
        """After a restart under the same name: what this consumer read but never acknowledged."""
        while True:
            reply: Any = await self.redis.xreadgroup(GROUP, self.consumer, {stream: "0"}, count=self.batch)
            entries = [e for _, es in reply or [] for e in es if e[1]]
            if not entries:
                return
            await self.apply(entries, stream)

    async def claim_abandoned(self, stream: str = store.METERING_STREAM) -> None:
        """Take over entries another consumer read and never acknowledged (it died), or this one
        could not acknowledge (its settlement was not replicated in time)."""
        cursor = "0-0"
        while True:
            res: Any = await self.redis.xautoclaim(stream, GROUP, self.consumer,
                                                   min_idle_time=int(self.claim_idle_s * 1000),
                                                   start_id=cursor, count=self.batch)
            cursor, entries = text(res[0]), [e for e in res[1] if e[1]]
            if entries:
                log.info("settler_claimed", stream=stream, count=len(entries))
                await self.apply(entries, stream)
            if cursor == "0-0":
                return

    async def apply(self, entries: list[Any], stream: str = store.METERING_STREAM) -> None:
        """Settle a batch in one pipelined round trip, then acknowledge it in one call (after the
        replicas the Redis URL asks for have the settlement: else it raises, and the entries stay
        pending until claimed again)."""
        good: list[tuple[Any, Any, Settlement]] = []
        for entry_id, fields in entries:
            try:
                good.append((entry_id, fields, Settlement.of_entry(fields)))
            except (ValueError, TypeError) as exc:  # no event of a version this settler reads (event.BadEvent)
                await self._dead_letter(entry_id, fields, exc)
        outcomes = await self.billing.settle_many([s for _, _, s in good]) if good else []
        applied = duplicates = 0
        for (entry_id, fields, _), outcome in zip(good, outcomes, strict=True):
            if isinstance(outcome, Exception):
                await self._dead_letter(entry_id, fields, outcome)
            elif outcome == "duplicate":
                duplicates += 1
            else:
                applied += 1
        self.applied += applied
        self.duplicates += duplicates
        metrics.APPLIED.inc(applied)  # once a batch (a call costs about a microsecond)
        metrics.DUPLICATE.inc(duplicates)
        if entries:
            await self.redis.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))

    async def redrive(self) -> int:
        """Apply the dead letters this settler reads and delete them (the others stay); how many.

        An older settler refuses events of a newer encoding or version (during a rollout that
        upgrades translators before settlers): they wait here with their fields, and the first
        settler that reads them applies them. Applying twice changes nothing (done markers)."""
        done, after = 0, "-"
        while True:
            page: Any = await self.redis.xrange(DEAD_LETTERS, min=after, count=self.batch)
            if not page:
                return done
            after = f"({text(page[-1][0])}"
            ready: list[tuple[Any, Settlement]] = []
            for entry_id, fields in page:
                with contextlib.suppress(ValueError, TypeError):
                    ready.append((entry_id, Settlement.of_entry(fields)))
            if not ready:
                continue
            outcomes = await self.billing.settle_many([s for _, s in ready])
            applied = [entry_id for (entry_id, _), o in zip(ready, outcomes, strict=True) if isinstance(o, str)]
            if applied:
                await self.redis.xdel(DEAD_LETTERS, *applied)
                done += len(applied)
                log.warning("settler_redrove_dead_letters", count=len(applied))

    async def _dead_letter(self, entry_id: Any, fields: dict[Any, Any], exc: Exception) -> None:
        log.error("settler_dead_letter", entry=text(entry_id), error=str(exc))
        metrics.DEAD.inc()
        await self.redis.xadd(DEAD_LETTERS, {"entry": entry_id, "error": str(exc),
                                             **{text(k): v for k, v in fields.items()}})

    async def trim(self, stream: str) -> None:
        """Drop the entries settled more than ``keep_s`` ago: older than that, than every entry still
        pending and than every entry not yet delivered (nothing but the group's history is dropped;
        the done markers, not the entries, stop a second application)."""
        cutoff = (int((time.time() - self.keep_s) * 1000), 0)
        summary: Any = await self.redis.xpending(stream, GROUP)
        if summary["pending"]:  # kept: MINID drops only what is below it
            cutoff = min(cutoff, _sid(summary["min"]))
        for g in await self.redis.xinfo_groups(stream):
            info = {text(k): v for k, v in g.items()}
            if text(info["name"]) == GROUP:  # what was delivered may go, nothing after it
                ms, seq = _sid(info["last-delivered-id"])
                cutoff = min(cutoff, (ms, seq + 1))
        if cutoff > (0, 1):
            await self.redis.xtrim(stream, minid=f"{cutoff[0]}-{cutoff[1]}", approximate=False)

    async def reap(self) -> None:
        """Release the holds past their expiry: the accounts are asked in pipelined pages (one round
        trip per 500 accounts), and only an account with a hold due gets the release calls."""
        accounts = [text(a) for a in await self.redis.smembers(store.ACCOUNTS)]
        now = time.time()
        for start in range(0, len(accounts), 500):
            page = accounts[start:start + 500]
            async with self.redis.pipeline(transaction=False) as p:
                for account in page:
                    p.zrangebyscore(store.hold_expiries(account), "-inf", now, start=0, num=1)
                due = await p.execute()
            for account, first in zip(page, due, strict=True):
                if not first:
                    continue
                freed = await self.billing.release_expired(account, now)
                if freed:
                    log.warning("settler_released_expired_holds", account=account, nano_usd=freed)


def _sid(entry_id: Any) -> tuple[int, int]:
    ms, _, seq = text(entry_id).partition("-")
    return int(ms), int(seq or 0)
