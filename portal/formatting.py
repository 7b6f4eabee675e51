"""What people read: dollars from integer nano-USD, token counts, times in their zone.

Amounts are stored as integer nano-USD (1e-9 USD). They are shown rounded
half-up to the micro-dollar (six decimals), then trailing zeros are trimmed down
to cents: ``$5.00``, ``$0.0125``, ``$0.000002``. Times are stored as UTC unix
seconds and shown in the user's chosen IANA time zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

NANO = Decimal(1_000_000_000)
MICRO = Decimal("0.000001")
NANO_PER_CENT = 10_000_000


def usd(nano: int, *, exact: bool = False) -> str:
    """``12_500_000`` -> ``'$0.0125'``; ``-1500`` -> ``'-$0.000002'``; ``exact`` keeps all nine decimals."""
    d = Decimal(nano) / NANO
    if not exact:
        d = d.quantize(MICRO, rounding=ROUND_HALF_UP)
    sign = "-" if d < 0 else ""
    whole, _, frac = f"{abs(d):f}".partition(".")
    frac = frac.rstrip("0")
    frac = frac + "0" * (2 - len(frac)) if len(frac) < 2 else frac
    return f"{sign}${int(whole):,}.{frac}"


def usd_plain(nano: int) -> str:
    """For CSV: rounded like ``usd`` to six decimals, no sign symbol or grouping: ``'0.012500'``."""
    return f"{(Decimal(nano) / NANO).quantize(MICRO, rounding=ROUND_HALF_UP):f}"


def per_mtok(pico_per_token: int) -> str:
    """A price in pico-USD per token as USD per million tokens: ``2_500_000`` -> ``'$2.50'``."""
    return usd(pico_per_token * 1000)  # pico/token x 1e6 tokens = micro-USD = 1000 nano-USD


def tokens(n: int) -> str:
    return f"{n:,}"


@cache
def zone(name: str) -> dt.tzinfo:
    """An IANA zone by name; anything unknown is UTC (never an error on a page)."""
    if name and name in valid_zones():
        return zoneinfo.ZoneInfo(name)
    return dt.UTC


@cache
def valid_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def zone_choices() -> list[str]:
    return ["UTC", *sorted(z for z in valid_zones() if z != "UTC" and "/" in z and not z.startswith("Etc/"))]


def local_time(ts: float, tz: dt.tzinfo) -> str:
    """UTC unix seconds as ``'2026-03-01 15:05:09 CET'`` in ``tz``."""
    t = dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(tz)
    return t.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def iso_utc(ts: float) -> str:
    """For ``<time datetime=…>``: ``'2026-03-01T14:05:09Z'``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_today(tz: dt.tzinfo, now: float | None = None) -> dt.date:
    t = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    return t.astimezone(tz).date()


def end_of_local_day(day: dt.date, tz: dt.tzinfo) -> int:
    """Unix seconds at the first instant after ``day`` ends in ``tz`` (a key "valid through" that day)."""
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return int(nxt.timestamp())
