"""Leases: admission without a Redis round trip per request, and the money still exact.

In-process tests drive an ``Admitter`` against the stack's Redis (accounts of their
own, the settler settling); end-to-end ones go through Envoy and both translators.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest
import redis.asyncio as aioredis

from core import keys, store
from core.billing.ops import Billing
from core.config import Billing as BillingConfig
from fakes import Reply, Usage
from tests.harness import GatewayUnderTest
from translator import metrics
from translator.admission import Admitter
from translator.errors import InsufficientQuota, Unauthorized

T = TypeVar("T")
USD = 1_000_000_000
HOLD = 10_000_000  # $0.01


def _with_redis(gw: GatewayUnderTest, fn: Callable[[aioredis.Redis, Billing], Awaitable[T]]) -> T:
    async def run() -> T:
        r = aioredis.Redis.from_url(gw.stack.effective_redis_url)
        try:
            return await fn(r, Billing(r))
        finally:
            await r.aclose()

    return asyncio.run(run())


def _admitter(b: Billing, **lease: object) -> Admitter:
    return Admitter(b, BillingConfig(lease={"max_usd": 1, "min_requests": 20, **lease}))


def test_a_lease_takes_half_the_available_balance_up_to_its_cap_and_admits_locally(gateway: GatewayUnderTest) -> None:
    """$1.5 available: the first process leases $0.75, a second half the rest; each then admits without Redis."""
    async def run(r: aioredis.Redis, b: Billing) -> tuple[object, ...]:
        key = await keys.create_key(r, "lease1", name="t")
        await b.credit("lease1", 3 * USD // 2, kind="topup", ref="lease1", reason="t")
        one, two = _admitter(b), _admitter(b)
        first = await one.admit(key, "gpt-test", hold=HOLD, hold_id="a")
        second = await two.admit(key, "gpt-test", hold=HOLD, hold_id="b")
        after_leases = await b.balance("lease1")
        for i in range(30):  # 30 more requests on process one: no Redis call (nothing changes there)
            await one.admit(key, "gpt-test", hold=HOLD, hold_id=f"c{i}")
        return (first.lease_id != "", second.lease_id != "", one.leases["lease1"].granted,
                two.leases["lease1"].granted, after_leases, await b.balance("lease1"),
                one.leases["lease1"].inflight)

    leased_one, leased_two, g1, g2, after, later, inflight = _with_redis(gateway, run)
    assert (True, True) == (leased_one, leased_two)
    assert (USD * 3 // 4, USD * 3 // 8) == (g1, g2)
    assert after == later == (3 * USD // 2, g1 + g2)
    assert 31 * HOLD == inflight


def test_small_balances_get_a_hold_per_request(gateway: GatewayUnderTest) -> None:
    """Less than min_requests holds available: no lease, each request holds its own, and the 6th is refused."""
    async def run(r: aioredis.Redis, b: Billing) -> tuple[object, ...]:
        key = await keys.create_key(r, "lease2", name="t")
        await b.credit("lease2", 5 * HOLD + HOLD // 2, kind="topup", ref="lease2", reason="t")
        a = _admitter(b)
        admitted = [await a.admit(key, "gpt-test", hold=HOLD, hold_id=f"h{i}") for i in range(5)]
        with pytest.raises(InsufficientQuota):
            await a.admit(key, "gpt-test", hold=HOLD, hold_id="h5")
        return tuple(x.lease_id for x in admitted) + (await b.balance("lease2"), a.leases)

    *lease_ids, balance, leases = _with_redis(gateway, run)
    assert ([""] * 5, (5 * HOLD + HOLD // 2, 5 * HOLD), {}) == (lease_ids, balance, leases)


def test_a_spent_lease_is_topped_up_and_settling_charges_it(gateway: GatewayUnderTest) -> None:
    """Costs come out of the lease hold as events settle; a lease that cannot cover a request is topped up;
    what is given back leaves held at 0 once the rest settles, and the balance is credits minus costs."""
    async def run(r: aioredis.Redis, b: Billing) -> tuple[object, ...]:
        key = await keys.create_key(r, "lease3", name="t")
        await b.credit("lease3", 10 * USD, kind="topup", ref="lease3", reason="t")
        a = _admitter(b, max_usd="0.25", min_requests=5)  # 25 holds of $0.01; leases of 5 holds and up
        first = await a.admit(key, "gpt-test", hold=HOLD, hold_id="e0")
        lease = a.leases["lease3"]
        a.finished("lease3", first.lease_id, HOLD, 24 * HOLD)  # a request that cost almost all of it
        await b.settle({"event_id": "e0", "account": "lease3", "model": "gpt-test", "key_id": first.key.key_id,
                        "cost_nano": 24 * HOLD, "status": 200, "complete": True, "lease": first.lease_id})
        mid = await b.balance("lease3")
        second = await a.admit(key, "gpt-test", hold=2 * HOLD, hold_id="e1")  # 1 hold left: a top-up
        topped = lease.granted
        a.finished("lease3", second.lease_id, 2 * HOLD, HOLD)
        back = await a.give_back(idle_only=False)
        await b.settle({"event_id": "e1", "account": "lease3", "model": "gpt-test", "key_id": first.key.key_id,
                        "cost_nano": HOLD, "status": 200, "complete": True, "lease": second.lease_id})
        return mid, second.lease_id == first.lease_id, topped, back, await b.balance("lease3")

    mid, same, topped, back, end = _with_redis(gateway, run)
    assert (10 * USD - 24 * HOLD, HOLD) == mid  # charged, and the lease hold shrank by the cost
    assert same and topped == 25 * HOLD + 24 * HOLD  # topped back up to the cap (less what was available)
    assert back == topped - 25 * HOLD
    assert (10 * USD - 25 * HOLD, 0) == end


def test_a_lease_past_its_ttl_is_never_used(gateway: GatewayUnderTest) -> None:
    """Once the reaper may release a lease, the process asks Redis again (a new lease) instead of trusting it."""
    async def run(r: aioredis.Redis, b: Billing) -> tuple[str, str]:
        key = await keys.create_key(r, "lease4", name="t")
        await b.credit("lease4", 10 * USD, kind="topup", ref="lease4", reason="t")
        a = _admitter(b)
        first = await a.admit(key, "gpt-test", hold=HOLD, hold_id="x")
        a.leases["lease4"].dead_at = time.monotonic() - 1
        second = await a.admit(key, "gpt-test", hold=HOLD, hold_id="y")
        return first.lease_id, second.lease_id

    first, second = _with_redis(gateway, run)
    assert first != second and first and second


def _admissions(gw: GatewayUnderTest, since: dict[str, float] | None = None, want: int = 0) -> dict[str, float]:
    """tokengate_admissions_total per path; with ``since``, once ``want`` more admissions than it are counted
    (each translator hands its tally to /metrics once a second), or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        out = {"lease": 0.0, "redis": 0.0}
        for line in httpx.get(gw.metrics).text.splitlines():
            for path in out:
                if line.startswith(f'tokengate_admissions_total{{path="{path}"}}'):
                    out[path] = float(line.split()[-1])
        if since is None or sum(out.values()) - sum(since.values()) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def test_requests_through_the_gateway_are_admitted_against_leases(gateway: GatewayUnderTest) -> None:
    """20 requests of a funded account: a Redis admission per translator at most, the rest local;
    every event names a lease; once settled and given back, balance = credit − costs, nothing held."""
    key = gateway.new_key("leasee2e", fund_usd=100)
    start, _ = gateway.balance("leasee2e")
    since = gateway.last_stream_id()
    time.sleep(metrics.FLUSH_S + 0.2)  # earlier tests' admissions reach /metrics before this one's count
    before = _admissions(gateway)
    began = time.monotonic()
    for _ in range(20):
        gateway.fake.push(Reply(text="x", usage=Usage(input=10, output=5)))
        httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).raise_for_status()
    elapsed = time.monotonic() - began
    events = gateway.wait_metering(since, 20)
    after = _admissions(gateway, before, 20)
    # One call per translator, and again per translator each time its key cache ran out, or its lease
    # was given back idle (idle_s 0.3; the give-back looks once a second) and taken anew: both only on
    # a machine slow enough to take a second or more for 20 requests.
    renewed = int(elapsed)
    calls = 2 * (1 + int(elapsed // gateway.cfg["billing"]["lease"]["key_cache_s"]) + renewed)
    assert after["redis"] - before["redis"] <= calls and after["lease"] - before["lease"] >= 20 - calls
    assert 1 <= len({e["lease"] for e in events}) <= 2 * (1 + renewed) and all(e["lease"] for e in events)
    cost = sum(e["cost_nano"] for e in events)
    assert (start - cost, 0) == gateway.wait_balance("leasee2e", start - cost)


def test_a_revoked_key_is_refused_within_the_key_cache_time(gateway: GatewayUnderTest) -> None:
    """A key cached with a lease stops working at most key_cache_s after it is revoked."""
    key = gateway.new_key("revokee", fund_usd=100)
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
    gateway.fake.push(Reply(text="x", times=None))
    assert 200 == httpx.post(f"{gateway.http}/v1/chat/completions", headers=headers, json=body).status_code
    revoked = gateway._billing(lambda b: keys.revoke_key(b.redis, "revokee", store.key_id(store.digest(key))))
    assert revoked
    deadline = time.monotonic() + gateway.cfg["billing"]["lease"]["key_cache_s"] + 2
    while time.monotonic() < deadline:
        status = httpx.post(f"{gateway.http}/v1/chat/completions", headers=headers, json=body).status_code
        if status == 401:
            break
        time.sleep(0.1)
    assert 401 == status


def test_unauthorized_is_not_cached(gateway: GatewayUnderTest) -> None:
    """A made-up key of a leasing account is refused by Redis, not let in by the account's lease."""
    gateway.new_key("cacheacct", fund_usd=100)

    async def run(r: aioredis.Redis, b: Billing) -> str:
        a = _admitter(b)
        good = await keys.create_key(r, "cacheacct", name="t")
        await a.admit(good, "gpt-test", hold=HOLD, hold_id="g")
        forged = store.KEY_PREFIX + "cacheacct-" + "x" * 40
        with pytest.raises(Unauthorized) as info:
            await a.admit(forged, "gpt-test", hold=HOLD, hold_id="f")
        return info.value.message

    assert "Incorrect API key" in _with_redis(gateway, run)


def test_an_admission_run_after_its_deadline_holds_nothing(gateway: GatewayUnderTest) -> None:
    """Redis running the call late (it stalled; the client already answered 503) places no hold and no lease."""
    async def run(r: aioredis.Redis, b: Billing) -> tuple[str, tuple[int, int]]:
        key = await keys.create_key(r, "late", name="t")
        await b.credit("late", 10 * USD, kind="topup", ref="late", reason="t")
        a = await b.admit("late", store.digest(key), "gpt-test", hold=HOLD, hold_id="l1", hold_ttl_s=60,
                          deadline=time.time() - 1)
        return a.outcome, await b.balance("late")

    assert ("late", (10 * USD, 0)) == _with_redis(gateway, run)
