"""Bedrock ``TokenUsage`` <-> ``Usage``.

``inputTokens`` excludes cache reads and writes (``cacheReadInputTokens``, ``cacheWriteInputTokens``, beside it;
``totalTokens`` adds all four); ``outputTokens`` includes any reasoning (Converse does not count it apart).
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage, count


def read(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(count(raw.get("inputTokens")), count(raw.get("cacheReadInputTokens")),
                 count(raw.get("cacheWriteInputTokens")), count(raw.get("outputTokens")))


def write(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"inputTokens": usage.input or 0, "outputTokens": usage.completion_total,
                           "totalTokens": usage.prompt_total + usage.completion_total}
    if usage.cache_read is not None:
        out["cacheReadInputTokens"] = usage.cache_read
    if usage.cache_write is not None:
        out["cacheWriteInputTokens"] = usage.cache_write
    return out
