"""Prices per token bucket, and the cost of a request, in integers.

Units: a price is **pico-USD per token** (1e-12 USD, the same number as micro-USD
per million tokens), so every price in the catalogue is an exact integer; a cost
or a balance is **nano-USD** (1e-9 USD). A request's cost is the sum over its
disjoint usage buckets of tokens x price, rounded *up* once to the nano-dollar:

    cost_nano = ceil(sum(tokens[b] * pico_per_token[b]) / 1000)

Balances fit Lua's exact integer range (2^53 nano-USD = $9 million per account).
Prices come from the ``genai-prices`` package (its bundled snapshot, never the
network) or from ``price:`` in the gateway config, in USD per million tokens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.protocols import Protocol
from core.usage import Usage

NANO_PER_USD = 1_000_000_000


def pico_per_token(usd_per_mtok: Decimal | float | int | str) -> int:
    """USD per million tokens -> pico-USD per token (exact for up to 6 decimals)."""
    return int((Decimal(str(usd_per_mtok)) * 1_000_000).to_integral_value())


@dataclass(frozen=True, slots=True)
class Rates:
    """Pico-USD per token for each usage bucket."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int

    def pico(self, u: Usage) -> int:
        return ((u.input or 0) * self.input + (u.cache_read or 0) * self.cache_read
                + (u.cache_write or 0) * self.cache_write + (u.output or 0) * self.output
                + (u.reasoning or 0) * self.reasoning)


@dataclass(frozen=True, slots=True)
class Price:
    """A model's rates; from ``tiers`` on, a prompt of at least N tokens pays other rates
    for all its tokens (the cliff model providers use)."""

    rates: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    source: str = "config"

    def rates_for(self, prompt_tokens: int) -> Rates:
        chosen = self.rates
        for start, rates in self.tiers:
            if prompt_tokens >= start:
                chosen = rates
        return chosen

    def cost_nano(self, u: Usage) -> int:
        pico = self.rates_for(u.prompt_total).pico(u)
        return -(-pico // 1000)  # ceiling division

    def to_json(self) -> dict[str, Any]:
        r = self.rates
        return {"usd_per_mtok": {k: getattr(r, k) / 1_000_000 for k in Rates.__slots__}, "source": self.source}


FREE = Price(Rates(0, 0, 0, 0, 0), source="free")


def from_usd_per_mtok(spec: dict[str, Any], source: str = "config") -> Price:
    """``{input, output?, cache_read?, cache_write?, reasoning?}`` in USD per million tokens (no output:
    an embedding model's, which produces no output tokens)."""
    inp, out = pico_per_token(spec["input"]), pico_per_token(spec.get("output", 0))
    return Price(Rates(
        input=inp,
        output=out,
        cache_read=pico_per_token(spec.get("cache_read", spec["input"])),
        cache_write=pico_per_token(spec.get("cache_write", spec["input"])),
        reasoning=pico_per_token(spec.get("reasoning", spec.get("output", 0))),
    ), source=source)


def _tiered(value: Any) -> tuple[Decimal | None, list[tuple[int, Decimal]]]:
    if value is None:
        return None, []
    if isinstance(value, Decimal):
        return value, []
    return value.base, [(int(t.start), t.price) for t in value.tiers]


def catalogue(model: str, protocol: Protocol, when: dt.datetime | None = None, *,
              input_only: bool = False, provider: str | None = None) -> Price | None:
    """The genai-prices price of ``model`` at ``protocol``'s provider, or None if unknown.
    ``input_only``: an embedding model, which the catalogue prices by input alone; ``provider``: the catalogue's
    provider when it is not the protocol's (AWS Bedrock's ``aws`` for Claude through InvokeModel)."""
    from genai_prices import data_snapshot

    provider = provider or protocol.price_provider
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    mp = info.get_prices(when or dt.datetime.now(dt.UTC))
    fields = {"input": "input_mtok", "output": "output_mtok", "cache_read": "cache_read_mtok",
              "cache_write": "cache_write_mtok"}
    base: dict[str, Decimal] = {}
    starts: set[int] = set()
    tiered: dict[str, list[tuple[int, Decimal]]] = {}
    for name, attr in fields.items():
        b, tiers = _tiered(getattr(mp, attr, None))
        if b is not None:
            base[name] = b
            tiered[name] = tiers
            starts.update(s for s, _ in tiers)
    if "input" not in base or ("output" not in base and not input_only):
        return None
    source = f"genai-prices:{provider}/{info.id}"

    def at(start: int) -> Rates:
        spec = {k: next((p for s, p in reversed(tiered[k]) if s <= start), v) for k, v in base.items()}
        return from_usd_per_mtok(spec).rates

    return Price(at(0), tuple((s, at(s)) for s in sorted(starts)), source=source)
