"""Every multi-key operation stays on one hash slot, so tokengate runs on a Redis Cluster.

Two checks: a static one over every Lua script (keys reach it only through KEYS, never built
from text), and the whole billing, metering, settlement and portal flow run in process against
the session's real cluster, with every script call's keys checked for one slot and every
script required to have run. The cluster itself refuses a command, script or transaction
whose keys span slots (the first test shows it does), so a regression fails here.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import key_slot
from redis.commands.core import AsyncScript

from core import event, keys, redisconn, store
from core.billing import scripts
from core.billing.ops import Billing, LeaseAsk
from portal import users
from portal.payments import orders, redeem
from portal.security.ratelimit import FailureLimit
from portal.security.sessions import Sessions
from settler.service import GROUP, Settler
from tests.cluster.rediscluster import LocalCluster
from translator.metering import Meter

ROOT = Path(__file__).resolve().parents[2]
# every Lua script tokengate registers, by the name its module gives it
SCRIPTS = {
    "ADMIT": scripts.ADMIT, "SETTLE": scripts.SETTLE, "RELEASE_EXPIRED": scripts.RELEASE_EXPIRED,
    "CREDIT": scripts.CREDIT, "RETURN_LEASE": scripts.RETURN_LEASE,
    "_CREATE": users._CREATE, "_OPEN": orders._OPEN, "_CLAIM": redeem._CLAIM,
}
KEYLESS = {"TIME"}


def registered_scripts() -> set[str]:
    """The name passed to every ``register_script(…)`` in the packages that talk to Redis."""
    names = set()
    for pkg in ("core", "translator", "settler", "portal", "tokengate"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register_script":
                    arg = node.args[0]
                    names.add(arg.attr if isinstance(arg, ast.Attribute) else getattr(arg, "id", "?"))
    return names


def test_the_list_of_scripts_is_every_script_registered() -> None:
    assert registered_scripts() == set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_names_its_keys_only_through_KEYS(name: str) -> None:
    """A key named in the script's text (or built from one) would be on a slot the caller never
    declared: every redis.call's key is KEYS[…] or a loop variable over lists filled only from KEYS."""
    src = SCRIPTS[name]
    assert not re.search(r"""['"]tg:""", src), "a key name written into the script"
    calls = re.findall(r"redis\.p?call\(\s*'([A-Z]+)'\s*(?:,\s*([^,)]+))?", src)
    assert calls
    for command, first in calls:
        if command in KEYLESS:
            continue
        first = first.strip()
        if first.startswith("KEYS["):
            continue
        # a loop variable: `for _, h in ipairs(order)`, where `order` only ever gets KEYS[…]
        loop = re.search(rf"for _, {re.escape(first)} in ipairs\((\w+)\)", src)
        assert loop, f"{name}: {command} on {first!r}, not a KEYS entry"
        fills = re.findall(rf"(?:add|slot)\(\w+, {loop.group(1)}, ([^,)]+)[,)]", src)
        assert fills and all(f.strip().startswith("KEYS[") for f in fills), (name, command, first, fills)


def test_the_cluster_refuses_keys_of_two_slots(redis_cluster: LocalCluster) -> None:
    """What makes the flow test able to fail: a script declaring keys of two slots, and one touching
    an undeclared key another master serves, are errors on a cluster. (Redis 7.0 lets a script touch
    an undeclared key of another slot on its own node: the static test above and ``script_calls``
    cover that.)"""
    c = redis_cluster.client()
    try:
        a, b = "tg:{acme}:x", "tg:{acme}:y"
        elsewhere = next(f"tg:{{o{i}}}:x" for i in range(1000)
                         if c.get_node_from_key(f"tg:{{o{i}}}:x") != c.get_node_from_key(a))
        with pytest.raises(redis.RedisError, match="non local key|slot"):
            c.eval("return redis.call('SET', ARGV[1], 1)", 1, a, elsewhere)
        with pytest.raises((redis.RedisError, redis.exceptions.RedisClusterException), match="slot"):
            c.eval("return 1", 2, a, elsewhere)
        assert c.eval("return redis.call('MSET', KEYS[1], 1, KEYS[2], 2)", 2, a, b) == b"OK"
    finally:
        c.close()


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[Any]]]]:
    """Every script call's (name, keys); fails the call if its keys span two slots."""
    calls: list[tuple[str, list[Any]]] = []
    by_source = {src: name for name, src in SCRIPTS.items()}
    real = AsyncScript.__call__

    def call(self: AsyncScript, keys: list[Any] | None = None, args: Any = None, client: Any = None) -> Any:
        src = self.script.decode() if isinstance(self.script, bytes) else self.script
        calls.append((by_source.get(src, "?"), list(keys or [])))
        slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys or []}
        assert len(slots) <= 1, f"{by_source.get(src)} called with keys of {len(slots)} slots: {keys}"
        return real(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(AsyncScript, "__call__", call)
    yield calls


def metering_event(account: str, key_id: str, *, hold_id: str, hold: int = 0, lease: str = "",
                   cost: int = 1000) -> event.MeteringEvent:
    return event.from_json({
        "version": event.VERSION, "event_id": hold_id, "request_id": f"r-{hold_id}", "account": account,
        "key_id": key_id, "model": "gpt-test", "deployment": "d", "attempts": 1, "protocol": "openai",
        "upstream_protocol": "openai", "status": 200, "stream": False, "complete": True, "cut_short": False,
        "finish": "stop", "usage": {"input": 10, "cache_read": 0, "cache_write": 0, "output": 5, "reasoning": 0},
        "usage_estimated": False, "hold_nano": hold, "lease": lease, "cost_nano": cost,
        "duration_ms": 1.0, "ts": time.time()})


async def until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"not done in {seconds}s")


async def _flow(url: str) -> dict[str, Any]:
    r = redisconn.connect(url)
    try:
        billing = Billing(r)
        accounts = [f"slot{i}" for i in range(12)]
        credit, cost, hold = 10_000_000_000, 1_000_000, 5_000_000
        api_keys = {}
        for a in accounts:  # CREDIT (with WAIT), the key's transaction
            assert await billing.credit(a, credit, kind="topup", ref=f"t-{a}", reason="test") == credit
            api_keys[a] = await keys.create_key(r, a, name="k")
        assert await billing.credit(accounts[0], credit, kind="topup", ref=f"t-{accounts[0]}", reason="x") is None
        events = []
        for a in accounts:  # ADMIT: a hold each
            d = store.digest(api_keys[a])
            got = await billing.admit(a, d, "gpt-test", hold=hold, hold_id=f"ev-{a}", hold_ttl_s=900)
            assert got.outcome == "ok", got
            events.append(metering_event(a, got.key_id, hold_id=f"ev-{a}", hold=hold, cost=cost))
        a0, a1, a2 = accounts[:3]
        limited = await keys.create_key(r, a0, name="limited", rpm=2)
        outcomes = [(await billing.admit(a0, store.digest(limited), "gpt-test", hold=hold, hold_id=f"rl-{i}",
                                         hold_ttl_s=900)).outcome for i in range(3)]
        assert outcomes == ["ok", "ok", "rate_limited"]
        await billing.release_expired(a0, now=time.time() + 1000)  # RELEASE_EXPIRED: the two rl- holds
        lease = await billing.admit(a1, store.digest(api_keys[a1]), "gpt-test", hold=hold, hold_id="ev-lease",
                                    hold_ttl_s=900, lease=LeaseAsk("lease:slots", smallest=hold, largest=10 * hold))
        assert lease.outcome == "lease" and lease.leased == 10 * hold
        events.append(metering_event(a1, lease.key_id, hold_id="ev-lease", lease="lease:slots", cost=cost))
        assert await billing.return_lease(a1, "lease:slots", 10 * hold - cost) == 10 * hold - cost  # RETURN_LEASE

        meter = Meter(r, linger_s=0.01)  # XADD to the shards, WAIT
        meter.start()
        for ev in events:
            meter.record(ev)
        await until(lambda: not meter.pending, 20)
        await meter.close()
        streams = {meter.stream_of(a) for a in accounts}

        settler, stop = Settler(r, consumer="slots", block_ms=50, reap_every_s=0.2), asyncio.Event()
        running = asyncio.create_task(settler.run(stop))  # SETTLE per shard, WAIT, XACK
        await until(lambda: settler.applied >= len(events), 30)
        stop.set()
        await running
        # settled entries are dropped once older than keep_s; a pending one (read, never acknowledged) stays
        stream = sorted(streams)[0]
        pending_id = await r.xadd(stream, {"pb": b"x"})
        await r.xreadgroup(GROUP, "reader-that-died", {stream: ">"}, count=10)
        settler.keep_s = 0
        for s in streams:
            await settler.trim(s)
        lengths = {s: await r.xlen(s) for s in streams}
        assert [e[0] for e in await r.xrange(stream)] == [pending_id]
        assert lengths == {s: int(s == stream) for s in streams}
        await r.xack(stream, GROUP, pending_id)
        await r.xdel(stream, pending_id)

        u = users.Users(r)  # the portal's scripts and transactions
        user = await u.sign_up("slots@example.com", "a long enough password 1")
        sessions = Sessions(r)
        s = await sessions.create(user.account, user.email)
        await sessions.flash(s, "hello")
        assert await sessions.pop_flash(s) == "hello"
        await FailureLimit(r, limit=3, window_s=60).fail("tg:portal:fail:test")
        o = orders.Orders(r, billing)
        order = await o.open(user.account, "a" * 16, 2_000_000_000, "demo")
        assert await o.complete(order, reason="test")
        codes = redeem.RedeemCodes(r)
        [code] = await codes.issue(1_000_000_000, count=1, by="test")
        assert await codes.claim(code, user.account) == ("ok", 1_000_000_000)

        balances = {a: await billing.balance(a) for a in accounts}
        nodes = {r.get_node_from_key(s).name for s in streams}  # type: ignore[attr-defined]
        return {"balances": balances, "streams": streams, "nodes": nodes, "accounts": accounts,
                "applied": settler.applied, "events": len(events), "credit": credit, "cost": cost}
    finally:
        await r.aclose()


def test_billing_metering_settlement_and_portal_on_a_cluster(
        redis_cluster: LocalCluster, script_calls: list[tuple[str, list[Any]]]) -> None:
    out = asyncio.run(_flow(redis_cluster.url(metering_shards=4, wait_replicas=1, wait_ms=2000)))
    assert {name for name, _ in script_calls} == set(SCRIPTS)
    assert out["applied"] == out["events"]
    for a, (balance, held) in out["balances"].items():
        assert held == 0, a  # every hold settled, released or given back
        charged = out["cost"] * (2 if a == "slot1" else 1)  # slot1: its hold's request and the leased one
        assert balance == out["credit"] - charged, a
    assert len(out["streams"]) == 4  # twelve accounts over four shards
    assert len(out["nodes"]) >= 2  # the shards spread over masters
