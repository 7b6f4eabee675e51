"""What Claude Code and gemini-cli send (tests/fixtures/clients/), field by field, toward the other protocols.

Every field is either mapped or deliberately dropped (docs/protocols.md, "What real clients send"); none
makes a 400. The end-to-end replay of the same files is tests/e2e/test_clients.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.protocols import Protocol
from translator.protocols.convert import translate_request

OAI, ANT, GEM = Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.GEMINI
CLIENTS = Path(__file__).resolve().parents[1] / "fixtures" / "clients"


def fixture(client: str, case: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((CLIENTS / client / case / f"{n:02d}.json").read_text())["body"]
    return body


def tr(client: Protocol, upstream: Protocol, body: dict[str, Any], model: str = "up") -> dict[str, Any]:
    return translate_request(client, upstream, body, upstream_model=model, stream=True)


def test_every_captured_request_translates_to_every_other_protocol() -> None:
    """No captured request of either client is refused by any other protocol's encoder."""
    for path in sorted([*CLIENTS.glob("claude-code/*/*.json"), *CLIENTS.glob("gemini-cli/*/*.json")]):
        client = ANT if path.parts[-3] == "claude-code" else GEM
        body = json.loads(path.read_text())["body"]
        for upstream in {OAI, ANT, GEM} - {client}:
            tr(client, upstream, body, "gemini-3-up" if upstream is GEM else "up")


@pytest.mark.parametrize("case", ["thinking", "no-thinking"])
def test_claude_code_toward_openai(case: str) -> None:
    """The mid-conversation system message stays a system message where it was; metadata.user_id (a JSON
    object, longer than OpenAI's 64 characters) is hashed; effort is the reasoning effort; cache_control,
    context_management and the beta flags are gone."""
    cc = fixture("claude-code", case, 1)
    body = tr(ANT, OAI, cc)
    roles = [m["role"] for m in body["messages"]]
    assert ["system", "user", "system", "assistant", "tool"] == roles
    assert cc["messages"][1]["content"] == body["messages"][2]["content"]
    assert body["user"].startswith("tg-") and len(body["user"]) <= 64
    assert ("high", 32000) == (body["reasoning_effort"], body["max_completion_tokens"])
    assert "cache_control" not in json.dumps(body) and "context_management" not in body
    assert len(cc["tools"]) == len(body["tools"])


@pytest.mark.parametrize(("case", "thoughts"), [("thinking", True), ("no-thinking", False)])
def test_claude_code_toward_gemini(case: str, thoughts: bool) -> None:
    """System text (top-level and mid-conversation, in order) is the systemInstruction; adaptive thinking
    with effort high is a budget (Gemini 3: a level) with thoughts shown; effort alone shows none."""
    cc = fixture("claude-code", case, 1)
    body = tr(ANT, GEM, cc, "gemini-2.5-flash")
    sys_text = [p["text"] for p in body["systemInstruction"]["parts"]]
    assert cc["messages"][1]["content"] == sys_text[-1]
    assert ["user", "model", "user"] == [c["role"] for c in body["contents"]]
    assert {"thinkingBudget": 4096, "includeThoughts": thoughts} == body["generationConfig"]["thinkingConfig"]
    level = tr(ANT, GEM, cc, "gemini-3-pro")["generationConfig"]["thinkingConfig"]
    assert {"thinkingLevel": "HIGH", "includeThoughts": thoughts} == level


def test_claude_code_system_messages_are_hoisted_for_anthropic() -> None:
    """Toward an Anthropic upstream (another client's conversation) system text goes to system, in order."""
    body = tr(ANT, ANT, fixture("claude-code", "thinking", 1))
    assert ["user", "assistant", "user"] == [m["role"] for m in body["messages"]]
    assert body["system"][-1]["text"].startswith("Available agent types")


@pytest.mark.parametrize("case", ["thinking", "no-thinking"])
def test_gemini_cli_toward_anthropic(case: str) -> None:
    """generationConfig's thinking maps to Anthropic thinking (sampling dropped with it, as Anthropic wants)
    or to none; parametersJsonSchema tools become input_schema; its call ids pass as tool_use ids."""
    gc = fixture("gemini-cli", case, 1)
    body = tr(GEM, ANT, gc)
    if case == "thinking":  # a tool loop whose thinking the client could not carry: thinking off (carry.py)
        assert "thinking" not in body and 1 == body["temperature"]
        assert {"type": "enabled", "budget_tokens": 4096} == tr(GEM, ANT, fixture("gemini-cli", case, 0))["thinking"]
    else:
        assert "thinking" not in body and 1 == body["temperature"] and 64 == body["top_k"]
    [decl] = [d for d in gc["tools"][0]["functionDeclarations"] if d["name"] == "write_file"]
    [tool] = [t for t in body["tools"] if t["name"] == "write_file"]
    assert decl["parametersJsonSchema"] == tool["input_schema"]
    call = gc["contents"][1]["parts"][0]["functionCall"]
    assert call["id"] == body["messages"][1]["content"][0]["id"]


def test_gemini_cli_toward_openai() -> None:
    """topK has no OpenAI peer and is dropped; includeThoughts alone is a medium effort."""
    body = tr(GEM, OAI, fixture("gemini-cli", "thinking", 1))
    assert "top_k" not in body and (1, 0.95) == (body["temperature"], body["top_p"])
    assert "medium" == body["reasoning_effort"]
    assert ["system", "user", "assistant", "tool"] == [m["role"] for m in body["messages"]]
