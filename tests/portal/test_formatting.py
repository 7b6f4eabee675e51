"""Dollars from integer nano-USD (rounded half-up to the micro-dollar) and times in the user's zone."""

from __future__ import annotations

import datetime as dt

import pytest

from portal import formatting
from portal.formatting import usd


@pytest.mark.parametrize(("nano", "shown"), [
    (0, "$0.00"),
    (5_000_000_000, "$5.00"),
    (12_500_000, "$0.0125"),
    (7_750_000, "$0.00775"),
    (1_500, "$0.000002"),
    (1_499, "$0.000001"),
    (500, "$0.000001"),
    (499, "$0.00"),
    (-1_500, "-$0.000002"),
    (-499, "$0.00"),
    (-1_500_000_000, "-$1.50"),
    (1_234_567_890_123, "$1,234.56789"),
    (999_999_999_500, "$1,000.00"),
], ids=["zero", "whole", "cents-and-more", "sub-cent", "half-up", "below-half", "exactly-half",
        "rounds-to-zero", "negative", "negative-rounds-to-zero", "negative-dollars", "grouping", "carries"])
def test_dollars_round_half_up_to_the_micro_dollar(nano: int, shown: str) -> None:
    """Six decimals at most, at least two, trailing zeros trimmed, thousands grouped; never '-$0.00'."""
    assert shown == usd(nano)


def test_exact_dollars_keep_every_nano() -> None:
    """The exact form keeps nine decimals' worth."""
    assert "$0.0000015" == usd(1_500, exact=True)
    assert "$12.000000001" == usd(12_000_000_001, exact=True)


@pytest.mark.parametrize(("nano", "plain"), [(7_750_000, "0.007750"), (1_500, "0.000002"), (0, "0.000000"),
                                             (-2_500_000_000, "-2.500000")])
def test_csv_dollars_are_plain_and_rounded_like_the_table(nano: int, plain: str) -> None:
    """The CSV's cost_usd has the table's rounding and no symbol or grouping."""
    assert plain == formatting.usd_plain(nano)


@pytest.mark.parametrize(("pico", "shown"), [(2_500_000, "$2.50"), (75_000, "$0.075"), (10_000_000, "$10.00"),
                                             (1, "$0.000001")])
def test_prices_are_per_million_tokens(pico: int, shown: str) -> None:
    """pico-USD per token is numerically micro-USD per million tokens."""
    assert shown == formatting.per_mtok(pico)


TS = dt.datetime(2026, 7, 1, 12, 0, 5, tzinfo=dt.UTC).timestamp()
WINTER = dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(("ts", "zone", "shown"), [
    (TS, "UTC", "2026-07-01 12:00:05 UTC"),
    (TS, "Europe/Berlin", "2026-07-01 14:00:05 CEST"),
    (WINTER, "Europe/Berlin", "2026-01-16 00:30:00 CET"),
    (TS, "America/New_York", "2026-07-01 08:00:05 EDT"),
    (TS, "Asia/Kolkata", "2026-07-01 17:30:05 IST"),
    (TS, "Not/AZone", "2026-07-01 12:00:05 UTC"),
], ids=["utc", "berlin-summer", "berlin-winter-next-day", "new-york", "half-hour-offset", "unknown-is-utc"])
def test_times_are_stored_utc_and_shown_in_the_users_zone(ts: float, zone: str, shown: str) -> None:
    """A UTC timestamp shown in the chosen zone, with its abbreviation (DST included)."""
    assert shown == formatting.local_time(ts, formatting.zone(zone))


@pytest.mark.parametrize(("day", "zone", "utc"), [
    ("2026-03-28", "Europe/Berlin", "2026-03-28T23:00:00"),
    ("2026-03-29", "Europe/Berlin", "2026-03-29T22:00:00"),
    ("2026-07-01", "UTC", "2026-07-02T00:00:00"),
    ("2026-07-01", "America/Los_Angeles", "2026-07-02T07:00:00"),
], ids=["before-dst", "dst-day", "utc", "west"])
def test_a_key_valid_through_a_day_expires_when_that_day_ends_locally(day: str, zone: str, utc: str) -> None:
    """'Valid through' a date means until midnight after it, in the user's zone."""
    ts = formatting.end_of_local_day(dt.date.fromisoformat(day), formatting.zone(zone))
    assert utc == dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_zone_choices_start_with_utc_and_are_valid() -> None:
    """The time-zone list is UTC first, then real IANA zones only."""
    zones = formatting.zone_choices()
    assert "UTC" == zones[0] and "Europe/Berlin" in zones
    assert set(zones) <= formatting.valid_zones()
