"""Metering events: one per request, appended to a Redis Stream off the request path.

``Meter.record`` never waits on Redis: events go to a bounded in-process buffer
that a background task writes in pipelined batches (it lingers 10 ms after the
first event of a batch, so that under load one round trip carries many). When Redis is unreachable
the buffer holds events and the writer retries with back-off; a full buffer is
logged loudly with the count it could not keep (never dropped silently).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tokengate.store import METERING_STREAM

log = structlog.get_logger("tokengate.metering")


class Meter:
    def __init__(self, redis: aioredis.Redis, *, capacity: int = 100_000, batch: int = 256,
                 linger_s: float = 0.01) -> None:
        self._redis = redis
        self._buf: deque[bytes] = deque()
        self._capacity = capacity
        self._batch = batch
        self._linger_s = linger_s  # after the first event, wait this long for more: one XADD pipeline for many
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, event: dict[str, Any]) -> None:
        if len(self._buf) >= self._capacity:
            self.dropped += 1
            log.error("metering_buffer_full", dropped=self.dropped, request_id=event.get("request_id"))
            return
        self._buf.append(orjson.dumps(event))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buf)

    async def _write_some(self) -> None:
        batch = [self._buf[i] for i in range(min(self._batch, len(self._buf)))]
        async with self._redis.pipeline(transaction=False) as p:
            for ev in batch:
                p.xadd(METERING_STREAM, {"event": ev})
            await p.execute()
        for _ in batch:
            self._buf.popleft()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._wake.wait()
            if len(self._buf) < self._batch:
                await asyncio.sleep(self._linger_s)
            self._wake.clear()
            while self._buf:
                try:
                    await self._write_some()
                    delay = 0.05
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    log.warning("metering_retry", pending=len(self._buf), error=str(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)

    async def close(self, wait_s: float = 5.0) -> None:
        """Write what is buffered (for at most ``wait_s``), then stop the writer."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while self._buf:
                    self._wake.set()
                    await asyncio.sleep(0.01)
        if self._buf:
            log.error("metering_unflushed_at_shutdown", pending=len(self._buf))
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
