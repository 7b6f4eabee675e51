"""Every golden client transcript is read by that client's official SDK, and what the
SDK accumulates (text, reasoning, tool calls, stop reason, usage, errors) is right."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as gerrors
from google.genai import types as gtypes

from core.protocols import Protocol
from core.usage import Usage
from translator.protocols.anthropic import usage as anthropic_usage
from translator.protocols.convert import response_translator
from translator.protocols.gemini import usage as gemini_usage
from translator.protocols.openai import usage as openai_usage

from . import sdk
from .test_stream_golden import CASES, FIXTURES, case_meta, expected, upstream


def _usage(meta: dict[str, Any]) -> Usage:
    return Usage(**meta["usage"])


def _tools(meta: dict[str, Any]) -> list[list[Any]]:
    return [list(t) for t in meta["tools"]]


@pytest.mark.parametrize("case", CASES)
def test_openai_sdk_reads_translated_stream(case: str) -> None:
    """openai-python parses the stream: text, reasoning, tools by index, finish, usage."""
    meta, body = case_meta(case), expected(case, Protocol.OPENAI)
    if meta.get("error"):
        with pytest.raises(openai.APIError, match=meta.get("error_message", "ended before")):
            sdk.openai_chunks(body)
        return
    acc = sdk.accumulate_openai(sdk.openai_chunks(body))
    assert meta["text"] == acc["text"]
    assert meta.get("thinking", "") == acc["reasoning"]
    if not meta.get("partial_tool"):
        assert _tools(meta) == [[t["name"], json.loads(t["arguments"])] for t in acc["tools"]]
    assert all(t["id"] for t in acc["tools"])
    assert meta["finish"]["openai"] == acc["finish"]
    assert openai_usage.write(_usage(meta)) == acc["usage"]


@pytest.mark.parametrize("case", CASES)
def test_anthropic_sdk_accumulates_translated_stream(case: str) -> None:
    """anthropic's MessageStream accumulates blocks, stop reason and usage without complaint."""
    meta, body = case_meta(case), expected(case, Protocol.ANTHROPIC)
    if meta.get("error"):
        with pytest.raises(
            anthropic.APIStatusError, match=meta.get("error_message", "ended before")
        ):
            sdk.anthropic_message(body)
        return
    msg = sdk.anthropic_message(body)
    assert meta["text"] == "".join(b.text for b in msg.content if b.type == "text")
    assert meta.get("thinking", "") == "".join(
        b.thinking for b in msg.content if b.type == "thinking"
    )
    if not meta.get("partial_tool"):
        assert _tools(meta) == [[b.name, b.input] for b in msg.content if b.type == "tool_use"]
    assert meta["finish"]["anthropic"] == msg.stop_reason
    assert anthropic_usage.write(_usage(meta)) == msg.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize("case", CASES)
def test_gemini_sdk_reads_translated_stream(case: str) -> None:
    """google-genai parses the alt=sse stream: text, thoughts, calls, finish, usage."""
    meta, body = case_meta(case), expected(case, Protocol.GEMINI)
    if meta.get("error"):
        with pytest.raises(gerrors.APIError, match=meta.get("error_message", "ended before")):
            sdk.gemini_chunks(body)
        return
    _check_gemini(meta, sdk.accumulate_gemini(sdk.gemini_chunks(body)))


@pytest.mark.parametrize("case", CASES)
def test_gemini_json_array_framing_parses(case: str) -> None:
    """Without alt=sse the stream is one JSON array of GenerateContentResponse objects."""
    meta = case_meta(case)
    t = response_translator(
        Protocol.GEMINI,
        Protocol(meta["upstream"]),
        stream=True,
        client_model="m",
        include_usage=True,
        sse=False,
        created=1,
    )
    items = json.loads(t.feed(upstream(case)) + t.flush())
    if meta.get("error"):
        assert "error" in items[-1]
        items = items[:-1]
    chunks = [gtypes.GenerateContentResponse._from_response(response=i, kwargs={}) for i in items]
    if not meta.get("error"):
        _check_gemini(meta, sdk.accumulate_gemini(chunks))


def _check_gemini(meta: dict[str, Any], acc: dict[str, Any]) -> None:
    assert meta["text"] == acc["text"]
    assert meta.get("thinking", "") == acc["thoughts"]
    assert ([] if meta.get("partial_tool") else _tools(meta)) == [list(c) for c in acc["calls"]]
    assert meta["finish"]["gemini"] == acc["finish"]
    assert gemini_usage.read(gemini_usage.write(_usage(meta))) == _gemini_usage(acc["usage"] or {})


def _gemini_usage(u: dict[str, int]) -> Usage:
    camel = {
        "prompt_token_count": "promptTokenCount",
        "cached_content_token_count": "cachedContentTokenCount",
        "candidates_token_count": "candidatesTokenCount",
        "thoughts_token_count": "thoughtsTokenCount",
    }
    return gemini_usage.read({camel[k]: v for k, v in u.items() if k in camel})


def test_fixtures_directory_has_cases() -> None:
    """The golden corpus is present (a moved directory must not pass silently)."""
    assert len(CASES) >= 10, FIXTURES
