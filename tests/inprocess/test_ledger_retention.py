"""What is kept (docs/billing.md): a settlement trims the account's ledger of entries older than
KEEP_DAYS (approximately: whole stream nodes), and keeps every newer one; the balance is the
account's own field, so trimming never moves it."""

from __future__ import annotations

import time
from typing import Any

from core import store
from core.billing.scripts import KEEP_DAYS
from tests.inprocess.harness import InProcess, run

DAY_MS = 24 * 60 * 60 * 1000


def test_a_settlement_trims_ledger_entries_older_than_the_retention(redis_url: str) -> None:
    async def scenario(tg: InProcess) -> None:
        ledger = store.ledger("acme")
        now_ms = int(time.time() * 1000)
        # 300 entries well past the retention (more than one stream node: XTRIM ~ drops whole ones),
        # then 5 just inside it.
        entry: dict[Any, Any] = {"type": "charge", "amount": "-1"}
        for i in range(300):
            await tg.redis.xadd(ledger, entry, id=f"{now_ms - (KEEP_DAYS + 30) * DAY_MS + i}-0")
        for i in range(5):
            await tg.redis.xadd(ledger, entry, id=f"{now_ms - (KEEP_DAYS - 1) * DAY_MS + i}-0")
        await tg.key("acme", usd=1)  # its top-up: a ledger entry of now
        balance = (await tg.gw.billing.balance("acme"))
        before = await tg.redis.xlen(ledger)

        event = {"event_id": "trim-1", "account": "acme", "model": "gpt-test", "key_id": "k",
                 "usage": {"input": 1}, "cost_nano": 7, "status": 200, "complete": True, "ts": time.time()}
        assert "ok" == await tg.gw.billing.settle(event)

        ids: list[Any] = [r for r, _ in await tg.redis.xrange(ledger) or []]
        ms = [int(i.split(b"-")[0]) for i in ids]
        old = [t for t in ms if t < now_ms - KEEP_DAYS * DAY_MS]
        assert len(old) < 100, f"{len(old)} of 300 expired entries left"  # at most one partial node remains
        kept = [t for t in ms if t >= now_ms - KEEP_DAYS * DAY_MS]
        assert len(kept) == 5 + 2  # the recent ones, the top-up and the new charge
        assert before == 300 + 5 + 1
        after = await tg.gw.billing.balance("acme")
        assert after[0] == balance[0] - 7

    run(redis_url, scenario)
