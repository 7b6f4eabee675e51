"""The request each ready preset builds (issue #15 item 7): URL, headers and body of an attempt, through the
gateway's own request building (``attempt_headers`` / ``attempt_body`` of translator/extproc/upstream.py, on
the deployment ``translator.state.targets`` makes of a config naming the preset).

The caller is the OpenAI SDK with a conversation that meets every quirk (a developer message, a strict
tool, a tool-call id of OpenAI's shape, ``max_completion_tokens``, ``stream_options``, reasoning history),
and an Anthropic caller (Claude Code) whose thinking and tool ids are translated. Each quirk is checked
both ways: applied where the preset has it, the field as sent where it has not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import presets
from core.config import Provider, parse
from tests.test_presets import EXPECTED, VERTEX
from translator.endpoints import Kind
from translator.extproc.upstream import attempt_body, attempt_headers
from translator.protocols import REGISTRY
from translator.state import Target, targets

OPENAI, ANTHROPIC = REGISTRY.get("openai"), REGISTRY.get("anthropic")
KEY = "sk-preset-test-key"
CLIENT_HEADERS = ("content-type", "authorization", "user-agent", "cookie", "x-stainless-os", "traceparent")
ROWS = {row[0]: row for row in EXPECTED}
READY = [p.name for p in presets.PRESETS if p.status == "ready"]

OAI_BODY: dict[str, Any] = {
    "model": "m", "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 32000,
    "tools": [{"type": "function", "function": {"name": "get_weather", "strict": True,
                                                "parameters": {"type": "object", "properties": {}}}}],
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "Call it.",
         "tool_calls": [{"id": "call_Hk3kQ0L9wZbGm1x2", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_Hk3kQ0L9wZbGm1x2", "content": "Sunny"},
    ],
}
ANT_BODY: dict[str, Any] = {
    "model": "m", "max_tokens": 32000, "stream": True,
    "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Call it.", "signature": ""},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "Sunny"}]},
    ],
}


def _assistant(body: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in body["messages"] if m["role"] == "assistant")


def _ids(body: dict[str, Any]) -> list[str]:
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    return [_assistant(body)["tool_calls"][0]["id"], tool["tool_call_id"]]


def _nine(body: dict[str, Any]) -> bool:
    return all(len(i) == 9 and i.isascii() and i.isalnum() for i in _ids(body))


# quirk -> whether a body (the OpenAI caller's, sent to an OpenAI-compatible preset) shows it applied
APPLIED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "tool_call_id_9_alnum": _nine,
    "no_stream_options": lambda b: "stream_options" not in b,
    "max_tokens_only": lambda b: (b.get("max_tokens"), b.get("max_completion_tokens")) == (32000, None),
    "no_developer_role": lambda b: b["messages"][0]["role"] == "system",
    "no_strict_tools": lambda b: "strict" not in b["tools"][0]["function"],
    "no_reasoning_history": lambda b: "reasoning_content" not in _assistant(b),
}


def _target(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Provider, Target]:
    preset = presets.BY_NAME[name]
    entry: dict[str, Any] = {"name": "p", "preset": name}
    if preset.params:
        entry["params"] = {k: "acct123" for k in preset.params}
    if preset.key_env:
        monkeypatch.setenv(preset.key_env, KEY)
    if "vertex" in preset.fields:  # Vertex AI: a project and location, and a static token (as tests/test_presets.py)
        entry.update(VERTEX)
        monkeypatch.setenv(VERTEX["api_key"]["env"], KEY)
    cfg = parse({"providers": [entry], "deployments": [{"name": "d", "provider": "p", "model": "m"}],
                 "models": [{"name": "m", "deployments": ["d"], "free": True}]}, "test")
    return cfg.provider("p"), targets(cfg, Path("."))["d"]


def _expected_url(name: str) -> str:
    url = ROWS[name][2]
    if " (azure v1)" in url:  # tests/test_presets.py writes the endpoint; the v1 API's path under it
        return url.removesuffix(" (azure v1)") + "/openai/v1/chat/completions"
    return url


@pytest.mark.parametrize("name", READY, ids=READY)
def test_a_preset_builds_its_url_and_headers(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL a chat attempt goes to, the key in the header the preset says (a local server without a key:
    none), and no caller header beyond the forwarded ones (the caller's cookie and SDK headers removed)."""
    (p, t), header = _target(name, monkeypatch), ROWS[name][4]
    headers, remove = attempt_headers(OPENAI, Kind.CHAT, False, True, t, CLIENT_HEADERS)
    port = "" if p.port == (443 if p.tls else 80) else f":{p.port}"  # Envoy's cluster: the provider's host
    assert _expected_url(name) == f"{'https' if p.tls else 'http'}://{p.host}{port}{headers[':path']}"
    key = headers.get(header, "")
    if presets.BY_NAME[name].key_env or "vertex" in presets.BY_NAME[name].fields:
        assert key in (KEY, f"Bearer {KEY}")
    else:
        assert header not in headers
    assert {"cookie", "x-stainless-os", "traceparent"} <= set(remove)
    assert not {"cookie", "x-stainless-os", "traceparent"} & set(headers)


@pytest.mark.parametrize("name", READY, ids=READY)
def test_a_preset_builds_its_body_with_its_quirks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenAI caller's streamed request as the preset's provider gets it: the upstream model, and each
    quirk applied exactly where the preset has it; an Anthropic caller's thinking goes back as
    reasoning_content only to a reasoning_content provider, its tool ids fitted to 9 characters only for
    a tool_call_id_9_alnum one."""
    (_, t), preset = _target(name, monkeypatch), presets.BY_NAME[name]
    body = attempt_body(OPENAI, Kind.CHAT, True, t, copy.deepcopy(OAI_BODY))
    if t.codec is not OPENAI:  # translated: the protocol's own body (tests/protocols cover its fields)
        assert "messages" in body or "contents" in body or "input" in body
        assert t.codec.output_cap(body) == 32000
        return
    assert "m" == body["model"]
    assert {q: q in preset.quirks for q in APPLIED} == {q: check(body) for q, check in APPLIED.items()}
    translated = attempt_body(ANTHROPIC, Kind.CHAT, True, t, copy.deepcopy(ANT_BODY))
    assert ("reasoning_content" in preset.quirks) == ("reasoning_content" in _assistant(translated))
    assert ("tool_call_id_9_alnum" in preset.quirks) == _nine(translated)
