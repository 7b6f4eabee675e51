"""Top-up orders and the payment providers, chosen from an explicit table."""

from __future__ import annotations

import redis.asyncio as aioredis

from core.billing.ops import Billing
from portal.payments.demo import DemoProvider
from portal.payments.orders import Orders
from portal.payments.provider import PaymentProvider, UnknownProvider
from portal.payments.redeem import MAX_FAILURES_PER_HOUR, RedeemCodes, RedeemProvider
from portal.payments.stripe import StripeProvider
from portal.security.ratelimit import FailureLimit
from portal.settings import PaymentSettings


class Payments:
    """The configured providers by name; redeem codes are always on."""

    def __init__(self, redis: aioredis.Redis, billing: Billing, settings: PaymentSettings) -> None:
        self.settings = settings
        self.orders = Orders(redis, billing)
        self.codes = RedeemCodes(redis)
        self.redeem = RedeemProvider(self.orders, self.codes,
                                     FailureLimit(redis, limit=MAX_FAILURES_PER_HOUR, window_s=3600))
        self.stripe = StripeProvider(self.orders, secret=settings.stripe_webhook_secret,
                                     checkout_url=settings.stripe_checkout_url,
                                     tolerance_s=settings.webhook_tolerance_s) \
            if settings.stripe_webhook_secret else None
        table: dict[str, PaymentProvider] = {self.redeem.name: self.redeem}
        if self.stripe is not None:
            table[self.stripe.name] = self.stripe
        if settings.demo:
            demo = DemoProvider(self.orders)
            table[demo.name] = demo
        self.providers = table

    def provider(self, name: str) -> PaymentProvider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownProvider(name) from None

    def amount_choices(self) -> list[PaymentProvider]:
        """Providers that take the amount the user picks (the top-up form's choices)."""
        return [p for p in self.providers.values() if p.chooses_amount]
