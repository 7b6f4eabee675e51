"""Token usage in disjoint buckets, normalised once from each protocol.

Buckets never overlap, so cost is a plain sum of bucket x price:

    input        uncached prompt tokens
    cache_read   prompt tokens served from the provider's cache
    cache_write  prompt tokens written to the cache
    output       generated tokens, reasoning excluded
    reasoning    reasoning / thinking tokens

OpenAI's ``prompt_tokens`` includes cached tokens and ``completion_tokens``
includes reasoning; Anthropic's ``input_tokens`` excludes cache reads and
writes; Gemini's ``promptTokenCount`` includes cached tokens and
``candidatesTokenCount`` excludes thoughts. Each field is "set or unset"
(``None``), never a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning")


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


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

    # --- decode -----------------------------------------------------------------

    @classmethod
    def from_openai(cls, u: dict[str, Any] | None) -> Usage:
        if not isinstance(u, dict):
            return cls()
        prompt = _int(u.get("prompt_tokens"))
        completion = _int(u.get("completion_tokens"))
        pd = u.get("prompt_tokens_details") or {}
        cd = u.get("completion_tokens_details") or {}
        cached = _int(pd.get("cached_tokens")) if isinstance(pd, dict) else None
        written = _int(pd.get("cache_write_tokens")) if isinstance(pd, dict) else None
        reasoning = _int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else None
        uncached = None
        if prompt is not None:
            uncached = max(prompt - (cached or 0) - (written or 0), 0)
        output = None
        if completion is not None:
            output = max(completion - (reasoning or 0), 0)
        return cls(uncached, cached, written, output, reasoning)

    @classmethod
    def from_anthropic(cls, u: dict[str, Any] | None) -> Usage:
        if not isinstance(u, dict):
            return cls()
        out = _int(u.get("output_tokens"))
        details = u.get("output_tokens_details") or {}
        thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else None
        if out is not None and thinking is not None:
            out = max(out - thinking, 0)
        return cls(
            _int(u.get("input_tokens")),
            _int(u.get("cache_read_input_tokens")),
            _int(u.get("cache_creation_input_tokens")),
            out,
            thinking,
        )

    @classmethod
    def from_gemini(cls, u: dict[str, Any] | None) -> Usage:
        if not isinstance(u, dict):
            return cls()
        prompt = _int(u.get("promptTokenCount"))
        tool_prompt = _int(u.get("toolUsePromptTokenCount"))
        cached = _int(u.get("cachedContentTokenCount"))
        uncached = None
        if prompt is not None or tool_prompt is not None:
            uncached = max((prompt or 0) + (tool_prompt or 0) - (cached or 0), 0)
        candidates = _int(u.get("candidatesTokenCount"))
        thoughts = _int(u.get("thoughtsTokenCount"))
        total = _int(u.get("totalTokenCount"))
        if candidates is not None and thoughts and total is not None and (
            total == (prompt or 0) + (tool_prompt or 0) + candidates
        ):
            # some models report candidates inclusive of thoughts (LiteLLM's guard)
            candidates = max(candidates - thoughts, 0)
        return cls(uncached, cached, None, candidates, thoughts)

    # --- encode -----------------------------------------------------------------

    def to_openai(self) -> dict[str, Any]:
        prompt = self.prompt_total
        completion = self.completion_total
        out: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.cache_read is not None or self.cache_write is not None:
            pd: dict[str, int] = {"cached_tokens": self.cache_read or 0}
            if self.cache_write is not None:
                pd["cache_write_tokens"] = self.cache_write
            out["prompt_tokens_details"] = pd
        if self.reasoning is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning}
        return out

    def to_anthropic(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input or 0,
            "cache_creation_input_tokens": self.cache_write or 0,
            "cache_read_input_tokens": self.cache_read or 0,
            "output_tokens": self.completion_total,
        }
        return out

    def to_gemini(self) -> dict[str, Any]:
        prompt = self.prompt_total
        out: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": self.output or 0,
            "totalTokenCount": prompt + self.completion_total,
        }
        if self.cache_read:
            out["cachedContentTokenCount"] = self.cache_read
        if self.reasoning:
            out["thoughtsTokenCount"] = self.reasoning
        return out
