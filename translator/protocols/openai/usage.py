"""OpenAI ``usage`` objects <-> ``Usage``.

``prompt_tokens`` includes cached (and cache-written) tokens, ``completion_tokens``
includes reasoning: both are split into the disjoint buckets.
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage, count


def read(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt = count(raw.get("prompt_tokens"))
    completion = count(raw.get("completion_tokens"))
    pd = raw.get("prompt_tokens_details") or {}
    cd = raw.get("completion_tokens_details") or {}
    cached = count(pd.get("cached_tokens")) if isinstance(pd, dict) else None
    written = count(pd.get("cache_write_tokens")) if isinstance(pd, dict) else None
    reasoning = count(cd.get("reasoning_tokens")) if isinstance(cd, dict) else None
    uncached = None
    if prompt is not None:
        uncached = max(prompt - (cached or 0) - (written or 0), 0)
    output = None
    if completion is not None:
        output = max(completion - (reasoning or 0), 0)
    return Usage(uncached, cached, written, output, reasoning)


def write(usage: Usage) -> dict[str, Any]:
    prompt = usage.prompt_total
    completion = usage.completion_total
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cache_read is not None or usage.cache_write is not None:
        pd: dict[str, int] = {"cached_tokens": usage.cache_read or 0}
        if usage.cache_write is not None:
            pd["cache_write_tokens"] = usage.cache_write
        out["prompt_tokens_details"] = pd
    if usage.reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning}
    return out
