"""``tokengate keys …`` and ``tokengate accounts …``: the admin commands on Redis."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
import uuid

import redis.asyncio as aioredis

from core import keys, redisconn, store
from core.billing.ops import METRICS, Billing
from core.money import format_usd, parse_usd

DEFAULT_REDIS = "redis://127.0.0.1:6390/0"  # make run's local Redis


def redis_client(url: str | None) -> aioredis.Redis:
    return redisconn.connect(url or os.environ.get("REDIS_URL") or DEFAULT_REDIS)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("keys", help="API keys")
    k.add_argument("--redis-url", help="default: $REDIS_URL or make run's local Redis")
    ks = k.add_subparsers(dest="sub", required=True)
    c = ks.add_parser("create")
    c.add_argument("--account", required=True)
    c.add_argument("--name", default="default")
    c.add_argument("--expires-in-days", type=float, default=0)
    c.add_argument("--models", help="comma-separated allow-list (default: every model)")
    c.add_argument("--rpm", type=int, default=0, help="requests per minute (0: no limit)")
    c.add_argument("--tpm", type=int, default=0, help="tokens per minute (0: no limit)")
    ks.add_parser("list").add_argument("--account", required=True)
    rv = ks.add_parser("revoke")
    rv.add_argument("--account", required=True)
    rv.add_argument("--id", required=True)

    a = sub.add_parser("accounts", help="accounts, balances, ledgers, usage")
    a.add_argument("--redis-url", help="default: $REDIS_URL or make run's local Redis")
    acs = a.add_subparsers(dest="sub", required=True)
    acs.add_parser("list")
    acs.add_parser("create").add_argument("--account", required=True)
    for name, helptext in (("topup", "add prepaid credit"), ("adjust", "credit (+) or debit (-) with a reason")):
        t = acs.add_parser(name, help=helptext)
        t.add_argument("--account", required=True)
        t.add_argument("--usd", required=True, help="amount in dollars, e.g. 10 or -2.50")
        t.add_argument("--ref", help="idempotency reference (default: a new one)")
        t.add_argument("--reason", default="", required=name == "adjust")
    acs.add_parser("show").add_argument("--account", required=True)
    u = acs.add_parser("usage", help="usage by UTC date and model")
    u.add_argument("--account", required=True)
    u.add_argument("--from", dest="start", help="YYYY-MM-DD (default: 30 days ago)")
    u.add_argument("--to", dest="end", help="YYYY-MM-DD (default: today)")
    u.add_argument("--key-id", help="only this key")
    u.add_argument("--csv", action="store_true")


async def run(args: argparse.Namespace) -> int:
    r = redis_client(args.redis_url)
    try:
        if args.cmd == "keys":
            return await _keys(r, args)
        return await _accounts(r, args)
    finally:
        await r.aclose()


async def _keys(r: aioredis.Redis, args: argparse.Namespace) -> int:
    if args.sub == "create":
        expires = int(time.time() + args.expires_in_days * 86400) if args.expires_in_days else 0
        models = [m for m in (args.models or "").split(",") if m]
        key = await keys.create_key(r, args.account, name=args.name, expires_at=expires, models=models,
                                    rpm=args.rpm, tpm=args.tpm)
        print(key)
        print("(shown once: store it now; tokengate keeps only its SHA-256)", file=sys.stderr)
    elif args.sub == "list":
        for k in await keys.list_keys(r, args.account):
            exp = int(k.get("expires_at") or 0)
            when = dt.datetime.fromtimestamp(exp, dt.UTC).isoformat() if exp else "never"
            status = "revoked" if k.get("revoked") == "1" else "active"
            print(f"{k['id']}  {k['prefix']}…  {k['name']:<16} expires {when}  {status}")
    elif not await keys.revoke_key(r, args.account, args.id):
        print(f"no key {args.id} in account {args.account}", file=sys.stderr)
        return 1
    else:
        print(f"revoked {args.id}")
    return 0


async def _accounts(r: aioredis.Redis, args: argparse.Namespace) -> int:
    b = Billing(r)
    if args.sub == "list":
        for acct in sorted(store.text(a) for a in await r.smembers(store.ACCOUNTS)):
            bal, held = await b.balance(acct)
            print(f"{acct:<32} balance {format_usd(bal):>16}  held {format_usd(held):>14}")
    elif args.sub == "create":
        await b.credit(args.account, 0, kind="open", ref="open", reason="account created")
        print(f"account {args.account} ready")
    elif args.sub in ("topup", "adjust"):
        amount = parse_usd(args.usd)
        if args.sub == "topup" and amount <= 0:
            raise ValueError("a top-up must be positive; use 'accounts adjust' to debit")
        ref = args.ref or uuid.uuid4().hex
        try:
            new = await b.credit(args.account, amount, kind=args.sub, ref=ref, reason=args.reason)
        except redisconn.NotReplicated as exc:
            raise redisconn.NotReplicated(f"{exc}; its ref: {ref}") from exc
        print(f"already applied: {args.ref}" if new is None else f"balance {format_usd(new)}")
    elif args.sub == "show":
        bal, held = await b.balance(args.account)
        print(f"account {args.account}: balance {format_usd(bal)}, held {format_usd(held)}, "
              f"available {format_usd(bal - held)}")
        for e in await b.ledger(args.account, 20):
            when = dt.datetime.fromtimestamp(float(e["ts"]), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"  {when}  {e['type']:<7} {format_usd(int(e['amount'])):>14}  → {format_usd(int(e['balance'])):>14}"
                  f"  {e.get('model') or e.get('reason', '')}")
    else:
        today = dt.datetime.now(dt.UTC).date()
        end = dt.date.fromisoformat(args.end) if args.end else today
        start = dt.date.fromisoformat(args.start) if args.start else end - dt.timedelta(days=30)
        rows = await b.usage(args.account, start, end, key_id=args.key_id)
        if args.csv:
            w = csv.writer(sys.stdout)
            counts = [m for m in METRICS if m != "cost"]
            w.writerow(["date", "model", *counts, "cost_usd"])
            for row in rows:
                w.writerow([row["date"], row["model"], *(row[m] for m in counts),
                            format_usd(row["cost"], 9).lstrip("$")])
        else:
            print(f"{'date':<10}  {'model':<24} {'requests':>8} {'input':>10} {'cached':>10} "
                  f"{'output':>10} {'cost':>14}")
            for row in rows:
                print(f"{row['date']:<10}  {row['model']:<24} {row['requests']:>8} {row['input']:>10} "
                      f"{row['cache_read']:>10} {row['output'] + row['reasoning']:>10} {format_usd(row['cost']):>14}")
    return 0
