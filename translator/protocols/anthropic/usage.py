"""Anthropic ``usage`` objects <-> ``Usage``.

``input_tokens`` excludes cache reads and writes (their own fields); ``output_tokens``
includes thinking, split out when ``output_tokens_details.thinking_tokens`` says how much.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage, count


def read(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    out = count(raw.get("output_tokens"))
    details = raw.get("output_tokens_details") or {}
    thinking = count(details.get("thinking_tokens")) if isinstance(details, dict) else None
    if out is not None and thinking is not None:
        out = max(out - thinking, 0)
    return Usage(
        count(raw.get("input_tokens")),
        count(raw.get("cache_read_input_tokens")),
        count(raw.get("cache_creation_input_tokens")),
        out,
        thinking,
    )


def write(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input or 0,
        "cache_creation_input_tokens": usage.cache_write or 0,
        "cache_read_input_tokens": usage.cache_read or 0,
        "output_tokens": usage.completion_total,
    }
