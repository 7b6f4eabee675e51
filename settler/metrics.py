"""Prometheus metrics of the settler (docs/observability.md, "Metrics"), served by ``tokengate settle
--metrics-listen host:port``.

    tokengate_settler_events_total{outcome}   applied, duplicate (already settled), dead_letter
    tokengate_metering_backlog_events         events in tg:metering no settler has read yet (the group's lag)
    tokengate_metering_pending_events         events a settler read and has not acknowledged yet
    tokengate_metering_dead_letters           events in tg:metering:dead (refused, kept for a redrive)

The three gauges describe the shared streams, not this process: every settler replica
reports the same values (a dashboard takes their max). They are read from Redis every
``Settler.reap_every_s``.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, start_http_server

from core.store import text

EVENTS = Counter("tokengate_settler_events_total", "Metering events a settler handled, by outcome", ["outcome"])
BACKLOG = Gauge("tokengate_metering_backlog_events", "Metering events no settler has read yet (consumer group lag)")
PENDING = Gauge("tokengate_metering_pending_events", "Metering events read by a settler and not acknowledged yet")
DEAD_LETTERS = Gauge("tokengate_metering_dead_letters", "Metering events in the dead-letter stream")

APPLIED, DUPLICATE, DEAD = (EVENTS.labels(o) for o in ("applied", "duplicate", "dead_letter"))


def serve(address: str) -> None:
    """Serve ``/metrics`` on ``host:port`` (a background thread)."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1")


async def observe(redis: aioredis.Redis, streams: list[str], group: str, dead_letters: str) -> None:
    """Read the backlog of ``group`` on the metering ``streams`` (summed: shards) and the dead letters
    into the gauges."""
    lag = pending = 0
    for stream in streams:
        for g in await redis.xinfo_groups(stream):
            info = {text(k): v for k, v in g.items()}
            if text(info["name"]) == group:
                lag += int(info.get("lag") or 0)  # None: Redis cannot tell (entries deleted mid-stream)
                pending += int(info["pending"])
    BACKLOG.set(lag)
    PENDING.set(pending)
    DEAD_LETTERS.set(await redis.xlen(dead_letters))
