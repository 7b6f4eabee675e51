"""The fast fake upstream: a separate Envoy answering from ``direct_response`` routes.

Fixed, realistic answers per protocol (an OpenAI ``chat.completion``, an Anthropic
``message``, a Gemini ``generateContent`` response), so no Python runs on the
upstream side and it is never the bottleneck: scenario A measures it alone.
The request bodies the clients send live here too, beside the answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from tokengate.devstack import envoy_argv, http_ok
from tokengate.procs import Child, Supervisor

MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the longest body a scenario sends (L: ~200 KiB), with room
TEXT = "Hello! This is a fixed answer from the benchmark upstream."
PROMPT = "Say hello in one short sentence."

OPENAI_RESPONSE = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT, "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26,
              "prompt_tokens_details": {"cached_tokens": 0}},
    "system_fingerprint": "fp_bench",
}
ANTHROPIC_RESPONSE = {
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
    "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 14, "output_tokens": 12},
}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 12, "totalTokenCount": 26},
    "modelVersion": "gemini-bench",
}


def openai_request(model: str, *, stream: bool = False) -> bytes:
    doc: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        doc["stream"] = True
    return orjson.dumps(doc)


def agent_request(model: str, kib: int = 200) -> bytes:
    """A coding agent's turn in OpenAI's protocol, about ``kib`` KiB: a long system prompt, 24 tools with JSON
    schemas, and a conversation of tool calls and their results (source files, command output) that grows
    until the body is that long: what Claude Code, Codex CLI and their kind send on every turn (100–700 KB)."""
    props = {"path": {"type": "string", "description": "Absolute path of the file."},
             "offset": {"type": "integer", "description": "Line to start at (1-based)."},
             "pattern": {"type": "string", "description": "A regular expression (ripgrep syntax)."}}
    tools = [{"type": "function", "function": {
        "name": f"tool_{i}", "description": f"Tool {i}: reads, searches or edits the workspace. " * 6,
        "parameters": {"type": "object", "properties": props, "required": ["path"], "additionalProperties": False}}}
        for i in range(24)]
    system = "You are a coding agent working in a repository. Follow the user's instructions exactly. " * 120
    code = "".join(f"    def step_{n}(self, x: int) -> int:  # «{n}» → returns x + {n}\n        return x + {n}\n\n"
                   for n in range(40))
    messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                      {"role": "user", "content": "Fix the failing test in src/steps.py."}]
    turn, room = 0, kib * 1024 - len(orjson.dumps(tools))
    while len(orjson.dumps(messages)) < room:
        call = f"call_{turn:04d}"
        messages.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": call, "type": "function",
            "function": {"name": f"tool_{turn % 24}", "arguments": orjson.dumps(
                {"path": f"/repo/src/module_{turn}.py", "offset": 1}).decode()}}]})
        messages.append({"role": "tool", "tool_call_id": call, "content": f"# module_{turn}.py\nclass M:\n{code}"})
        turn += 1
    messages.append({"role": "user", "content": "Now run the tests again."})
    return orjson.dumps({"model": model, "messages": messages, "tools": tools, "max_tokens": 64})


def anthropic_request(model: str) -> bytes:
    return orjson.dumps({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]})


def responses_request(model: str) -> bytes:
    """The same question through the OpenAI Responses API (the ``openai`` SDK's ``client.responses``, Codex CLI)."""
    return orjson.dumps({"model": model, "input": PROMPT, "max_output_tokens": 64})


def gemini_request() -> bytes:
    return orjson.dumps({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                         "generationConfig": {"maxOutputTokens": 64}})


def _route(match: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {
        "match": match,
        "direct_response": {"status": 200, "body": {"inline_string": orjson.dumps(body).decode()}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
    }


def config(port: int, admin_port: int) -> dict[str, Any]:
    """The upstream Envoy's bootstrap: one plain-HTTP listener, answers by path."""
    routes = [
        _route({"prefix": "/v1/chat/completions"}, OPENAI_RESPONSE),
        _route({"prefix": "/chat/completions"}, OPENAI_RESPONSE),
        _route({"prefix": "/v1/messages"}, ANTHROPIC_RESPONSE),
        _route({"safe_regex": {"regex": "^/v1(beta)?/models/[^/]+:generateContent.*"}}, GEMINI_RESPONSE),
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                 ".HttpConnectionManager",
        "stat_prefix": "upstream",
        "route_config": {"name": "fixed", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        # The whole request is read before the answer: a direct response sent at the request's headers, its body
        # still unread, makes Envoy close the connection ("connection: close"), where a provider keeps it open.
        "http_filters": [
            {"name": "envoy.filters.http.buffer", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": MAX_REQUEST_BYTES}},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}],
        }]},
    }


def start_envoy(sup: Supervisor, name: str, config_path: Path, admin_port: int,
                *, concurrency: int | None = None) -> Child:
    """Start an Envoy with the flags ``tokengate.devstack.Stack`` uses; wait for admin /ready."""
    child = sup.start(name, envoy_argv(config_path, concurrency or 0))
    sup.wait_until(child, lambda: http_ok(f"http://127.0.0.1:{admin_port}/ready"), 30, "ready")
    return child


def start(sup: Supervisor, workdir: Path, port: int, admin_port: int, *, concurrency: int) -> Child:
    path = workdir / "upstream-envoy.yaml"
    path.write_text(yaml.safe_dump(config(port, admin_port), sort_keys=False))
    return start_envoy(sup, "upstream", path, admin_port, concurrency=concurrency)
