"""Top-ups against a real Redis: each order, callback and code credits the balance exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from core.billing.ops import Billing
from portal.payments import Payments
from portal.payments.provider import Done, Pending, Redirect, Refused, TopUp
from portal.payments.stripe import sign
from portal.settings import PaymentSettings

T = TypeVar("T")
SECRET = "whsec_unit"
SETTINGS = PaymentSettings(demo=True, stripe_webhook_secret=SECRET)


def run(redis_url: str, scenario: Callable[[Payments, Billing], Awaitable[T]],
        settings: PaymentSettings = SETTINGS) -> T:
    async def main() -> T:
        r = aioredis.Redis.from_url(redis_url)
        try:
            billing = Billing(r)
            return await scenario(Payments(r, billing, settings), billing)
        finally:
            await r.aclose()

    return asyncio.run(main())


def account() -> str:
    return "p" + uuid.uuid4().hex[:12]


def nonce() -> str:
    return uuid.uuid4().hex


def top_up(acct: str, amount: int | None, order_id: str | None = None, **form: str) -> TopUp:
    return TopUp(acct, f"{acct}@example.test", order_id or nonce(), amount, form)


def paid_event(acct: str, order_id: str, cents: int, currency: str = "usd", status: str = "paid",
               kind: str = "checkout.session.completed") -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:8]}", "type": kind, "data": {"object": {
        "id": "cs_test", "client_reference_id": f"{acct}.{order_id}", "payment_status": status,
        "amount_total": cents, "currency": currency}}}).encode()


async def topups(billing: Billing, acct: str) -> list[dict[str, str]]:
    return [e for e in await billing.ledger(acct) if e["type"] == "topup"]


def test_a_callback_delivered_twice_or_concurrently_credits_once(redis_url: str) -> None:
    """The same paid event, sequentially twice and then five at once: one credit, one ledger entry."""
    async def scenario(p: Payments, billing: Billing) -> None:
        assert p.stripe is not None
        acct = account()
        step = await p.provider("stripe").start(top_up(acct, 25_000_000_000))
        assert isinstance(step, Pending)
        body = paid_event(acct, step.order.id, 2500)
        header = sign(body, SECRET)
        first, second = await p.stripe.webhook(body, header), await p.stripe.webhook(body, header)
        again = await asyncio.gather(*(p.stripe.webhook(body, sign(body, SECRET)) for _ in range(5)))
        assert [(200, "credited"), (200, "already credited")] == [(r.status, r.message) for r in (first, second)]
        assert {(200, "already credited")} == {(r.status, r.message) for r in again}
        assert (25_000_000_000, 0) == await billing.balance(acct)
        [entry] = await topups(billing, acct)
        assert f"order:{step.order.id}" == entry["ref"]
        order = await p.orders.get(acct, step.order.id)
        assert order is not None and "paid" == order.status and order.paid_at > 0

    run(redis_url, scenario)


def test_concurrent_first_deliveries_still_credit_once(redis_url: str) -> None:
    """Ten replicas receiving the first delivery at the same moment: one credit."""
    async def scenario(p: Payments, billing: Billing) -> None:
        assert p.stripe is not None
        acct = account()
        step = await p.provider("stripe").start(top_up(acct, 5_000_000_000))
        assert isinstance(step, Pending)
        body = paid_event(acct, step.order.id, 500)
        results = await asyncio.gather(*(p.stripe.webhook(body, sign(body, SECRET)) for _ in range(10)))
        assert 1 == sum(r.message == "credited" for r in results)
        assert (5_000_000_000, 0) == await billing.balance(acct)

    run(redis_url, scenario)


def test_callbacks_that_do_not_match_the_order_credit_nothing(redis_url: str) -> None:
    """Wrong amount or currency, unknown order, unpaid or other events, bad or stale signatures."""
    async def scenario(p: Payments, billing: Billing) -> None:
        assert p.stripe is not None
        acct = account()
        step = await p.provider("stripe").start(top_up(acct, 10_000_000_000))
        assert isinstance(step, Pending)
        oid = step.order.id
        cases = [
            (paid_event(acct, oid, 999), None, 409),
            (paid_event(acct, oid, 1000, currency="eur"), None, 409),
            (paid_event(acct, "f" * 24, 1000), None, 404),
            (paid_event("nosuchacct", oid, 1000), None, 404),
            (json.dumps({"type": "checkout.session.completed", "data": {"object": {
                "client_reference_id": "garbage", "payment_status": "paid"}}}).encode(), None, 400),
            (paid_event(acct, oid, 1000, status="unpaid"), None, 200),
            (paid_event(acct, oid, 1000, kind="payment_intent.created"), None, 200),
            (paid_event(acct, oid, 1000), sign(paid_event(acct, oid, 1000), "whsec_wrong"), 400),
            (b"not json", None, 400),
        ]
        for body, header, status in cases:
            assert status == (await p.stripe.webhook(body, header or sign(body, SECRET))).status, body
        stale = paid_event(acct, oid, 1000)
        assert 400 == (await p.stripe.webhook(stale, sign(stale, SECRET, int(time.time()) - 3600))).status
        assert (0, 0) == await billing.balance(acct)
        order = await p.orders.get(acct, oid)
        assert order is not None and "pending" == order.status

    run(redis_url, scenario)


def test_the_checkout_url_names_the_order_and_amount(redis_url: str) -> None:
    """With a checkout URL configured the payer is redirected there, the placeholders URL-encoded."""
    settings = PaymentSettings(stripe_webhook_secret=SECRET,
                               stripe_checkout_url="https://pay.example/l?ref={order}&cents={amount_cents}&e={email}")

    async def scenario(p: Payments, billing: Billing) -> None:
        acct = account()
        step = await p.provider("stripe").start(top_up(acct, 12_340_000_000, order_id="a" * 24))
        assert isinstance(step, Redirect)
        assert f"https://pay.example/l?ref={acct}.{'a' * 24}&cents=1234&e={acct}%40example.test" == step.url

    run(redis_url, scenario, settings)


def test_a_resubmitted_top_up_form_opens_one_order(redis_url: str) -> None:
    """The demo provider with the same order id twice: credited once; the first amount stands."""
    async def scenario(p: Payments, billing: Billing) -> None:
        acct, oid = account(), nonce()
        first = await p.provider("demo").start(top_up(acct, 10_000_000_000, oid))
        second = await p.provider("demo").start(top_up(acct, 50_000_000_000, oid))
        assert isinstance(first, Done) and isinstance(second, Done)
        assert (True, False) == (first.credited_now, second.credited_now)
        assert (10_000_000_000, 0) == await billing.balance(acct)
        assert 1 == len(await topups(billing, acct))

    run(redis_url, scenario)


def test_a_redeem_code_is_worth_its_value_once(redis_url: str) -> None:
    """Redeemed into one account once; a retry there is a no-op; another account is refused."""
    async def scenario(p: Payments, billing: Billing) -> None:
        [code] = await p.codes.issue(20_000_000_000, count=1, by="admin@example.test", note="welcome")
        a, b = account(), account()
        first = await p.redeem.start(top_up(a, None, code=code.lower()))
        retry = await p.redeem.start(top_up(a, None, code=code))
        other = await p.redeem.start(top_up(b, None, code=code))
        assert isinstance(first, Done) and first.credited_now
        assert isinstance(retry, Done) and not retry.credited_now
        assert isinstance(other, Refused) and "already been redeemed" in other.message
        assert ((20_000_000_000, 0), (0, 0)) == (await billing.balance(a), await billing.balance(b))
        [info] = [c for c in await p.codes.recent() if c.hint == code[-4:]]
        assert (a, "welcome", 20_000_000_000) == (info.redeemed_by, info.note, info.amount_nano)

    run(redis_url, scenario)


def test_a_crash_between_claiming_and_crediting_is_finished_by_a_retry(redis_url: str) -> None:
    """A code claimed but never credited (the process died) is credited when the same account retries."""
    async def scenario(p: Payments, billing: Billing) -> None:
        [code] = await p.codes.issue(3_000_000_000, count=1, by="admin@example.test")
        acct = account()
        assert ("ok", 3_000_000_000) == await p.codes.claim(code, acct)  # ... and then nothing
        step = await p.redeem.start(top_up(acct, None, code=code))
        assert isinstance(step, Done) and step.credited_now
        assert (3_000_000_000, 0) == await billing.balance(acct)

    run(redis_url, scenario)


def test_unknown_and_expired_codes_are_refused_and_guessing_is_limited(redis_url: str) -> None:
    """Invalid codes are refused; after ten failures in an hour even a valid code waits."""
    async def scenario(p: Payments, billing: Billing) -> None:
        [expired] = await p.codes.issue(1_000_000_000, count=1, by="a", expires_at=int(time.time()) - 1)
        [valid] = await p.codes.issue(1_000_000_000, count=1, by="a")
        acct = account()
        refusals = [await p.redeem.start(top_up(acct, None, code=c)) for c in [expired, "TG-0000-0000-0000-0000", ""]]
        assert ["That code has expired.", "That code is not valid.", "That code is not valid."] == \
            [s.message for s in refusals if isinstance(s, Refused)]
        for _ in range(7):
            await p.redeem.start(top_up(acct, None, code="TG-GUESS"))
        limited = await p.redeem.start(top_up(acct, None, code=valid))
        assert isinstance(limited, Refused) and "Too many invalid codes" in limited.message
        assert (0, 0) == await billing.balance(acct)

    run(redis_url, scenario)


def test_only_configured_providers_are_offered(redis_url: str) -> None:
    """Redeem codes always; card payments with a secret; demo only in demo mode."""
    def names(settings: PaymentSettings) -> tuple[list[str], list[str]]:
        async def scenario(p: Payments, billing: Billing) -> tuple[list[str], list[str]]:
            return sorted(p.providers), [x.name for x in p.amount_choices()]
        return run(redis_url, scenario, settings)

    assert (["redeem"], []) == names(PaymentSettings())
    assert (["demo", "redeem", "stripe"], ["stripe", "demo"]) == names(SETTINGS)


