"""The demo provider: completes at once. Only enabled in ``make run``'s demo mode."""

from __future__ import annotations

from portal.payments.orders import Orders
from portal.payments.provider import Done, Refused, Step, TopUp


class DemoProvider:
    name = "demo"
    label = "Demo payment (completes at once; make run demo mode only)"
    chooses_amount = True

    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def start(self, top_up: TopUp) -> Step:
        if top_up.amount_nano is None:
            return Refused("Choose an amount.")
        order = await self.orders.open(top_up.account, top_up.order_id, top_up.amount_nano, self.name)
        credited = await self.orders.complete(order, reason=f"demo top-up (order {order.id})")
        return Done(order, credited)
