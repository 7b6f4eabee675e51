"""Gemini ``usageMetadata`` <-> ``Usage``.

``promptTokenCount`` includes cached tokens (and ``toolUsePromptTokenCount`` is more
prompt); ``candidatesTokenCount`` excludes thoughts, except on models that count them
in (then prompt + candidates == total: LiteLLM's guard).
"""

from __future__ import annotations

from typing import Any

from core.usage import Usage, count


def read(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt = count(raw.get("promptTokenCount"))
    tool_prompt = count(raw.get("toolUsePromptTokenCount"))
    cached = count(raw.get("cachedContentTokenCount"))
    uncached = None
    if prompt is not None or tool_prompt is not None:
        uncached = max((prompt or 0) + (tool_prompt or 0) - (cached or 0), 0)
    candidates = count(raw.get("candidatesTokenCount"))
    thoughts = count(raw.get("thoughtsTokenCount"))
    total = count(raw.get("totalTokenCount"))
    if candidates is not None and thoughts and total is not None and (
        total == (prompt or 0) + (tool_prompt or 0) + candidates
    ):
        candidates = max(candidates - thoughts, 0)
    return Usage(uncached, cached, None, candidates, thoughts)


def write(usage: Usage) -> dict[str, Any]:
    prompt = usage.prompt_total
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output or 0,
        "totalTokenCount": prompt + usage.completion_total,
    }
    if usage.cache_read:
        out["cachedContentTokenCount"] = usage.cache_read
    if usage.reasoning:
        out["thoughtsTokenCount"] = usage.reasoning
    return out
