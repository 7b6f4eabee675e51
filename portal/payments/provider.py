"""The interface every payment provider implements, and what it answers.

A top-up is: the user picks an amount (or brings a code) and a provider; the
provider opens an ``Order`` (``Orders.open``) and either completes it at once
(``Done``), sends the payer elsewhere (``Redirect``), or waits for a callback
(``Pending``). However it ends, money moves only in ``Orders.complete``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from portal.payments.orders import Order


@dataclass(frozen=True, slots=True)
class TopUp:
    account: str
    email: str
    order_id: str  # from the form's nonce: a resubmitted form opens the same order
    amount_nano: int | None  # None for providers that decide the amount (a code's value)
    form: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Done:
    order: Order
    credited_now: bool  # False: this order had been credited before


@dataclass(frozen=True, slots=True)
class Redirect:
    order: Order
    url: str


@dataclass(frozen=True, slots=True)
class Pending:
    order: Order


@dataclass(frozen=True, slots=True)
class Refused:
    message: str


Step = Done | Redirect | Pending | Refused


class PaymentProvider(Protocol):
    name: str  # in forms and orders
    label: str  # for people
    chooses_amount: bool  # True: the user's amount is charged; False: the provider sets it

    async def start(self, top_up: TopUp) -> Step: ...


class UnknownProvider(LookupError):
    """A form named a provider that is not configured."""
