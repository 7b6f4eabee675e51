"""The settler's gauges read the metering backlog and the dead letters from Redis (settler/metrics.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from core import store
from settler import metrics
from settler.service import DEAD_LETTERS, GROUP, Settler


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, name
    return value


def test_backlog_pending_and_dead_letters_are_read_from_redis(redis_url: str) -> None:
    """Five events: two read and not acknowledged (pending), three unread (backlog); a malformed one applied
    goes to the dead letters, counted as it happens and on the stream."""
    async def scenario() -> dict[str, float]:
        r = aioredis.Redis.from_url(redis_url)
        try:
            await r.flushdb()
            settler = Settler(r, consumer="metrics-test")
            await settler.ensure_group()
            for i in range(5):
                await r.xadd(store.METERING_STREAM, {"junk": str(i)})  # no event a settler reads
            reply: Any = await r.xreadgroup(GROUP, settler.consumer, {store.METERING_STREAM: ">"}, count=2)
            dead_before = _value("tokengate_settler_events_total", outcome="dead_letter")
            await metrics.observe(r, settler.streams, GROUP, DEAD_LETTERS)
            first = {"backlog": _value("tokengate_metering_backlog_events"),
                     "pending": _value("tokengate_metering_pending_events"),
                     "dead": _value("tokengate_metering_dead_letters")}
            await settler.apply(reply[0][1][:1])  # one of the two: malformed, so a dead letter
            await metrics.observe(r, settler.streams, GROUP, DEAD_LETTERS)
            return {**first, "pending_after": _value("tokengate_metering_pending_events"),
                    "dead_after": _value("tokengate_metering_dead_letters"),
                    "counted": _value("tokengate_settler_events_total", outcome="dead_letter") - dead_before}
        finally:
            await r.aclose()

    assert {"backlog": 3, "pending": 2, "dead": 0, "pending_after": 1, "dead_after": 1, "counted": 1} \
        == asyncio.run(scenario())
