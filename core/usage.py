"""Token usage in disjoint buckets, normalised once from each protocol.

Buckets never overlap, so cost is a plain sum of bucket x price:

    input        uncached prompt tokens
    cache_read   prompt tokens served from the provider's cache
    cache_write  prompt tokens written to the cache
    output       generated tokens, reasoning excluded
    reasoning    reasoning / thinking tokens

Each protocol counts differently (cached tokens inside the prompt or beside it,
reasoning inside the output or not): its codec reads and writes its own usage
object (``translator/protocols/<name>/usage.py``). Each field is "set or unset"
(``None``), never a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning")


def count(v: Any) -> int | None:
    """``v`` when it is a token count (a non-negative integer), else None: for reading usage objects."""
    return v if type(v) is int and v >= 0 else None  # not a bool (an int subclass), nor any other


@dataclass(frozen=True, slots=True)
class Usage:
    input: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None
    reasoning: int | None = None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, b) is None for b in BUCKETS)

    @property
    def prompt_total(self) -> int:
        return (self.input or 0) + (self.cache_read or 0) + (self.cache_write or 0)

    @property
    def completion_total(self) -> int:
        return (self.output or 0) + (self.reasoning or 0)

    def merge(self, newer: Usage) -> Usage:
        """Later values win per field; an unset field never erases a set one."""
        return Usage(*(v if (v := getattr(newer, b)) is not None else getattr(self, b) for b in BUCKETS))

    def as_dict(self) -> dict[str, int]:
        return {b: v for b in BUCKETS if (v := getattr(self, b)) is not None}
