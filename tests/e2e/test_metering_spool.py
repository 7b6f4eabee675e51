"""The metering spool end to end: what a translator recorded while Redis was away outlives the process
(killed with SIGKILL, or stopped with SIGTERM) and is settled exactly once when Redis returns."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from core import event, store
from fakes import Reply, Usage
from settler.service import GROUP
from tests.harness import GatewayUnderTest, own_stack
from tests.test_spool import die
from tokengate.devstack import grpc_serving, start_translators
from tokengate.procs import Child, port_open
from tokengate.render import translator_addresses
from translator.metering import Meter
from translator.spool import Spool, default_root, worker_dir

WORKERS = 2


@pytest.fixture(scope="module")
def spooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """A stack of its own (these tests stop its Redis and kill its translators), with leases that
    admit an account's requests in process for minutes: requests are served while Redis is away."""
    def tweak(cfg: dict[str, Any]) -> None:
        cfg["billing"]["lease"] = {"idle_s": 300, "key_cache_s": 300}

    with own_stack(tmp_path_factory.mktemp("spool"), tweak, workers=WORKERS) as gw:
        yield gw


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not {what} after {timeout:g} s"
        time.sleep(0.05)


def alive(gw: GatewayUnderTest, name: str) -> Child:
    return next(c for c in gw.stack.supervisor.children if c.name == name and c.alive())


def spooled_request_ids(d: Path) -> set[str]:
    return {event.from_line(ln).request_id for p in d.glob("*.seg") for ln in p.read_bytes().splitlines()
            if ln.endswith(event.LINE_END)}


def charges(gw: GatewayUnderTest, account: str) -> Counter[str]:
    """How often each event was charged (the ledger's charge entries by ref)."""
    ledger = gw._billing(lambda b: b.ledger(account, 1000))
    return Counter(e["ref"] for e in ledger if e["type"] == "charge")


def test_replaying_events_already_in_the_stream_charges_them_once(spooled: GatewayUnderTest,
                                                                  tmp_path: Path) -> None:
    """A process killed after Redis took its events but before its spool forgot them: the next one
    replays them, the stream has them twice, the settler charges each once."""
    gw = spooled
    gw.new_key("replay", fund_usd=1)
    start, _ = gw.balance("replay")
    run = uuid.uuid4().hex[:8]
    events = [event.from_json(
        {"version": event.VERSION, "event_id": f"replay-{run}-{i}", "request_id": f"replay-{run}-{i}",
         "account": "replay", "key_id": "k", "model": "gpt-test", "usage": {"input": 1}, "cost_nano": 1000,
         "status": 200, "complete": True, "ts": time.time()}) for i in range(3)]
    with gw.redis() as r:
        for ev in events:
            r.xadd(store.METERING_STREAM, event.entry(ev.SerializeToString()))
    dead = Spool(tmp_path)
    dead.open()
    for ev in events:
        dead.append(event.line(ev.SerializeToString()))
    die(dead)

    async def next_start() -> None:
        r = aioredis.Redis.from_url(gw.stack.effective_redis_url)
        spool = Spool(tmp_path)
        spool.open()
        meter = Meter(r, spool=spool)
        meter.start()
        try:
            deadline = time.monotonic() + 10
            while spool.backlog and time.monotonic() < deadline:  # noqa: ASYNC110 - a deque, no event
                await asyncio.sleep(0.02)
            assert not spool.backlog
        finally:
            await meter.close()
            await r.aclose()

    asyncio.run(next_start())
    with gw.redis() as r:
        in_stream = Counter(event.from_entry(f).event_id for _, f in r.xrange(store.METERING_STREAM))

        def all_settled() -> bool:
            group = next(g for g in r.xinfo_groups(store.METERING_STREAM) if g["name"] == GROUP.encode())
            return bool(group["pending"] == 0 and group["last-delivered-id"] == r.xrevrange(
                store.METERING_STREAM, count=1)[0][0])

        wait_for("every entry read and acknowledged by the settler", all_settled)
    assert [2, 2, 2] == [in_stream[e.event_id] for e in events]
    assert {e.event_id: 1 for e in events} == dict(charges(gw, "replay"))
    assert (start - 3000, 0) == gw.balance("replay")
    assert [] == list(tmp_path.iterdir())


def test_events_recorded_while_redis_is_away_outlive_the_translators_and_settle_once(
        spooled: GatewayUnderTest) -> None:
    """Redis stops; requests are served against leases and metered into the spools; one translator
    is killed with SIGKILL, the other stopped with SIGTERM (it cannot flush: a warning, not a loss); new
    ones start on the same sockets and adopt the spools; Redis returns → every event reaches the
    stream and is charged exactly once: balance = credits − charges."""
    gw = spooled
    gw.fake.reset()
    key = gw.new_key("away", fund_usd=10)
    start, _ = gw.balance("away")
    gw.fake.push(Reply(text="x", usage=Usage(input=100, output=50), times=None))
    addresses = translator_addresses(gw.stack.cfg, WORKERS)
    spools = [worker_dir(default_root(a), a) for a in addresses]

    with httpx.Client(base_url=gw.http, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        def chat() -> int:
            body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
            return client.post("/v1/chat/completions", json=body).status_code

        def leases() -> int:
            with gw.redis() as r:
                return sum(h.startswith(b"lease:") for h in r.hkeys(store.holds("away")))

        for _ in range(20):  # one connection: Envoy round-robins it over the workers
            if leases() == WORKERS:
                break
            assert 200 == chat()
        assert WORKERS == leases(), "each translator holds a lease: it admits without Redis"
        before = len(gw.fake.requests)

        redis_child = alive(gw, "redis")
        redis_argv = redis_child.argv
        with gw.redis() as r, contextlib.suppress(redis.ConnectionError):
            r.shutdown()  # AOF written first: nothing Redis had is lost
        redis_child.proc.wait(10)

        assert [200] * 6 == [chat() for _ in range(6)], "served against the leases while Redis is away"
    away = {r.headers["x-request-id"] for r in gw.fake.requests[before:]}
    wait_for("metered into the spools", lambda: away <= set().union(*map(spooled_request_ids, spools)))
    assert all(away & spooled_request_ids(d) for d in spools), "both workers served some"

    killed, stopped = (alive(gw, f"translator-{i}") for i in range(WORKERS))
    killed.proc.send_signal(signal.SIGKILL)
    stopped.proc.send_signal(signal.SIGTERM)
    killed.proc.wait(10)
    assert 0 == stopped.proc.wait(30)
    assert "metering_left_in_spool" in (stopped.log_tail(50)), "a graceful stop keeps what it could not write"
    assert "metering_unflushed_at_shutdown" not in stopped.log_tail(50)

    sup = gw.stack.supervisor
    for address, child in start_translators(sup, gw.stack.cfg, gw.stack.config_path, WORKERS,
                                            redis_url=gw.stack.effective_redis_url, log_level="warning",
                                            metrics_dir=gw.stack.workdir / "metrics"):
        sup.wait_until(child, lambda a=address: grpc_serving(a), 20, "serving gRPC health")  # type: ignore[misc]
    new_redis = sup.start("redis", redis_argv)
    sup.wait_until(new_redis, lambda: port_open(gw.stack.redis_port), 10, "accepting connections")

    ours = {r.headers["x-request-id"] for r in gw.fake.requests}
    wait_for("every request charged", lambda: len(charges(gw, "away")) == len(ours))
    events = {e["event_id"]: e for e in gw.metering_events() if e["account"] == "away"}
    assert ours == {e["request_id"] for e in events.values()}, "every request's event reached the stream"
    assert set(events) == set(charges(gw, "away")), "every event charged"
    assert {1} == set(charges(gw, "away").values()), "none twice"
    assert start - sum(e["cost_nano"] for e in events.values()) == gw.balance("away")[0]
    assert all(not list(d.glob("*.seg")) or not spooled_request_ids(d) for d in spools), "replayed and gone"
