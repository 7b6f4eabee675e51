"""Billing under faults: a settler dying mid-batch, a translator dying mid-stream, Redis restarting."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis.asyncio as aioredis

from core import event, store
from core.billing.ops import Billing
from fakes import Reply, Usage
from settler.service import GROUP, Settler
from tests.harness import GatewayUnderTest, own_stack, stream_in_background
from tokengate.procs import port_open

HOLD_TTL_S = 10


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """A stack of its own, since these tests kill its parts."""
    def tweak(cfg: dict[str, Any]) -> None:
        cfg["billing"]["hold_ttl_s"] = HOLD_TTL_S
        cfg["billing"]["lease"]["ttl_s"] = HOLD_TTL_S  # a killed translator's lease is released as soon

    with own_stack(tmp_path_factory.mktemp("faults"), tweak) as gw:
        yield gw


def _child(gw: GatewayUnderTest, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in gw.stack.supervisor.children if c.name == name and c.alive())


def test_settler_dying_mid_batch_charges_nothing_twice_and_loses_nothing(faulty: GatewayUnderTest) -> None:
    """Events applied but not acknowledged, and events never read, are each charged exactly once."""
    gw = faulty
    settler = _child(gw, "settler")
    settler.proc.kill()  # events now pile up unread
    settler.proc.wait()
    key = gw.new_key("crash", fund_usd=10)
    start, _ = gw.balance("crash")
    since = gw.last_stream_id()
    with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key, max_retries=0) as oai:
        for _ in range(6):
            gw.fake.push(Reply(text="x", usage=Usage(input=100, output=50)))
            oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    events = gw.wait_metering(since, 6)
    cost = sum(e["cost_nano"] for e in events)

    async def crash_then_recover() -> None:
        r = aioredis.Redis.from_url(gw.stack.effective_redis_url)
        try:
            # A consumer reads four events and applies two of them, then dies before acknowledging any.
            reply = await r.xreadgroup(GROUP, "dead-consumer", {store.METERING_STREAM: ">"}, count=4)
            read = reply[0][1]
            for _, fields in read[:2]:
                await Billing(r).settle(event.from_entry(fields))
            # A fresh settler claims the dead consumer's entries and reads the rest.
            fresh = Settler(r, consumer="fresh", claim_idle_s=0.2, block_ms=100)
            stop = asyncio.Event()
            task = asyncio.create_task(fresh.run(stop))
            deadline = time.monotonic() + 10
            while fresh.applied + fresh.duplicates < 6 and time.monotonic() < deadline:  # noqa: ASYNC110 - counters, no event
                await asyncio.sleep(0.02)
            stop.set()
            await task
            assert (4, 2) == (fresh.applied, fresh.duplicates)
            pending = await r.xpending(store.METERING_STREAM, GROUP)
            assert 0 == pending["pending"]
        finally:
            await r.aclose()

    asyncio.run(crash_then_recover())
    assert (start - cost, 0) == gw.wait_balance("crash", start - cost)
    charges = [e for e in gw._billing(lambda b: b.ledger("crash", 100)) if e["type"] == "charge"]
    assert 6 == len(charges)
    gw.stack.supervisor.start("settler", settler.argv)


def test_a_request_refused_while_redis_stalls_leaves_no_hold(faulty: GatewayUnderTest) -> None:
    """(Before the test that kills the translators.) Redis frozen past the translator's timeout: the client
    gets 503, and when Redis runs the queued
    admission later it places nothing (no hold, no lease) for the request that was refused."""
    gw = faulty
    key = gw.new_key("stall", fund_usd=10)
    redis = _child(gw, "redis")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        resp = httpx.post(f"{gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    with gw.redis() as r:
        r.ping()  # answered after the queued admission script has run
    assert (503, 0) == (resp.status_code, gw.balance("stall")[1])


def test_translator_killed_mid_stream_releases_the_hold(faulty: GatewayUnderTest) -> None:
    """A hold (here: the lease) whose translator died mid-stream is released by the reaper once its TTL passes."""
    gw = faulty
    key = gw.new_key("midstream", fund_usd=10)
    start, _ = gw.balance("midstream")
    gw.fake.push(Reply(text=" ".join(["w"] * 40), delay_between=0.2, times=None))
    t, got_first, outcome = stream_in_background(gw, key)
    assert got_first.wait(10)
    assert 0 < gw.balance("midstream")[1], "a hold is in place while the stream runs"
    for c in list(gw.stack.supervisor.children):
        if c.name.startswith("translator") and c.alive():
            c.proc.send_signal(signal.SIGKILL)
    t.join(30)
    assert ["RemoteProtocolError"] == outcome, "the client sees the stream broken, not a clean end or a hang"
    deadline = time.monotonic() + HOLD_TTL_S + 10
    while gw.balance("midstream")[1] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    bal, held = gw.balance("midstream")
    assert 0 == held
    assert bal <= start


def test_redis_restart_keeps_settled_charges(faulty: GatewayUnderTest, tmp_path: Path) -> None:
    """With AOF on, balances and ledgers survive Redis being killed (after its 1 s fsync) and restarted."""
    gw = faulty
    bal, held = gw.balance("crash")
    ledger = gw._billing(lambda b: b.ledger("crash", 100))
    time.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
    redis = _child(gw, "redis")
    argv = redis.argv
    redis.proc.kill()
    redis.proc.wait()
    port = gw.stack.redis_port
    new = gw.stack.supervisor.start("redis", argv)
    gw.stack.supervisor.wait_until(new, lambda: port_open(port), 10, "accepting connections")
    assert (bal, held) == gw.balance("crash")
    assert ledger == gw._billing(lambda b: b.ledger("crash", 100))


def test_malformed_events_go_to_dead_letters_and_do_not_block_the_batch(faulty: GatewayUnderTest) -> None:
    """A bad event is kept in tg:metering:dead with its reason; the good ones around it settle."""
    gw = faulty
    gw.new_key("poison", fund_usd=1)
    start, _ = gw.balance("poison")

    def event(i: int, **over: Any) -> bytes:
        return orjson.dumps({"event_id": f"poison-{i}", "account": "poison", "model": "gpt-test", "key_id": "k",
                             "usage": {"input": 1}, "cost_nano": 1000, "status": 200, "complete": True,
                             "ts": time.time(), **over})

    with gw.redis() as r:
        r.xadd(store.METERING_STREAM, {"event": event(1)})
        r.xadd(store.METERING_STREAM, {"event": b"{not json"})
        r.xadd(store.METERING_STREAM, {"event": event(2, usage={"input": "lots"})})
        r.xadd(store.METERING_STREAM, {"event": event(3)})
    deadline = time.monotonic() + 5
    while gw.balance("poison")[0] != start - 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert start - 2000 == gw.balance("poison")[0]
    with gw.redis() as r:
        dead = [f[b"error"].decode() for _, f in r.xrange("tg:metering:dead")]
    assert any("JSON" in d or "unexpected" in d for d in dead) and any("usage.input is not an integer" in d for d in dead)

