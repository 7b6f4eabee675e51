"""What the usage and keys pages read: daily usage rows, recent requests, keys' last use.

Daily rows come from ``Billing.usage`` (the settler's per-UTC-day aggregates).
Three token columns are shown, each a sum of the disjoint billing buckets:
*input* = uncached input + cache writes, *cached* = cache reads, *output* =
output + reasoning; the CSV also carries the buckets on their own.

Recent requests are read from the metering stream ``tg:metering`` (one event per
request), newest first, scanning at most ``scan`` events gateway-wide: a bounded
read, so on a busy gateway an account's older requests drop out of the list.
``tg:{<account>}:requests`` — a per-account capped stream the settler could
write (see docs/portal.md) — is read first when it exists.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core import event, store
from core.billing.ops import Billing
from core.store import text
from portal.formatting import usd_plain


def account_requests(account: str) -> str:
    return f"tg:{{{account}}}:requests"


def key_last_used(account: str) -> str:
    return f"tg:{{{account}}}:key_last_used"


@dataclass(frozen=True, slots=True)
class UsageRow:
    date: str  # UTC day, or "" for a total
    model: str
    requests: int
    input: int
    cached: int
    output: int
    cost_nano: int
    cache_write: int = 0
    reasoning: int = 0
    failed: int = 0


def _row(r: dict[str, Any]) -> UsageRow:
    return UsageRow(r["date"], r["model"], r["requests"], r["input"] + r["cache_write"], r["cache_read"],
                    r["output"] + r["reasoning"], r["cost"], r["cache_write"], r["reasoning"], r["failed"])


async def usage_rows(billing: Billing, account: str, start: dt.date, end: dt.date,
                     model: str = "") -> list[UsageRow]:
    rows = [_row(r) for r in await billing.usage(account, start, end)]
    return [r for r in rows if not model or r.model == model]


def total(rows: list[UsageRow]) -> UsageRow:
    return UsageRow("", "", *(sum(getattr(r, f) for r in rows) for f in (
        "requests", "input", "cached", "output", "cost_nano", "cache_write", "reasoning", "failed")))


CSV_HEADER = ["date_utc", "model", "requests", "input_tokens", "cached_tokens", "output_tokens", "cost_usd",
              "cache_write_tokens", "reasoning_tokens", "failed_requests", "cost_nano_usd"]


def usage_csv(rows: list[UsageRow]) -> str:
    """The table's rows and columns, in the table's order; ``cost_nano_usd`` is exact."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for r in rows:
        w.writerow([r.date, r.model, r.requests, r.input, r.cached, r.output, usd_plain(r.cost_nano),
                    r.cache_write, r.reasoning, r.failed, r.cost_nano])
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class RecentRequest:
    ts: float
    model: str
    deployment: str
    key_id: str
    input: int
    cached: int
    output: int
    cost_nano: int
    status: int  # 0: no response (client or upstream went away)
    duration_ms: float
    complete: bool

    @classmethod
    def from_event(cls, ev: dict[str, Any]) -> RecentRequest:
        u = ev.get("usage") or {}

        def n(b: str) -> int:
            return int(u.get(b) or 0)

        return cls(float(ev.get("ts") or 0), str(ev.get("model") or ""), str(ev.get("deployment") or ""),
                   str(ev.get("key_id") or ""), n("input") + n("cache_write"), n("cache_read"),
                   n("output") + n("reasoning"), int(ev.get("cost_nano") or 0), int(ev.get("status") or 0),
                   float(ev.get("duration_ms") or 0), bool(ev.get("complete")))


def _event(fields: Any) -> dict[str, Any] | None:
    """The event of a stream entry (tg:metering's, of any version, or the settler's JSON copy), as a dict."""
    if not isinstance(fields, dict):
        return None
    try:
        return event.as_json(event.from_entry(fields))
    except event.BadEvent:
        return None


async def recent_requests(redis: aioredis.Redis, account: str, *, limit: int = 50, scan: int = 5000,
                          model: str = "") -> list[RecentRequest]:
    """The account's newest requests, newest first."""
    out: list[RecentRequest] = []
    own = await redis.xrevrange(account_requests(account), count=limit * 4 if model else limit)
    if own:
        for _, fields in own:
            if (ev := _event(fields)) and (not model or ev.get("model") == model):
                out.append(RecentRequest.from_event(ev))
        return out[:limit]
    upper, seen = "+", 0
    while seen < scan and len(out) < limit:
        page = await redis.xrevrange(store.METERING_STREAM, max=upper, count=min(500, scan - seen))
        if not page:
            break
        seen += len(page)
        for _, fields in page:
            ev = _event(fields)
            if ev and ev.get("account") == account and (not model or ev.get("model") == model):
                out.append(RecentRequest.from_event(ev))
        upper = f"({text(page[-1][0])}"
    return out[:limit]


async def last_used(redis: aioredis.Redis, account: str, recent: list[RecentRequest]) -> dict[str, float]:
    """Key id -> unix time of its latest request known: the settler's record if it keeps one,
    else what the recent requests show."""
    seen = {text(k): float(text(v)) for k, v in (await redis.hgetall(key_last_used(account))).items()}
    for r in recent:
        if r.key_id and r.ts > seen.get(r.key_id, 0):
            seen[r.key_id] = r.ts
    return seen
