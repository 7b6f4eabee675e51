"""The translator's metering buffer: events outlive a Redis outage and arrive once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from core import store
from core.event import MeteringEvent
from tokengate.devstack import redis_binary
from tokengate.procs import Supervisor, free_port, port_open
from translator.metering import Meter


def test_events_recorded_while_redis_is_down_are_written_when_it_returns(tmp_path: Path) -> None:
    """Nothing is dropped: events wait in the bounded buffer and are retried until Redis answers."""
    port = free_port()
    sup = Supervisor(tmp_path)
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]

    async def scenario() -> int:
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1)
        meter = Meter(r)
        meter.start()
        try:
            for i in range(5):
                meter.record(MeteringEvent(event_id=f"e{i}", request_id=str(i)))
            await asyncio.sleep(0.5)
            assert 5 == meter.pending  # Redis is down: all held, none lost
            redis = sup.start("redis", argv)
            sup.wait_until(redis, lambda: port_open(port), 10, "accepting connections")
            for _ in range(100):
                if meter.pending == 0:
                    break
                await asyncio.sleep(0.1)
            assert (0, 0) == (meter.pending, meter.dropped)
            return int(await r.xlen(store.METERING_STREAM))
        finally:
            await meter.close()
            await r.aclose()

    try:
        assert 5 == asyncio.run(scenario())
    finally:
        sup.stop_all()


def test_a_full_buffer_counts_what_it_could_not_keep() -> None:
    """Past its capacity the buffer refuses loudly (a counted, logged error), never silently."""

    async def scenario() -> tuple[int, int]:
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
        meter = Meter(r, capacity=3)
        for i in range(5):
            meter.record(MeteringEvent(event_id=f"e{i}"))
        await r.aclose()
        return meter.pending, meter.dropped

    assert (3, 2) == asyncio.run(scenario())
