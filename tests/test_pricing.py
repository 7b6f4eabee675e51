"""Prices and money in integers: exact costs, rounding up once, dollars parsed without floats."""

from __future__ import annotations

import pytest

from core.money import format_usd, parse_usd
from core.pricing import Price, Rates, catalogue, from_usd_per_mtok, pico_per_token
from core.protocols import Protocol
from core.usage import Usage


@pytest.mark.parametrize(
    ("usage", "nano"),
    [
        (Usage(input=1000, output=500), 1000 * 2500 + 500 * 10000),
        (Usage(input=1, output=0), 2500),
        (Usage(cache_read=1000, reasoning=100), 1000 * 1250 + 100 * 10000),
        (Usage(), 0),
    ],
    ids=["plain", "one-token", "cache-and-reasoning", "nothing"],
)
def test_cost_is_exact_and_rounded_up_once(usage: Usage, nano: int) -> None:
    """cost = ceil(sum(tokens x pico-USD per token) / 1000) nano-USD."""
    price = from_usd_per_mtok({"input": 2.5, "output": 10, "cache_read": 1.25})
    assert nano == price.cost_nano(usage)


def test_fractions_of_a_nano_dollar_round_up_once_per_request() -> None:
    """Three tokens at 1.5 nano-USD each cost 5 nano-USD (4.5 rounded up), not 6."""
    price = from_usd_per_mtok({"input": "0.0015", "output": 0})
    assert (2, 5) == (price.cost_nano(Usage(input=1)), price.cost_nano(Usage(input=3)))


def test_tiers_switch_every_token_to_the_tier_rate() -> None:
    """From the tier's prompt size on, all tokens pay the tier's rates (the cliff model)."""
    base, tier = Rates(1, 2, 0, 0, 2), Rates(10, 20, 0, 0, 20)
    price = Price(base, ((200_000, tier),))
    assert 199_999 * 1 // 1000 + 1 == price.cost_nano(Usage(input=199_999))
    assert 200_000 * 10 // 1000 == price.cost_nano(Usage(input=200_000))


def test_catalogue_knows_real_models_and_not_made_up_ones() -> None:
    """genai-prices gives gpt-4o's list price (pico-USD per token) and nothing for unknown names."""
    p = catalogue("gpt-4o", Protocol.OPENAI)
    assert p is not None
    assert (pico_per_token(2.5), pico_per_token(10)) == (p.rates.input, p.rates.output)
    assert catalogue("no-such-model-xyz", Protocol.OPENAI) is None


@pytest.mark.parametrize(("text", "nano"), [("10", 10_000_000_000), ("$0.000000001", 1), ("-2.5", -2_500_000_000)])
def test_parse_usd_is_exact(text: str, nano: int) -> None:
    """Dollar amounts become nano-USD exactly."""
    assert nano == parse_usd(text)


@pytest.mark.parametrize("text", ["abc", "0.0000000001"])
def test_parse_usd_refuses_what_it_cannot_keep(text: str) -> None:
    """Garbage and sub-nano amounts are refused, not rounded."""
    with pytest.raises(ValueError, match="dollars|decimals"):
        parse_usd(text)


@pytest.mark.parametrize(("nano", "text"), [(1_500, "$0.000002"), (-1_499, "-$0.000001"), (12_345_678_900, "$12.345679")])
def test_format_usd_rounds_half_up(nano: int, text: str) -> None:
    """Display rounds half-up to micro-dollars."""
    assert text == format_usd(nano)
