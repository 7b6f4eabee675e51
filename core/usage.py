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

    # Written out field by field (not over BUCKETS): every request calls these.
    @property
    def is_empty(self) -> bool:
        return (self.input is None and self.cache_read is None and self.cache_write is None and self.output is None
                and self.reasoning is None)

    @property
    def prompt_total(self) -> int:
        return (self.input or 0) + (self.cache_read or 0) + (self.cache_write or 0)

    @property
    def completion_total(self) -> int:
        return (self.output or 0) + (self.reasoning or 0)

    def merge(self, newer: Usage) -> Usage:
        """Later values win per field; an unset field never erases a set one."""
        return Usage(self.input if newer.input is None else newer.input,
                     self.cache_read if newer.cache_read is None else newer.cache_read,
                     self.cache_write if newer.cache_write is None else newer.cache_write,
                     self.output if newer.output is None else newer.output,
                     self.reasoning if newer.reasoning is None else newer.reasoning)

    def as_dict(self) -> dict[str, int]:
        """The set buckets, in BUCKETS' order."""
        out: dict[str, int] = {}
        if self.input is not None:
            out["input"] = self.input
        if self.cache_read is not None:
            out["cache_read"] = self.cache_read
        if self.cache_write is not None:
            out["cache_write"] = self.cache_write
        if self.output is not None:
            out["output"] = self.output
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        return out
