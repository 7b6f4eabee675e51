"""Codex CLI's requests (tests/fixtures/clients/codex/, recorded by capture.py there), replayed through the
gateway to a model behind every upstream protocol.

Each recorded turn — the task, then the same conversation with Codex's ``apply_patch`` call and its result
(with reasoning on and off) — goes to ``POST /v1/responses`` with the headers Codex sent; the fake
provider is scripted as during the recording (the apply_patch call, then text). The answer must be what
Codex reads: a stream of typed events the SDK accumulates, ending in ``response.completed``, with the
call as a ``custom_tool_call`` whose input is the patch. What reached the upstream is checked in its own
protocol: the free-form tool as a one-string function, the history's call and its result paired.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from fakes import Reply, ToolCall
from tests.harness import GatewayUnderTest

CODEX = Path(__file__).resolve().parents[1] / "fixtures" / "clients" / "codex"
CASES = sorted(p.name for p in CODEX.iterdir() if p.is_dir())
UPSTREAMS = ("openai", "anthropic", "gemini", "openai-responses")
MODEL = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test", "openai-responses": "gpt-resp-test"}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"  # as capture.py scripted it
EVENTS = TypeAdapter(ResponseStreamEvent)


def _replay(gw: GatewayUnderTest, rec: dict[str, Any], model: str) -> Any:
    """The recorded request, to ``model``; the final response the SDK accumulates from the stream."""
    headers = {**rec["headers"], "authorization": f"Bearer {gw.key}"}
    r = httpx.post(gw.http + rec["target"], content=json.dumps({**rec["body"], "model": model}), headers=headers,
                   timeout=30)
    assert 200 == r.status_code, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=rec["body"].get("tools", []), text_format=omit)
    kinds = []
    for block in r.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            event = EVENTS.validate_json(lines["data"])
            assert lines.get("event") == event.type
            kinds.append(event.type)
            state.handle_event(event)
    assert "response.completed" == kinds[-1], kinds
    return state._completed_response


def _tools_seen(upstream: str, body: dict[str, Any]) -> dict[str, list[str]]:
    """Each tool the upstream got: its parameters (the custom apply_patch: its one string argument)."""
    if upstream == "openai":
        return {t["function"]["name"]: list(t["function"]["parameters"].get("properties", {})) for t in body["tools"]}
    if upstream == "anthropic":
        return {t["name"]: list(t["input_schema"].get("properties", {})) for t in body["tools"]}
    decls = body["tools"][0]["functionDeclarations"]
    return {d["name"]: list((d.get("parameters") or {}).get("properties", {})) for d in decls}


def _history_seen(upstream: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The apply_patch call's arguments and its result's text, as the upstream got them."""
    if upstream == "openai":
        call = next(c for m in body["messages"] for c in m.get("tool_calls") or [])
        result = next(m for m in body["messages"] if m["role"] == "tool")
        assert call["id"] == result["tool_call_id"]
        return json.loads(call["function"]["arguments"]), result["content"]
    if upstream == "anthropic":
        blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
        use = next(b for b in blocks if b["type"] == "tool_use")
        res = next(b for b in blocks if b["type"] == "tool_result")
        assert use["id"] == res["tool_use_id"]
        return use["input"], "".join(c["text"] for c in res["content"])
    parts = [p for c in body["contents"] for p in c["parts"]]
    call = next(p["functionCall"] for p in parts if "functionCall" in p)
    res = next(p["functionResponse"] for p in parts if "functionResponse" in p)
    assert call["name"] == res["name"]
    return call["args"], res["response"]["output"]


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("case", CASES)
def test_codex_turns_replay_to_every_upstream(gateway: GatewayUnderTest, case: str, upstream: str) -> None:
    """Codex's first turn gets its apply_patch call back as a custom call; its second turn (the call and
    its result in the history) gets the final answer; the upstream saw both in its own protocol."""
    first, second = (json.loads(p.read_text()) for p in sorted((CODEX / case).glob("*.json")))
    reasoning = first["body"].get("reasoning", {}).get("effort") not in (None, "none")
    gateway.fake.push(Reply(tool_calls=[ToolCall("apply_patch", {"input": PATCH})],
                            reasoning="I will add the file." if reasoning else None))
    answer = _replay(gateway, first, MODEL[upstream])
    calls = [o for o in answer.output if o.type == "custom_tool_call"]
    assert [("apply_patch", PATCH)] == [(c.name, c.input) for c in calls]
    sent = gateway.fake.requests[-1].json()
    if upstream == "openai-responses":
        assert first["body"]["tools"] == sent["tools"], "passed through untouched"
    else:
        tools = _tools_seen(upstream, sent)
        assert ["input"] == tools["apply_patch"] and "exec_command" in tools
        assert "web_search" not in tools, "hosted tools are dropped"

    gateway.fake.push(Reply(text="Done: hello.txt holds hello."))
    answer = _replay(gateway, second, MODEL[upstream])
    assert ("Done: hello.txt holds hello.", "completed") == (answer.output_text, answer.status)
    sent = gateway.fake.requests[-1].json()
    if upstream == "openai-responses":
        assert second["body"]["input"] == sent["input"], "passed through untouched"
    else:
        args, result = _history_seen(upstream, sent)
        assert {"input": PATCH} == args
        assert "Success. Updated the following files:\nA hello.txt" in result
