"""The account page: balance, recent ledger entries, top-up, redeem a code, time zone."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from starlette.responses import Response

from core import keys
from core.billing.ops import Billing
from core.money import parse_usd
from portal import formatting
from portal.formatting import NANO_PER_CENT
from portal.payments.provider import Done, Pending, Redirect, Refused, Step, TopUp, UnknownProvider
from portal.web import Ctx, PageError, page

LEDGER_ROWS = 20
KINDS = {"open": "Account opened", "topup": "Top-up", "adjust": "Adjustment", "charge": "Usage",
         "reaped": "Unreported request"}


@dataclass(frozen=True, slots=True)
class LedgerRow:
    ts: float
    kind: str
    amount_nano: int
    balance_nano: int
    detail: str


async def ledger_rows(billing: Billing, account: str, n: int,
                      names: dict[str, str] | None = None) -> list[LedgerRow]:
    """The newest ``n`` entries; charges name their key by ``names`` (id -> name) where known."""
    names = names or {}
    out = []
    for e in await billing.ledger(account, n):
        ts = float(e.get("ts") or int(e["id"].split("-")[0]) / 1000)
        if e.get("type") in ("charge", "reaped") or e.get("model"):
            key = e.get("key", "")
            detail = f"{e.get('model', '')} · key {names.get(key) or key}"
        else:
            detail = e.get("reason", "")
        out.append(LedgerRow(ts, KINDS.get(e.get("type", ""), e.get("type", "")), int(e.get("amount") or 0),
                             int(e.get("balance") or 0), detail))
    return out


async def key_names(ctx: Ctx) -> dict[str, str]:
    return {k["id"]: k.get("name", "") for k in await keys.list_keys(ctx.portal.redis, ctx.account) if k.get("id")}


def order_nonce() -> str:
    """The id the next top-up's order will have (a resubmitted form reuses it)."""
    return secrets.token_hex(12)


async def _page(ctx: Ctx, status: int = 200, error: str = "") -> Response:
    portal = ctx.portal
    balance, held = await portal.billing.balance(ctx.account)
    return await ctx.render(
        "account.html", status=status, error=error, title="Account", nav="account",
        balance=balance, held=held, available=balance - held,
        ledger=await ledger_rows(portal.billing, ctx.account, LEDGER_ROWS, await key_names(ctx)),
        orders=await portal.payments.orders.recent(ctx.account, 5),
        presets=portal.settings.payments.presets_usd, providers=portal.payments.amount_choices(),
        limits=(portal.settings.payments.min_usd, portal.settings.payments.max_usd),
        nonce=order_nonce(), zones=formatting.zone_choices())


@page("user")
async def account(ctx: Ctx) -> Response:
    return await _page(ctx)


def chosen_amount(ctx: Ctx) -> int:
    """The top-up amount in nano-USD: a preset, or a custom amount in whole cents within limits."""
    pay = ctx.portal.settings.payments
    choice = ctx.field("amount")
    if choice != "custom":
        if choice not in {str(p) for p in pay.presets_usd}:
            raise ValueError("Choose an amount.")
        return int(choice) * 1_000_000_000
    try:
        nano = parse_usd(ctx.field("custom_usd"))
    except ValueError:
        raise ValueError("Enter the custom amount in dollars, for example 12.50.") from None
    if nano % NANO_PER_CENT:
        raise ValueError("Enter the custom amount in whole cents.")
    if not pay.min_usd * 1_000_000_000 <= nano <= pay.max_usd * 1_000_000_000:
        raise ValueError(f"Top-ups are between ${pay.min_usd} and ${pay.max_usd:,}.")
    return nano


@page("user")
async def topup(ctx: Ctx) -> Response:
    try:
        amount = chosen_amount(ctx)
        provider = ctx.portal.payments.provider(ctx.field("provider"))
    except ValueError as exc:
        return await _page(ctx, 400, str(exc))
    except UnknownProvider:
        return await _page(ctx, 400, "Choose how to pay.")
    if not provider.chooses_amount:
        return await _page(ctx, 400, "Choose how to pay.")
    return await _after(ctx, await provider.start(_top_up(ctx, amount)))


@page("user")
async def redeem(ctx: Ctx) -> Response:
    return await _after(ctx, await ctx.portal.payments.redeem.start(_top_up(ctx, None)))


def _top_up(ctx: Ctx, amount: int | None) -> TopUp:
    assert ctx.user is not None
    nonce = ctx.field("nonce")
    if not (16 <= len(nonce) <= 40 and nonce.isalnum() and nonce.islower()):
        raise PageError(400, "That form is damaged; reload the page.")
    return TopUp(ctx.account, ctx.user.email, nonce, amount, {k: str(v) for k, v in ctx.form.items()})


async def _after(ctx: Ctx, step: Step) -> Response:
    match step:
        case Done(order, credited_now):
            if credited_now:
                await ctx.flash(f"Added {formatting.usd(order.amount_nano)} to your balance.")
            else:
                await ctx.flash("You had already redeemed that code." if order.provider == "redeem"
                                else "That top-up had already been credited.")
            return ctx.redirect("/account")
        case Pending(order):
            return ctx.redirect(f"/account/orders/{order.id}")
        case Redirect(_, url):
            return ctx.external_redirect(url)
        case Refused(message):
            return await _page(ctx, 400, message)
    raise AssertionError(step)


@page("user")
async def order(ctx: Ctx) -> Response:
    o = await ctx.portal.payments.orders.get(ctx.account, str(ctx.request.path_params["order_id"]))
    if o is None:
        raise PageError(404, "No such order.")
    return await ctx.render("order.html", title="Top-up order", nav="account", order=o)


@page("user")
async def settings(ctx: Ctx) -> Response:
    assert ctx.user is not None
    tz = ctx.field("tz")
    if tz not in formatting.valid_zones():
        return await _page(ctx, 400, "Choose a time zone from the list.")
    await ctx.portal.users.set_zone(ctx.user.email, tz)
    await ctx.flash(f"Times are now shown in {tz}.")
    return ctx.redirect("/account")
