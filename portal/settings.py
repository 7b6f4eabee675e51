"""What the operator configures: payments, admins, cookies, where things are."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    demo: bool = False  # the demo provider (make run's demo mode): a top-up completes at once
    stripe_webhook_secret: str = ""  # "whsec_…"; empty: no card payments
    stripe_checkout_url: str = ""  # where to send the payer; {order} {amount_cents} {email}
    webhook_tolerance_s: int = 300  # Stripe's default
    presets_usd: tuple[int, ...] = (5, 10, 25, 50, 100)
    min_usd: int = 1
    max_usd: int = 10_000


@dataclass(frozen=True, slots=True)
class PortalSettings:
    base_url: str = "http://localhost:8080"  # the gateway as SDKs reach it (for snippets)
    envoy_admin_url: str = "http://127.0.0.1:9901"  # deployment health
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    admins: frozenset[str] = frozenset()  # e-mails (lower case) with the admin pages
    secure_cookies: bool = True  # False only for plain HTTP on a non-localhost host
    secret: str = ""  # CSRF HMAC key; empty: made once and shared through Redis
    prefix: str = "/portal"
    login_failures_per_email: int = 5  # within login_window_s
    login_failures_per_ip: int = 30
    login_window_s: int = 900
