"""Metering events: one per request, appended to a Redis Stream off the request path.

``Meter.record`` never waits on Redis: each event (a ``MeteringEvent``, ``core/event.py``)
is serialized once, written to the process's spool file (``translator/spool.py``: one
``os.write`` of its line, no fsync) and kept in a bounded
in-process buffer that a background task writes in batches, one command per stream (it lingers
100 ms after the first event of a batch, so that under load one round trip carries
many). Once Redis has a batch, the spool forgets it. When Redis is unreachable the
buffer holds events and the writer retries with back-off; a full buffer keeps new
events in the spool only (replayed once the writer has caught up), counted and
logged. What a process could not write before it died or stopped stays in the spool,
and the next process of the same worker replays it at start (``Spool.adopt``): the
settler applies each event once however often it reaches the stream.

With ``metering_shards=N`` in the Redis URL an event goes to the stream of its account's
shard (``core.store.metering_shard``); the writer announces N in ``tg:metering:shards`` so
settlers read every shard. With ``wait_replicas=R`` a batch counts as written only once R
replicas of each master it went to have it (``WAIT``): until then it stays in the spool and
is written again, so a failover cannot lose an event Redis acknowledged (the settler applies
the copies once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
import structlog

from core import event, redisconn, store
from core.event import MeteringEvent
from translator.spool import Spool

log = structlog.get_logger("tokengate.metering")

# XADD each (field, value) pair of ARGV as an entry of the stream KEYS[1], in order; how many. A batch
# of one stream is one command (EVAL: no script to load first, on any master of a cluster).
XADD_MANY = "for i = 1, #ARGV, 2 do redis.call('XADD', KEYS[1], '*', ARGV[i], ARGV[i + 1]) end return #ARGV / 2"


class Meter:
    def __init__(self, redis: aioredis.Redis, *, spool: Spool | None = None, capacity: int = 100_000,
                 batch: int = 256, linger_s: float = 0.1, fsync_s: float = 0.0, rescan_s: float = 10.0) -> None:
        self._redis = redis
        self._spool = spool  # None: memory only (tests and the bench's floor)
        self._buf: deque[tuple[str, bytes]] = deque()  # (stream, serialized event): each also a line of the spool
        self._shards = redisconn.options(redis).shards
        self._announced = self._shards == 1  # tg:metering:shards told (one shard: nothing to tell)
        self._capacity = capacity
        self._batch = batch
        self._linger_s = linger_s  # after the first event, wait this long for more: one XADD pipeline for many
        self._fsync_s = fsync_s  # > 0: fdatasync the spool this often (a machine crash loses less)
        self._rescan_s = rescan_s  # look for segments another process of this worker left this often
        self._rescan_at = 0.0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0  # kept nowhere (memory full and no spool, or the spool failed too)
        self.spilled = 0  # memory full: in the spool only

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._rescan_at = time.monotonic() + self._rescan_s
        self._tasks.append(loop.create_task(self._run()))
        if self._spool is not None and self._fsync_s > 0:
            self._tasks.append(loop.create_task(self._sync(self._spool)))

    def record(self, ev: MeteringEvent) -> None:
        data = ev.SerializeToString()
        spool = self._spool
        if len(self._buf) >= self._capacity:
            if spool is not None and spool.append(event.line(data), kept=False):
                self.spilled += 1
                log.error("metering_buffer_full", spilled=self.spilled, request_id=ev.request_id,
                          note="kept in the spool only, replayed once the writer has caught up")
            else:
                self.dropped += 1
                log.error("metering_buffer_full", dropped=self.dropped, request_id=ev.request_id)
            return
        if spool is not None:
            spool.append(event.line(data))
        self._buf.append((self.stream_of(ev.account), data))
        self._wake.set()

    def stream_of(self, account: str) -> str:
        return store.metering_stream(store.metering_shard(account, self._shards))

    @property
    def pending(self) -> int:
        """Events in memory, not yet in Redis."""
        return len(self._buf)

    async def _write_some(self) -> None:
        n = min(self._batch, len(self._buf))
        await self._add([(stream, event.ENTRY_FIELD, data) for stream, data in (self._buf[i] for i in range(n))])
        for _ in range(n):
            self._buf.popleft()
        if self._spool is not None:
            self._spool.confirmed(n)
            if not self._buf:
                self._spool.drained()

    async def _replay_some(self, spool: Spool) -> None:
        """One batch of the oldest backlog segment into the stream; the segment goes once all are in."""
        seg = spool.backlog[0]
        try:
            lines = spool.replay_lines(seg)
        except OSError as exc:
            spool.abandon(seg, exc)
            return
        chunk = lines[seg.sent:seg.sent + self._batch]
        if chunk:
            entries: list[tuple[str, str, bytes]] = []
            for line in chunk:  # each as the version that wrote it would have (an older one: JSON)
                fields = event.entry_of_line(line)
                account = event.from_entry(fields).account if self._shards > 1 else ""
                [(name, value)] = fields.items()
                entries.append((self.stream_of(account), name, value))
            await self._add(entries)
            seg.sent += len(chunk)
        if seg.sent >= len(lines):
            spool.replayed(seg)

    async def _add(self, entries: list[tuple[str, str, bytes]]) -> None:
        """XADD each (stream, field, value) entry, in order, in one pipelined round trip (per master, on a
        cluster) that holds one command per stream (``XADD_MANY``: redis-py's per-command work was a
        tenth of the request path's Python), then WAIT for the replicas the URL asks for; raises if
        Redis refused any or fewer replicas had them in time: the caller keeps them and writes them again."""
        args: dict[str, list[Any]] = {}
        for stream, name, value in entries:
            args.setdefault(stream, []).extend((name, value))
        async with self._redis.pipeline(transaction=False) as p:
            if not self._announced:
                p.sadd(store.METERING_SHARDS, self._shards)
            for stream, pairs in args.items():
                p.eval(XADD_MANY, 1, stream, *pairs)
            waits = redisconn.queue_waits(p, self._redis, sorted(args))
            replies = await p.execute()
        if waits:
            redisconn.check_waits(self._redis, replies[-waits:])
        self._announced = True

    async def _run(self) -> None:
        delay = 0.05
        spool = self._spool
        while True:
            if not self._buf and not (spool and spool.backlog):
                try:
                    async with asyncio.timeout(self._rescan_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                else:
                    if len(self._buf) < self._batch:
                        await asyncio.sleep(self._linger_s)
                    self._wake.clear()
            try:
                if spool is not None and time.monotonic() >= self._rescan_at:
                    self._rescan_at = time.monotonic() + self._rescan_s
                    spool.adopt()  # what another process of this worker left (one that stopped after we started)
                if self._buf:
                    await self._write_some()
                if spool is not None and spool.backlog:  # a batch each: neither starves the other
                    await self._replay_some(spool)
                delay = 0.05
            except redisconn.ERRORS as exc:  # away, failing over, refusing (OOM, read-only), not replicated: retry
                log.warning("metering_retry", pending=len(self._buf),
                            backlog_segments=len(spool.backlog) if spool else 0, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception:  # a bug must not stop the writer: the events stay buffered and spooled
                log.exception("metering_writer_error", pending=len(self._buf))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _sync(self, spool: Spool) -> None:
        while True:
            await asyncio.sleep(self._fsync_s)
            try:
                await spool.sync()
            except OSError as exc:
                log.error("metering_spool_sync_failed", error=str(exc))

    async def close(self, wait_s: float = 5.0) -> None:
        """Write what is buffered or left in the backlog (for at most ``wait_s``), then stop the writer.
        What Redis did not take stays in the spool for the next start of this worker."""
        spool = self._spool
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while self._buf or (spool and spool.backlog):
                    self._wake.set()
                    await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if spool is None:
            if self._buf:
                log.error("metering_unflushed_at_shutdown", pending=len(self._buf))
            return
        if self._buf or spool.backlog:
            log.warning("metering_left_in_spool", pending=len(self._buf), backlog_segments=len(spool.backlog),
                        dir=str(spool.dir), write_failures=spool.write_failures,
                        note="the next start of this worker replays them")
        spool.close()
