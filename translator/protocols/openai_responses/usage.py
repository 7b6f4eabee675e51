"""Responses ``usage`` objects <-> ``Usage``.

``input_tokens`` includes cached (``input_tokens_details.cached_tokens``) and cache-written
(``cache_write_tokens``) tokens; ``output_tokens`` includes
``output_tokens_details.reasoning_tokens``: both are split into the disjoint buckets.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage, count


def read(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt = count(raw.get("input_tokens"))
    completion = count(raw.get("output_tokens"))
    ind = raw.get("input_tokens_details")
    outd = raw.get("output_tokens_details")
    cached = count(ind.get("cached_tokens")) if isinstance(ind, dict) else None
    written = count(ind.get("cache_write_tokens")) if isinstance(ind, dict) else None
    reasoning = count(outd.get("reasoning_tokens")) if isinstance(outd, dict) else None
    uncached = None if prompt is None else max(prompt - (cached or 0) - (written or 0), 0)
    output = None if completion is None else max(completion - (reasoning or 0), 0)
    return Usage(uncached, cached, written, output, reasoning)


def write(usage: Usage) -> dict[str, Any]:
    prompt, completion = usage.prompt_total, usage.completion_total
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read or 0, "cache_write_tokens": usage.cache_write or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning or 0},
        "total_tokens": prompt + completion,
    }
