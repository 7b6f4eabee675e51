"""Scale of data: does admission and settlement cost stay flat from 100 to 100,000 accounts?

``python -m bench.scale`` starts a throwaway ``redis-server`` (no persistence), fills it with
N accounts of K API keys each (``--sizes 100x10,100000x10``: 1,000 and 1,000,000 keys), and for
each size measures, with the real scripts (``core.billing``):

- ADMIT (a hold of its own, no lease: the round trip every unleased request takes) on random
  keys: Redis's own time per call (``INFO commandstats``, evalsha usec) and the client's latency;
- SETTLE in batches of 100 events of 100 distinct accounts (one script call an account, as the
  settler does): Redis time per event;

each twice over the same accounts: ``first`` creates their holds, usage, ledger and recent
requests, ``again`` finds them (an active account's steady state);
- the reaper's pass over every account (no hold due), which every settler makes every 2 s;
- memory: ``used_memory`` per account with its keys, and ``MEMORY USAGE`` of one account's usage
  hash for a day (3 models, 2 keys) and of a ledger entry.

It prints one table (docs/deploy.md, "Scale of data", has a run). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from core import store
from core.billing.ops import Billing, Settlement
from core.event import VERSION, from_json
from settler.service import Settler
from tokengate.devstack import redis_binary
from tokengate.procs import Supervisor, free_port, port_open

FILL_BATCH = 5_000
CALLS = 2_000
MODELS = ("gpt-4o-mini", "claude-sonnet", "gemini-flash")


def digest_of(account: int, key: int) -> str:
    return f"{account:08d}{key:056d}"  # 64 hex digits, like a SHA-256


async def fill(r: aioredis.Redis, accounts: int, keys: int) -> None:
    now = str(int(time.time()))
    for start in range(0, accounts, FILL_BATCH):
        async with r.pipeline(transaction=False) as p:
            for a in range(start, min(start + FILL_BATCH, accounts)):
                name = f"a{a}"
                p.hset(store.account_key(name), mapping={"balance": 10**12, "held": 0, "created": now})
                p.sadd(store.ACCOUNTS, name)
                for k in range(keys):
                    d = digest_of(a, k)
                    p.hset(store.key_record(name, d), mapping={
                        "id": d[:16], "prefix": "sk-tg-a", "name": f"key {k}", "created": now, "expires_at": "0",
                        "revoked": "0", "models": "", "rpm": "0", "tpm": "0"})
                    p.sadd(store.account_keys(name), d)
            await p.execute()


async def evalsha_usec(r: aioredis.Redis) -> tuple[int, int]:
    s = (await r.info("commandstats")).get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(s["calls"]), int(s["usec"])


def event(account: str, key_id: str, i: int) -> Settlement:
    return Settlement.of(from_json({
        "version": VERSION, "event_id": uuid.uuid4().hex, "request_id": str(i), "account": account,
        "key_id": key_id, "model": MODELS[i % len(MODELS)], "deployment": "d", "attempts": 1,
        "protocol": "openai", "upstream_protocol": "openai", "status": 200, "stream": False, "complete": True,
        "cut_short": False, "finish": "stop", "usage": {"input": 1234, "output": 321}, "hold_nano": 0,
        "cost_nano": 381150, "duration_ms": 812.3, "ts": time.time()}))


async def measure(r: aioredis.Redis, accounts: int, keys: int) -> dict[str, Any]:
    await r.flushall()
    base = int((await r.info("memory"))["used_memory"])
    t0 = time.monotonic()
    await fill(r, accounts, keys)
    fill_s = time.monotonic() - t0
    used = int((await r.info("memory"))["used_memory"]) - base
    billing = Billing(r)
    rng = random.Random(17)  # noqa: S311 - which keys to ask for, not a secret
    # batches of 100 distinct accounts (the settler groups a batch by account: one script call each),
    # the same for every size, so that sizes differ only in how many accounts Redis holds
    batches = [[(a, rng.randrange(keys)) for a in rng.sample(range(accounts), min(100, accounts))]
               for _ in range(CALLS // 100)]
    out: dict[str, float] = {}
    for rnd in ("first", "again"):  # first: the account's holds, usage, ledger are created; again: they exist
        c0, u0 = await evalsha_usec(r)
        latencies = []
        for b, batch in enumerate(batches):
            for i, (a, k) in enumerate(batch):
                t = time.perf_counter()
                got = await billing.admit(f"a{a}", digest_of(a, k), MODELS[0], hold=1000,
                                          hold_id=f"{rnd}-{b}-{i}", hold_ttl_s=900)
                latencies.append(time.perf_counter() - t)
                assert got.outcome == "ok", got
        c1, u1 = await evalsha_usec(r)
        for batch in batches:
            settled = await billing.settle_many([event(f"a{a}", digest_of(a, k)[:16], i)
                                                 for i, (a, k) in enumerate(batch)])
            assert set(settled) == {"ok"}
        c2, u2 = await evalsha_usec(r)
        n = sum(map(len, batches))
        out[f"admit_usec_{rnd}"] = (u1 - u0) / max(c1 - c0, 1)
        out[f"admit_p50_ms_{rnd}"] = statistics.median(latencies) * 1000
        out[f"settle_usec_per_event_{rnd}"] = (u2 - u1) / n
    reaper = Settler(r, consumer="scale")
    t = time.perf_counter()
    await reaper.reap()  # a pass over every account, none with a hold due
    out["reap_pass_ms"] = (time.perf_counter() - t) * 1000
    one = "a0"
    for j in range(0, 1000, 200):  # one account's day of 1,000 requests: 3 models x 2 keys, 1,000 ledger entries
        await billing.settle_many([event(one, digest_of(0, i % 2)[:16], i) for i in range(j, j + 200)])
    day = next(iter(await r.keys(store.usage_day(one, "*"))))
    return {
        "accounts": accounts, "keys": accounts * keys, "fill_s": fill_s,
        "bytes_per_account": used / accounts, "bytes_per_key": used / (accounts * keys),
        **out,
        "usage_day_bytes": await r.memory_usage(day),
        "ledger_bytes_per_entry": (await r.memory_usage(store.ledger(one)) or 0)
        / max(await r.xlen(store.ledger(one)), 1),
    }


async def run(port: int, sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    r = aioredis.Redis(port=port)
    try:
        return [await measure(r, a, k) for a, k in sizes]
    finally:
        await r.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100x10,100000x10", help="accounts x keys per account, comma-separated")
    args = ap.parse_args()
    sizes = [(int(a), int(k)) for a, k in (s.split("x") for s in args.sizes.split(","))]
    workdir = Path(tempfile.mkdtemp(prefix="tg-scale."))
    sup = Supervisor(workdir / "logs")
    port = free_port()
    try:
        child = sup.start("redis", [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
                                    str(workdir), "--save", "", "--appendonly", "no"])
        sup.wait_until(child, lambda: port_open(port), 10, "accepting connections")
        rows = asyncio.run(run(port, sizes))
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    cols = ("accounts", "keys", "admit_usec_first", "admit_usec_again", "admit_p50_ms_again",
            "settle_usec_per_event_first", "settle_usec_per_event_again", "bytes_per_account", "bytes_per_key",
            "usage_day_bytes", "ledger_bytes_per_entry", "reap_pass_ms", "fill_s")
    print("| " + " | ".join(cols) + " |")
    print("|" + " ---: |" * len(cols))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:,.0f}" if isinstance(row[c], int) or row[c] >= 100 else f"{row[c]:.3f}"
                                for c in cols) + " |")


if __name__ == "__main__":
    main()
