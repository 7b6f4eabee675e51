"""Admin pages: accounts with balances, manual credit/debit, redeem codes, deployment health."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from starlette.responses import Response

from core import keys, store
from core.money import parse_usd
from core.store import text
from portal import envoy_health, formatting
from portal.views.account import ledger_rows, order_nonce
from portal.web import Ctx, PageError, page

MAX_ADJUST_USD = 1_000_000


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: str
    owner: str
    balance: int
    held: int
    created: float


def _account(ctx: Ctx) -> str:
    a = str(ctx.request.path_params["account"])
    if not store.ACCOUNT_RE.match(a):
        raise PageError(404, "No such account.")
    return a


@page("admin")
async def accounts(ctx: Ctx) -> Response:
    portal, rows = ctx.portal, []
    for a in sorted(text(x) for x in await portal.redis.smembers(store.ACCOUNTS)):
        bal, held = await portal.billing.balance(a)
        created = await portal.redis.hget(store.account_key(a), "created")
        rows.append(AccountRow(a, await portal.users.owner(a), bal, held, float(text(created or b"0"))))
    return await ctx.render("admin/accounts.html", title="Accounts", nav="admin", rows=rows,
                            total=sum(r.balance for r in rows))


async def _detail(ctx: Ctx, account: str, status: int = 200, error: str = "") -> Response:
    portal = ctx.portal
    if not await portal.redis.sismember(store.ACCOUNTS, account):
        raise PageError(404, "No such account.")
    bal, held = await portal.billing.balance(account)
    key_list = await keys.list_keys(portal.redis, account)
    names = {k["id"]: k.get("name", "") for k in key_list if k.get("id")}
    return await ctx.render("admin/account.html", status=status, error=error, title=f"Account {account}",
                            nav="admin", account=account, owner=await portal.users.owner(account), balance=bal,
                            held=held, ledger=await ledger_rows(portal.billing, account, 50, names),
                            keys=key_list, nonce=order_nonce())


@page("admin")
async def account_detail(ctx: Ctx) -> Response:
    return await _detail(ctx, _account(ctx))


@page("admin")
async def adjust(ctx: Ctx) -> Response:
    """A manual credit (positive) or debit (negative) with a reason: an ``adjust`` ledger entry."""
    assert ctx.user is not None
    account, reason, nonce = _account(ctx), ctx.field("reason"), ctx.field("nonce")
    try:
        nano = parse_usd(ctx.field("usd"))
    except ValueError:
        return await _detail(ctx, account, 400, "Enter an amount in dollars, negative for a debit.")
    if nano == 0 or abs(nano) > MAX_ADJUST_USD * 1_000_000_000:
        return await _detail(ctx, account, 400, f"The amount is non-zero and at most ${MAX_ADJUST_USD:,}.")
    if not reason or len(reason) > 200:
        return await _detail(ctx, account, 400, "Give a reason (up to 200 characters); it goes in the ledger.")
    if not (16 <= len(nonce) <= 40 and nonce.isalnum()):
        raise PageError(400, "That form is damaged; reload the page.")
    new = await ctx.portal.billing.credit(account, nano, kind="adjust", ref=f"admin:{nonce}",
                                         reason=f"{reason} (by {ctx.user.email})")
    await ctx.flash(f"{'Credited' if nano > 0 else 'Debited'} {formatting.usd(abs(nano))}; "
                    f"balance {formatting.usd(new)}." if new is not None else "That adjustment was already applied.")
    return ctx.redirect(f"/admin/accounts/{account}")


def _code_request(ctx: Ctx) -> tuple[int, int, int]:
    """(amount nano-USD, count, expires_at) from the issuance form, or ValueError with a message."""
    try:
        amount = parse_usd(ctx.field("usd"))
    except ValueError:
        raise ValueError("Enter the amount in dollars, for example 20.") from None
    count, days = ctx.field("count") or "1", ctx.field("expires_days") or "0"
    if amount <= 0:
        raise ValueError("The amount must be positive.")
    if not count.isdigit() or not 1 <= int(count) <= 100:
        raise ValueError("Issue 1 to 100 codes at a time.")
    if not days.isdigit() or int(days) > 3650:
        raise ValueError("Expiry is 0 (never) to 3650 days.")
    expires_at = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=int(days))).timestamp()) if int(days) else 0
    return amount, int(count), expires_at


@page("admin")
async def codes(ctx: Ctx) -> Response:
    """Issue codes (each shown once) and list the latest ones."""
    assert ctx.user is not None
    issued: list[str] = []
    error, status, amount = "", 200, 0
    if ctx.request.method == "POST":
        try:
            amount, count, expires_at = _code_request(ctx)
        except ValueError as exc:
            error, status = str(exc), 400
        else:
            issued = await ctx.portal.payments.codes.issue(amount, count=count, by=ctx.user.email,
                                                           note=ctx.field("note"), expires_at=expires_at)
            status = 201
    return await ctx.render("admin/codes.html", status=status, error=error, title="Redeem codes", nav="admin",
                            issued=issued, amount=amount, recent=await ctx.portal.payments.codes.recent(50),
                            now_ts=time.time())


@page("admin")
async def health(ctx: Ctx) -> Response:
    try:
        hosts, error = await envoy_health.fetch(ctx.portal.settings.envoy_admin_url), ""
    except envoy_health.HealthUnavailable as exc:
        hosts, error = [], str(exc)
    return await ctx.render("admin/health.html", title="Deployment health", nav="admin", hosts=hosts,
                            unavailable=error, admin_url=ctx.portal.settings.envoy_admin_url)
