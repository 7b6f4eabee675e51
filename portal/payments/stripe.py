"""The webhook provider: a card payment confirmed by a callback signed the way Stripe signs.

The payer is sent to ``checkout_url`` (for example a Stripe Payment Link; the
placeholders ``{order}``, ``{amount_cents}`` and ``{email}`` are filled in and
URL-encoded) or, with no URL configured, shown the pending order until the
callback arrives. The callback is ``POST /portal/webhooks/stripe``:

    Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=…]

Several ``v1`` values are accepted (secret rotation); the timestamp must be
within ``tolerance_s`` of now either way (a replayed old callback is refused).
The event ``checkout.session.completed`` (or ``…async_payment_succeeded``) with
``payment_status: paid`` names the order in ``client_reference_id``
(``<account>.<order id>``) and pays ``amount_total`` cents in ``usd``; the amount
must equal the order's. Crediting goes through ``Orders.complete``, so a
callback delivered twice credits once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog

from core import store
from portal.formatting import NANO_PER_CENT
from portal.payments.orders import ORDER_ID_RE, Orders
from portal.payments.provider import Pending, Redirect, Refused, Step, TopUp

log = structlog.get_logger("portal.stripe")
HEADER = "stripe-signature"
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class SignatureError(ValueError):
    """The callback's signature did not check out; the message says why."""


def signature(payload: bytes, secret: str, ts: int) -> str:
    return hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, ts: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (tests and the offline demo)."""
    ts = int(time.time()) if ts is None else ts
    return f"t={ts},v1={signature(payload, secret, ts)}"


def verify(payload: bytes, header: str, secret: str, *, tolerance_s: int = 300, now: float | None = None) -> int:
    """The signed timestamp, or ``SignatureError``."""
    ts: int | None = None
    given: list[str] = []
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            continue
        if k == "t" and ts is None:
            try:
                ts = int(v)
            except ValueError:
                raise SignatureError("malformed timestamp") from None
        elif k == "v1":
            given.append(v)
    if ts is None:
        raise SignatureError("no timestamp in the signature header")
    if not given:
        raise SignatureError("no v1 signature in the signature header")
    expected = signature(payload, secret, ts)
    if not any(hmac.compare_digest(expected.encode(), g.encode()) for g in given):
        raise SignatureError("signature mismatch")
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance window")
    return ts


@dataclass(frozen=True, slots=True)
class WebhookResult:
    status: int
    message: str


class StripeProvider:
    name = "stripe"
    label = "Card (Stripe)"
    chooses_amount = True

    def __init__(self, orders: Orders, *, secret: str, checkout_url: str = "", tolerance_s: int = 300) -> None:
        if not secret:
            raise ValueError("the webhook provider needs its signing secret")
        self.orders, self.secret, self.checkout_url, self.tolerance_s = orders, secret, checkout_url, tolerance_s

    async def start(self, top_up: TopUp) -> Step:
        if top_up.amount_nano is None:
            return Refused("Choose an amount.")
        order = await self.orders.open(top_up.account, top_up.order_id, top_up.amount_nano, self.name)
        if not self.checkout_url:
            return Pending(order)
        url = self.checkout_url.format(order=quote(f"{order.account}.{order.id}", safe=""),
                                       amount_cents=order.amount_nano // NANO_PER_CENT,
                                       email=quote(top_up.email, safe=""))
        return Redirect(order, url)

    async def webhook(self, payload: bytes, header: str) -> WebhookResult:
        try:
            verify(payload, header, self.secret, tolerance_s=self.tolerance_s)
        except SignatureError as exc:
            log.warning("webhook_refused", reason=str(exc))
            return WebhookResult(400, f"signature refused: {exc}")
        try:
            event: Any = json.loads(payload)
            kind, obj = event["type"], event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            return WebhookResult(400, "not a Stripe event")
        if kind not in PAID_EVENTS or not isinstance(obj, dict):
            return WebhookResult(200, f"ignored {kind}")
        if obj.get("payment_status") != "paid":
            return WebhookResult(200, "not paid yet")
        ref = str(obj.get("client_reference_id") or (obj.get("metadata") or {}).get("tokengate_order") or "")
        account, _, order_id = ref.partition(".")
        if not store.ACCOUNT_RE.match(account) or not ORDER_ID_RE.match(order_id):
            return WebhookResult(400, "no tokengate order in client_reference_id")
        order = await self.orders.get(account, order_id)
        if order is None or order.provider != self.name:
            return WebhookResult(404, "unknown order")
        cents = obj.get("amount_total")
        if str(obj.get("currency", "")).lower() != "usd" or not isinstance(cents, int) \
                or cents * NANO_PER_CENT != order.amount_nano:
            log.error("webhook_amount_mismatch", order=ref, amount_total=cents, currency=obj.get("currency"))
            return WebhookResult(409, "amount or currency differs from the order")
        credited = await self.orders.complete(order, reason=f"card top-up (Stripe {obj.get('id', '')})"[:200])
        return WebhookResult(200, "credited" if credited else "already credited")
