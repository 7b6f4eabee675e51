"""Dollars <-> integer nano-USD, exactly (Decimal, never float)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NANO = Decimal(1_000_000_000)


def parse_usd(text: str) -> int:
    """'12.50' -> 12_500_000_000 nano-USD; more than 9 decimals is refused, not rounded."""
    try:
        d = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount of dollars") from None
    nano = d * NANO
    if nano != nano.to_integral_value():
        raise ValueError(f"{text!r} has more than 9 decimals")
    return int(nano)


def format_usd(nano: int, places: int = 6) -> str:
    """Nano-USD as dollars, rounded half-up to ``places`` decimals: -1500 -> '-$0.000002'."""
    d = (Decimal(nano) / NANO).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"-${-d}" if d < 0 else f"${d}"
