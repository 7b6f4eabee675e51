"""One SETTLE call for a batch of an account's events (core/billing/scripts.py): an event of a lease placed no
hold of its own, and what the batch's events of each lease cost comes out of that lease's hold once, as far as it
still holds — the same as taking each cost in turn; an event with a hold of its own releases it in the same call."""

from __future__ import annotations

import time

import orjson

from core import event, store
from core.billing.ops import Settlement
from tests.inprocess.harness import InProcess, run

USD = 1_000_000_000


def _event(event_id: str, cost: int, lease: str = "") -> Settlement:
    return Settlement.of({"event_id": event_id, "account": "acme", "model": "gpt-test", "key_id": "k1",
                          "usage": {"input": 10, "output": 5}, "cost_nano": cost, "status": 200,
                          "complete": True, "lease": lease, "ts": time.time()})


def test_an_entrys_serialized_event_goes_on_to_the_recent_requests_as_it_came() -> None:
    """The settler passes a stream entry's own bytes to SETTLE (the recent requests keep them), not the event
    serialized again; a version-0 entry (JSON) has its event serialized."""
    fields = {"event_id": "e1", "account": "acme", "model": "gpt-test", "cost_nano": 7, "status": 200}
    data = event.MeteringEvent(version=event.VERSION, **fields).SerializeToString()
    s = Settlement.of_entry({k.encode(): v for k, v in event.entry(data).items()})  # as redis-py gives it
    assert s.args[0] is data and s.keys == Settlement.of(event.MeteringEvent.FromString(data)).keys
    legacy = Settlement.of_entry({event.LEGACY_ENTRY_FIELD.encode(): orjson.dumps(fields)})
    assert ("e1", 7) == (event.MeteringEvent.FromString(legacy.args[0]).event_id,
                         event.MeteringEvent.FromString(legacy.args[0]).cost_nano)


def test_a_batch_takes_each_leases_costs_from_its_hold_once_and_releases_own_holds(redis_url: str) -> None:
    async def scenario(tg: InProcess) -> None:
        await tg.key("acme", usd=10)
        r, acct, holds = tg.redis, store.account_key("acme"), store.holds("acme")
        # Two leases (100 and 50 held) and one request's own hold (30), as admission would leave them.
        await r.hset(holds, mapping={"lease:a": 100, "lease:b": 50, "own": 30})
        await r.hincrby(acct, "held", 180)
        await r.zadd(store.hold_expiries("acme"), {"lease:a": time.time() + 60, "lease:b": time.time() + 60,
                                                    "own": time.time() + 60})
        batch = [_event("e1", 40, "lease:a"), _event("e2", 45, "lease:a"), _event("own", 12),
                 _event("e3", 30, "lease:b"), _event("e4", 35, "lease:b"), _event("e1", 40, "lease:a")]
        outcomes = await tg.gw.billing.settle_many(batch)

        assert outcomes == ["ok"] * 5 + ["duplicate"]
        left = {k.decode(): int(v) for k, v in (await r.hgetall(holds)).items()}
        assert left == {"lease:a": 15}  # 100 - 85; lease:b (50) spent past its hold: emptied and removed
        assert await r.zscore(store.hold_expiries("acme"), "lease:b") is None
        assert await r.zscore(store.hold_expiries("acme"), "own") is None
        assert await tg.gw.billing.balance("acme") == (10 * USD - 162, 15)  # every cost charged in full
        ledger = await tg.gw.billing.ledger("acme")
        assert sorted(int(e["amount"]) for e in ledger if e["type"] == "charge") == [-45, -40, -35, -30, -12]

    run(redis_url, scenario)
