"""The conversion matrix: every client SDK x every upstream protocol x ten scenarios, end to end.

Each test scripts the fake upstream with one protocol-neutral ``Reply``, asks through the
official SDK of the client protocol (``openai``; ``anthropic`` with
``messages.stream().get_final_message()`` for streams; ``google-genai`` with
``generate_content_stream``), and checks what the SDK parsed — text, tool calls, stop reason
and usage in the client's own semantics — and, where it matters, what the upstream received
(system prompt placement, image form, tool definitions, native path, provider key) and what was
metered.

Test ids read ``<client>-><upstream>-<case>``, e.g. ``openai->anthropic-parallel_tools``. Below the
matrix, the behaviours that only some pairs have: status spellings, token counts, reasoning,
signature replay, streams cut short, SDK path variants.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from fakes import ErrorReply, RecordedRequest, Reply, ToolCall, Usage
from fakes.codec import signature
from tests.harness import UPSTREAM_SECRETS, GatewayUnderTest
from translator.protocols.openai_responses import reasoning

PROTOCOLS = ("openai", "anthropic", "gemini", "openai-responses")
MODEL = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test", "openai-responses": "gpt-resp-test"}
# The provider key each upstream must receive, in the header its protocol reads it from.
CREDENTIAL = {
    "openai": ("authorization", f"Bearer {UPSTREAM_SECRETS['TG_TEST_OPENAI_KEY']}"),
    "anthropic": ("x-api-key", UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"]),
    "gemini": ("x-goog-api-key", UPSTREAM_SECRETS["TG_TEST_GEMINI_KEY"]),
    "openai-responses": ("authorization", f"Bearer {UPSTREAM_SECRETS['TG_TEST_RESPONSES_KEY']}"),
}

# A 1x1 PNG. Its standard base64 has a "+", so an URL-safe encoding (google-genai's) shows.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TIME = {"name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "clock": {"type": "string", "enum": ["12h", "24h"]}},
                       "required": ["city"]}}
# (name, {property: type}, required) as every protocol must receive them
WEATHER_SEEN = ("get_weather", {"city": "string"}, ["city"])
TIME_SEEN = ("get_time", {"city": "string", "clock": "string"}, ["city"])

# The natural end and the tool stop, as each client protocol spells them (Gemini has no tool stop; the
# Responses API has a status, completed either way).
END = {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP", "openai-responses": "completed"}
TOOL_STOP = {"openai": "tool_calls", "anthropic": "tool_use", "gemini": "STOP", "openai-responses": "completed"}

BASIC = Usage(input=12, output=5)
BASIC_SEEN = {
    "openai": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    "anthropic": {"input_tokens": 12, "output_tokens": 5},
    "gemini": {"prompt_token_count": 12, "candidates_token_count": 5, "total_token_count": 17},
    "openai-responses": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
}

# Usage with cache tokens, in disjoint buckets: 100 uncached input, 40 read from the cache,
# 20 written to it, 30 output, 10 reasoning. Each client sees them in its own semantics:
#   OpenAI    prompt_tokens includes cached and written (160); completion includes reasoning (40)
#   Anthropic input_tokens excludes cache reads and writes (100); output_tokens includes thinking (40)
#   Gemini    promptTokenCount includes cached (160); candidates exclude thoughts (30)
#   Responses input_tokens includes cached and written (160); output_tokens includes reasoning (40)
# A Gemini upstream has no cache-write bucket: its 160 prompt tokens are 40 cached + 120 not.
CACHED = Usage(input=100, cache_read=40, cache_write=20, output=30, reasoning=10)
_OAI_CACHED = {"prompt_tokens": 160, "cached_tokens": 40, "cache_write_tokens": 20,
               "completion_tokens": 40, "reasoning_tokens": 10, "total_tokens": 200}
_ANT_CACHED = {"input_tokens": 100, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 20,
               "output_tokens": 40}
_GEM_CACHED = {"prompt_token_count": 160, "cached_content_token_count": 40, "candidates_token_count": 30,
               "thoughts_token_count": 10, "total_token_count": 200}
_RESP_CACHED = {"input_tokens": 160, "cached_tokens": 40, "cache_write_tokens": 20, "output_tokens": 40,
                "reasoning_tokens": 10, "total_tokens": 200}
CACHED_SEEN: dict[tuple[str, str], dict[str, int | None]] = {
    ("openai", "openai"): _OAI_CACHED,
    ("openai", "anthropic"): _OAI_CACHED,
    ("openai", "gemini"): {**_OAI_CACHED, "cache_write_tokens": None},
    ("anthropic", "openai"): _ANT_CACHED,
    ("anthropic", "anthropic"): _ANT_CACHED,
    ("anthropic", "gemini"): {**_ANT_CACHED, "input_tokens": 120, "cache_creation_input_tokens": 0},
    ("gemini", "openai"): _GEM_CACHED,
    ("gemini", "anthropic"): _GEM_CACHED,
    ("gemini", "gemini"): _GEM_CACHED,
    ("openai", "openai-responses"): _OAI_CACHED,
    ("anthropic", "openai-responses"): _ANT_CACHED,
    ("gemini", "openai-responses"): _GEM_CACHED,
    ("openai-responses", "openai"): _RESP_CACHED,
    ("openai-responses", "anthropic"): _RESP_CACHED,
    ("openai-responses", "gemini"): {**_RESP_CACHED, "cache_write_tokens": 0},
    ("openai-responses", "openai-responses"): _RESP_CACHED,
}
# What the metering event records (the IR's disjoint buckets) for the same answer.
CACHED_METERED = {
    "openai": {"input": 100, "cache_read": 40, "cache_write": 20, "output": 30, "reasoning": 10},
    "anthropic": {"input": 100, "cache_read": 40, "cache_write": 20, "output": 30, "reasoning": 10},
    "gemini": {"input": 120, "cache_read": 40, "output": 30, "reasoning": 10},
    "openai-responses": {"input": 100, "cache_read": 40, "cache_write": 20, "output": 30, "reasoning": 10},
}

# An upstream 429 as the client's SDK sees it: (exception, status, error type in the client's spelling).
RATE_LIMITED: dict[str, tuple[type[Exception], int, str]] = {
    "openai": (openai.RateLimitError, 429, "rate_limit_error"),
    "anthropic": (anthropic.RateLimitError, 429, "rate_limit_error"),
    "gemini": (genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    "openai-responses": (openai.RateLimitError, 429, "rate_limit_error"),
}
INVALID: dict[str, tuple[type[Exception], int, str]] = {
    "openai": (openai.BadRequestError, 400, "invalid_request_error"),
    "anthropic": (anthropic.BadRequestError, 400, "invalid_request_error"),
    "gemini": (genai_errors.ClientError, 400, "INVALID_ARGUMENT"),
    "openai-responses": (openai.BadRequestError, 400, "invalid_request_error"),
}
# An upstream error after the stream started (upstream status 529, "overloaded"), as the client
# reads it in band: the error type (OpenAI, Anthropic), status (Gemini) or code (Responses: response.failed's
# error.code) per (client, upstream).
MID_STREAM: dict[tuple[str, str], str] = {
    ("openai", "openai"): "server_error",
    ("openai", "anthropic"): "server_error",
    ("openai", "gemini"): "server_error",
    ("anthropic", "openai"): "api_error",  # OpenAI's in-band error has no status: a server error
    ("anthropic", "anthropic"): "overloaded_error",
    ("anthropic", "gemini"): "overloaded_error",
    ("gemini", "openai"): "INTERNAL",
    ("gemini", "anthropic"): "UNAVAILABLE",
    ("gemini", "gemini"): "INTERNAL",  # passed through as the upstream sent it
    ("openai", "openai-responses"): "server_error",
    ("anthropic", "openai-responses"): "api_error",  # response.failed's code server_error: a server error
    ("gemini", "openai-responses"): "INTERNAL",
    ("openai-responses", "openai"): "server_error",  # the codes the SDK lists: overloaded is a server_error
    ("openai-responses", "anthropic"): "server_error",
    ("openai-responses", "gemini"): "server_error",
    ("openai-responses", "openai-responses"): "server_error",  # passed through
}


class StreamFailed(Exception):
    """A Responses stream that ended in ``response.failed`` or an ``error`` event (the SDK yields those
    events rather than raising): its error's code and message."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code


MID_STREAM_EXC: dict[str, type[Exception]] = {
    "openai": openai.APIError, "anthropic": anthropic.APIStatusError, "gemini": genai_errors.ServerError,
    "openai-responses": StreamFailed,
}
# "Overloaded" is 529 at Anthropic and 503 elsewhere: an upstream's overloaded status, as a client whose
# protocol spells it differently sees it (exception, status, error type; docs/protocols.md "Errors").
OVERLOADED: dict[tuple[str, str, int], tuple[type[Exception], int, str]] = {
    ("openai", "anthropic", 529): (openai.InternalServerError, 503, "server_error"),
    ("anthropic", "openai", 503): (anthropic.OverloadedError, 529, "overloaded_error"),
    ("gemini", "anthropic", 529): (genai_errors.ServerError, 503, "UNAVAILABLE"),
    ("openai-responses", "anthropic", 529): (openai.InternalServerError, 503, "server_error"),
}


# --- the three SDKs, asked the same things in their own words ----------------------------


@dataclass(frozen=True)
class Ask:
    text: str
    system: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    image: bool = False
    stream: bool = False
    think: bool = False  # ask for reasoning in the client's words (THINK_ASKED)


@dataclass
class Got:
    text: str
    calls: list[tuple[str, dict[str, Any]]]
    ids: list[str]
    stop: str | None
    usage: dict[str, int | None] = field(default_factory=dict)
    reasoning: str = ""  # OpenAI reasoning_content, Anthropic thinking blocks, Gemini thought parts, Responses summaries
    # Anthropic signatures (OpenAI: thinking_blocks; Responses: sealed in a reasoning item's encrypted_content)
    signatures: list[str] = field(default_factory=list)


class Caller:
    """One client protocol's official SDK pointed at the gateway."""

    def __init__(self, protocol: str, gw: GatewayUnderTest) -> None:
        self.protocol = protocol
        self.oai = openai.OpenAI(base_url=f"{gw.http}/v1", api_key=gw.key, max_retries=0)
        self.ant = anthropic.Anthropic(base_url=gw.http, api_key=gw.key, max_retries=0)
        self.gem = genai.Client(api_key=gw.key, http_options=types.HttpOptions(
            base_url=gw.http, retry_options=types.HttpRetryOptions(attempts=1)))

    def close(self) -> None:
        self.oai.close()
        self.ant.close()
        self.gem.close()

    def ask(self, model: str, ask: Ask) -> Got:
        fn: Callable[[str, Ask], Got] = getattr(self, f"_{self.protocol.replace('-', '_')}")
        return fn(model, ask)

    def count(self, model: str, text: str) -> tuple[int | None, dict[str, str]]:
        """The prompt's token count from the SDK's count endpoint (OpenAI has none), and the response headers."""
        if self.protocol == "anthropic":
            raw = self.ant.messages.with_raw_response.count_tokens(
                model=model, messages=[{"role": "user", "content": text}])
            return raw.parse().input_tokens, dict(raw.headers)
        assert "gemini" == self.protocol, "OpenAI has no token-count endpoint"
        r = self.gem.models.count_tokens(model=model, contents=text)
        return r.total_tokens, dict((r.sdk_http_response.headers if r.sdk_http_response else None) or {})

    # OpenAI: the first system line as ``system``, the next as ``developer`` (both are system prompts).
    def _openai(self, model: str, ask: Ask) -> Got:
        messages: list[dict[str, Any]] = [{"role": ("system", "developer")[min(i, 1)], "content": s}
                                          for i, s in enumerate(ask.system)]
        content: Any = ask.text
        if ask.image:
            content = [{"type": "text", "text": ask.text},
                       {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
        messages.append({"role": "user", "content": content})
        kw: dict[str, Any] = {"model": model, "messages": messages}
        if ask.tools:
            kw["tools"] = [{"type": "function", "function": t} for t in ask.tools]
        if ask.think:
            kw["reasoning_effort"] = "low"
        if not ask.stream:
            r = self.oai.chat.completions.create(**kw)
            msg = r.choices[0].message
            calls = msg.tool_calls or []
            blocks = getattr(msg, "thinking_blocks", None) or []  # non-standard, from Anthropic upstreams
            return Got(msg.content or "", [(c.function.name, json.loads(c.function.arguments)) for c in calls],
                       [c.id for c in calls], r.choices[0].finish_reason, _openai_usage(r.usage),
                       getattr(msg, "reasoning_content", None) or "", [b["signature"] for b in blocks])
        chunks = list(self.oai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
        return _openai_stream(chunks)

    # Responses: the first system line as ``instructions``, the next as a developer message.
    def _openai_responses(self, model: str, ask: Ask) -> Got:
        items: list[dict[str, Any]] = [{"role": "developer", "content": s} for s in ask.system[1:]]
        content: list[dict[str, Any]] = [{"type": "input_text", "text": ask.text}]
        if ask.image:
            content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"})
        items.append({"type": "message", "role": "user", "content": content})
        kw: dict[str, Any] = {"model": model, "input": items, "store": False}
        if ask.system:
            kw["instructions"] = ask.system[0]
        if ask.tools:
            kw["tools"] = [{"type": "function", "strict": False, **t} for t in ask.tools]
        if ask.think:
            kw.update(reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"])
        if not ask.stream:
            return _responses_got(self.oai.responses.create(**kw))
        with self.oai.responses.stream(**kw) as stream:
            events = list(stream)
            _check_responses_events(events)
            if events[-1].type in ("response.failed", "error"):
                err = events[-1].response.error if events[-1].type == "response.failed" else events[-1]
                raise StreamFailed(err.code if err else None, err.message if err else "")
            return _responses_got(stream.get_final_response())

    def _anthropic(self, model: str, ask: Ask) -> Got:
        content: Any = ask.text
        if ask.image:
            content = [{"type": "text", "text": ask.text},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]
        kw: dict[str, Any] = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": content}]}
        if ask.system:
            kw["system"] = [{"type": "text", "text": s} for s in ask.system]
        if ask.tools:
            kw["tools"] = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                           for t in ask.tools]
        if ask.think:
            kw.update(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048})
        if ask.stream:
            with self.ant.messages.stream(**kw) as s:
                events = [e.type for e in s]
                m = s.get_final_message()
            _check_anthropic_events(events)
        else:
            m = self.ant.messages.create(**kw)
        calls = [b for b in m.content if b.type == "tool_use"]
        u = m.usage
        usage = {"input_tokens": u.input_tokens, "cache_read_input_tokens": u.cache_read_input_tokens,
                 "cache_creation_input_tokens": u.cache_creation_input_tokens, "output_tokens": u.output_tokens}
        thinking = [b for b in m.content if b.type == "thinking"]
        return Got("".join(b.text for b in m.content if b.type == "text"), [(b.name, dict(b.input)) for b in calls],
                   [b.id for b in calls], m.stop_reason, usage, "".join(b.thinking for b in thinking),
                   [b.signature for b in thinking])

    def _gemini(self, model: str, ask: Ask) -> Got:
        parts = [types.Part(text=ask.text)]
        if ask.image:
            parts.append(types.Part.from_bytes(data=PNG, mime_type="image/png"))
        config = types.GenerateContentConfig(
            system_instruction=types.Content(parts=[types.Part(text=s) for s in ask.system]) if ask.system else None,
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**t) for t in ask.tools])]
            if ask.tools else None,
            thinking_config=types.ThinkingConfig(thinking_budget=4096, include_thoughts=True) if ask.think else None)
        contents = [types.Content(role="user", parts=parts)]
        if ask.stream:
            chunks = list(self.gem.models.generate_content_stream(model=model, contents=contents, config=config))
        else:
            chunks = [self.gem.models.generate_content(model=model, contents=contents, config=config)]
        text, thoughts, calls, ids = "", "", [], []
        for c in chunks:
            cand = c.candidates[0] if c.candidates else None
            for p in (cand.content.parts or []) if cand and cand.content else []:
                text += "" if p.thought else p.text or ""
                thoughts += (p.text or "") if p.thought else ""
                if p.function_call:
                    calls.append((p.function_call.name or "", dict(p.function_call.args or {})))
                    ids.append(p.function_call.id or "")
        last = chunks[-1]
        assert last.candidates and last.candidates[0].finish_reason, "the last chunk carries the finish reason"
        um = last.usage_metadata
        assert um is not None, "the last chunk carries the complete usage"
        usage = {"prompt_token_count": um.prompt_token_count, "cached_content_token_count": um.cached_content_token_count,
                 "candidates_token_count": um.candidates_token_count, "thoughts_token_count": um.thoughts_token_count,
                 "total_token_count": um.total_token_count}
        return Got(text, calls, ids, last.candidates[0].finish_reason.value, usage, thoughts)


def _openai_usage(u: Any) -> dict[str, int | None]:
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "cached_tokens": pd.cached_tokens if pd else None,
            "cache_write_tokens": pd.cache_write_tokens if pd else None,
            "reasoning_tokens": cd.reasoning_tokens if cd else None}


def _openai_stream(chunks: list[Any]) -> Got:
    """Accumulate an OpenAI stream, checking its framing (reference §8 T1) on the way."""
    text, reasoning, finishes, usage_chunks = "", "", [], []
    calls: dict[int, dict[str, str]] = {}
    for n, ch in enumerate(chunks):
        if ch.usage is not None:
            usage_chunks.append(ch)
        for c in ch.choices:
            assert (c.delta.role == "assistant") == (n == 0), f"role on the first chunk only (chunk {n})"
            text += c.delta.content or ""
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
            for d in c.delta.tool_calls or []:
                first = d.index not in calls
                slot = calls.setdefault(d.index, {"id": d.id or "", "name": "", "args": ""})
                fn = d.function
                assert first == bool(d.id) == bool(fn and fn.name), "id and name on a call's first fragment only"
                slot["name"] += (fn.name or "") if fn else ""
                slot["args"] += (fn.arguments or "") if fn else ""
            if c.finish_reason is not None:
                finishes.append(c.finish_reason)
    assert 1 == len(finishes), f"exactly one finish chunk, got {finishes}"
    assert [chunks[-1]] == usage_chunks and [] == chunks[-1].choices, "one usage chunk, choices: [], last"
    ordered = [calls[i] for i in sorted(calls)]
    return Got(text, [(c["name"], json.loads(c["args"])) for c in ordered], [c["id"] for c in ordered],
               finishes[0], _openai_usage(usage_chunks[0].usage), reasoning)


def _responses_got(r: Any) -> Got:
    calls = [o for o in r.output if o.type == "function_call"]
    thoughts = [o for o in r.output if o.type == "reasoning"]
    u = r.usage
    usage = {"input_tokens": u.input_tokens, "cached_tokens": u.input_tokens_details.cached_tokens,
             "cache_write_tokens": getattr(u.input_tokens_details, "cache_write_tokens", None),
             "output_tokens": u.output_tokens, "reasoning_tokens": u.output_tokens_details.reasoning_tokens,
             "total_tokens": u.total_tokens}
    return Got(r.output_text, [(c.name, json.loads(c.arguments)) for c in calls], [c.call_id for c in calls],
               r.status, usage, "\n\n".join(s.text for o in thoughts for s in o.summary),
               [next((sig for _, sig in reasoning.unseal(o.encrypted_content).get("a", [])), "") for o in thoughts])


def _check_responses_events(events: list[Any]) -> None:
    """created first, sequence numbers 0, 1, 2 …, each output item added once before its events and done
    once, one lifecycle event last."""
    assert "response.created" == events[0].type
    assert list(range(len(events))) == [e.sequence_number for e in events], [e.type for e in events]
    added: set[int] = set()
    done: set[int] = set()
    for e in events:
        index = getattr(e, "output_index", None)
        if e.type == "response.output_item.added":
            assert index not in added, e
            added.add(index)
        elif index is not None:
            assert index in added and index not in done, e
            done |= {index} if e.type == "response.output_item.done" else set()
    assert events[-1].type in ("response.completed", "response.incomplete", "response.failed", "error"), events[-1]


_ANT_RAW = {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
            "message_delta", "message_stop"}


def _check_anthropic_events(names: list[str]) -> None:
    """message_start first, blocks started and stopped in order, one message_delta, message_stop last (§8 T2)."""
    raw = [n for n in names if n in _ANT_RAW]
    assert "message_start" == raw[0] and ["message_delta", "message_stop"] == raw[-2:], raw
    body = raw[1:-2]
    while body:
        assert "content_block_start" == body[0], raw
        end = body.index("content_block_stop")
        assert set(body[1:end]) <= {"content_block_delta"}, raw
        body = body[end + 1:]


# --- what the upstream received, read in its own protocol ------------------------------------


def _g(d: dict[str, Any], camel: str) -> Any:
    """A Gemini field in camelCase or snake_case (both are valid on the wire)."""
    return d.get(camel, d.get(re.sub(r"([A-Z])", r"_\1", camel).lower()))


def _responses_texts(item: dict[str, Any]) -> list[str]:
    content = item.get("content")
    return [content] if isinstance(content, str) else [p["text"] for p in content if "text" in p]


def upstream_system(protocol: str, body: dict[str, Any]) -> list[str]:
    if protocol == "openai-responses":
        head = [body["instructions"]] if body.get("instructions") else []
        return head + [t for i in body["input"] if i.get("role") in ("system", "developer") for t in _responses_texts(i)]
    if protocol == "openai":
        return [text for m in body["messages"] if m["role"] in ("system", "developer")
                for text in ([m["content"]] if isinstance(m["content"], str) else [p["text"] for p in m["content"]])]
    if protocol == "anthropic":
        system = body.get("system") or []
        return [system] if isinstance(system, str) else [b["text"] for b in system]
    return [p["text"] for p in (_g(body, "systemInstruction") or {}).get("parts", [])]


def upstream_turn_texts(protocol: str, body: dict[str, Any]) -> list[str]:
    if protocol == "openai-responses":
        items = [{"role": "user", "content": body["input"]}] if isinstance(body["input"], str) else body["input"]
        return [t for i in items if i.get("role") in ("user", "assistant") for t in _responses_texts(i)]
    if protocol == "gemini":
        return [p["text"] for c in body["contents"] for p in c["parts"] if "text" in p]
    out = []
    for m in body["messages"]:
        if m["role"] in ("system", "developer"):
            continue
        content = m["content"]
        out += [content] if isinstance(content, str) else [p["text"] for p in content if "text" in p]
    return out


def upstream_tools(protocol: str, body: dict[str, Any]) -> list[tuple[str, dict[str, str], list[str]]]:
    """(name, {property: lower-case type}, required) of every tool definition."""
    if protocol == "openai":
        defs = [(t["function"]["name"], t["function"]["parameters"]) for t in body["tools"]]
    elif protocol == "openai-responses":
        defs = [(t["name"], t["parameters"]) for t in body["tools"] if t["type"] == "function"]
    elif protocol == "anthropic":
        defs = [(t["name"], t["input_schema"]) for t in body["tools"]]
    else:
        defs = [(d["name"], d.get("parameters") or _g(d, "parametersJsonSchema"))
                for t in body["tools"] for d in _g(t, "functionDeclarations")]
    return [(name, {k: str(v["type"]).lower() for k, v in schema["properties"].items()}, schema.get("required", []))
            for name, schema in defs]


def upstream_images(protocol: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(media type, base64 data) of every image, in the upstream's own form."""
    out = []
    if protocol == "openai-responses":
        for i in body["input"]:
            for p in i.get("content") if isinstance(i.get("content"), list) else []:
                if p["type"] == "input_image":
                    mime, _, data = p["image_url"].removeprefix("data:").partition(";base64,")
                    out.append((mime, data))
        return out
    if protocol == "gemini":
        for c in body["contents"]:
            for p in c["parts"]:
                if (blob := _g(p, "inlineData")) is not None:
                    out.append((_g(blob, "mimeType"), blob["data"]))
        return out
    for m in body["messages"]:
        for p in m["content"] if isinstance(m["content"], list) else []:
            if protocol == "openai" and p["type"] == "image_url":
                mime, _, data = p["image_url"]["url"].removeprefix("data:").partition(";base64,")
                out.append((mime, data))
            elif protocol == "anthropic" and p["type"] == "image":
                assert "base64" == p["source"]["type"]
                out.append((p["source"]["media_type"], p["source"]["data"]))
    return out


def check_native_request(protocol: str, sent: RecordedRequest, stream: bool) -> dict[str, Any]:
    """The upstream got its own endpoint and its provider key, with what its protocol requires; returns
    the body."""
    body: dict[str, Any] = sent.json()
    header, key = CREDENTIAL[protocol]
    assert key == sent.headers.get(header), "the provider key, in the header the upstream reads"
    if protocol == "openai":
        assert "/v1/chat/completions" == sent.path
        assert body.get("stream", False) is stream
        if stream:
            assert {"include_usage": True} == body["stream_options"], "usage is always asked of OpenAI"
    elif protocol == "openai-responses":
        assert "/v1/responses" == sent.path
        assert body.get("stream", False) is stream
    elif protocol == "anthropic":
        assert "/v1/messages" == sent.path
        assert isinstance(body["max_tokens"], int) and sent.headers.get("anthropic-version")
        assert body.get("stream", False) is stream
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert f"/v1beta/models/gemini-test:{method}" == sent.path
        assert (stream and "sse") == (stream and sent.query.get("alt"))
    return body


# --- the ten cases ----------------------------------------------------------------------------


@dataclass
class Env:
    client: str
    upstream: str
    gw: GatewayUnderTest
    caller: Caller

    def ask(self, ask: Ask) -> Got:
        return self.caller.ask(MODEL[self.upstream], ask)

    def sent(self, stream: bool) -> dict[str, Any]:
        return check_native_request(self.upstream, self.gw.fake.requests[-1], stream)


def _text(env: Env, stream: bool) -> None:
    env.gw.fake.push(Reply(text="Bonjour le monde, ça va ?", usage=BASIC))
    since = env.gw.last_stream_id()
    got = env.ask(Ask("Say hello in French", stream=stream))
    assert ("Bonjour le monde, ça va ?", [], END[env.client]) == (got.text, got.calls, got.stop)
    assert BASIC_SEEN[env.client] == {k: got.usage[k] for k in BASIC_SEEN[env.client]}
    assert "Say hello in French" in upstream_turn_texts(env.upstream, env.sent(stream))
    [event] = env.gw.wait_metering(since)
    assert (12, 5, True) == (event["usage"]["input"], event["usage"]["output"], event["complete"])


def case_text(env: Env) -> None:
    """A plain answer: text, natural end, usage; metered as complete."""
    _text(env, stream=False)


def case_stream_text(env: Env) -> None:
    """The same answer streamed: the SDK's accumulator gets the same text, stop and usage."""
    _text(env, stream=True)


def _tool(env: Env, stream: bool) -> None:
    env.gw.fake.push(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})], usage=BASIC))
    got = env.ask(Ask("Weather in Paris?", tools=(WEATHER,), stream=stream))
    assert ("", [("get_weather", {"city": "Paris"})], TOOL_STOP[env.client]) == (got.text, got.calls, got.stop)
    assert BASIC_SEEN[env.client] == {k: got.usage[k] for k in BASIC_SEEN[env.client]}
    check_ids(env.client, got.ids)
    assert [WEATHER_SEEN] == upstream_tools(env.upstream, env.sent(stream))


def check_ids(client: str, ids: list[str]) -> None:
    """Tool-call ids are valid for the client protocol (§8 R8) and distinct (Gemini's are optional:
    a Gemini upstream passed through to a Gemini client sends none)."""
    if client == "openai":
        assert all(re.fullmatch(r"[\x21-\x7e]{1,40}", i) for i in ids), ids
    elif client == "openai-responses":
        assert all(re.fullmatch(r"[\x21-\x7e]{1,64}", i) for i in ids), ids
    elif client == "anthropic":
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids), ids
    elif not any(ids):
        return
    assert len(set(ids)) == len(ids), ids


def case_tool(env: Env) -> None:
    """One tool call: the definition goes upstream in its form, the call comes back whole, tool stop."""
    _tool(env, stream=False)


def case_stream_tool(env: Env) -> None:
    """One streamed tool call: fragments reassemble into the same call."""
    _tool(env, stream=True)


def case_parallel_tools(env: Env) -> None:
    """Two calls in one answer, whole and streamed: both arrive, in order, with distinct ids."""
    calls = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"city": "Tokyo", "clock": "24h"})]
    for stream in (False, True):
        env.gw.fake.push(Reply(tool_calls=calls, usage=BASIC))
        got = env.ask(Ask("Weather in Paris and time in Tokyo?", tools=(WEATHER, TIME), stream=stream))
        expected = [("get_weather", {"city": "Paris"}), ("get_time", {"city": "Tokyo", "clock": "24h"})]
        assert ("", expected, TOOL_STOP[env.client]) == (got.text, got.calls, got.stop)
        check_ids(env.client, got.ids)
        assert [WEATHER_SEEN, TIME_SEEN] == upstream_tools(env.upstream, env.sent(stream))


def case_image(env: Env) -> None:
    """A base64 PNG goes upstream in the upstream's own image form, bytes intact."""
    env.gw.fake.push(Reply(text="A single pixel.", usage=BASIC))
    got = env.ask(Ask("What is in this image?", image=True))
    assert ("A single pixel.", END[env.client]) == (got.text, got.stop)
    [(mime, data)] = upstream_images(env.upstream, env.sent(False))
    assert "image/png" == mime
    if env.upstream == "gemini":  # Gemini accepts standard and URL-safe base64
        assert PNG == base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_"))
    else:  # OpenAI and Anthropic take standard base64 only
        assert PNG_B64 == data


def case_system(env: Env) -> None:
    """Two system prompts land, in order, where the upstream wants them, and nowhere else."""
    env.gw.fake.push(Reply(text="Bonjour.", usage=BASIC))
    system = ("You are terse.", "Always answer in French.")
    got = env.ask(Ask("Greet me", system=system))
    assert ("Bonjour.", END[env.client]) == (got.text, got.stop)
    body = env.sent(False)
    assert list(system) == upstream_system(env.upstream, body)
    assert ["Greet me"] == upstream_turn_texts(env.upstream, body)


def case_cache_usage(env: Env) -> None:
    """Cache and reasoning tokens reach the client in its own usage semantics, whole and streamed alike,
    and the metering event records the disjoint buckets."""
    for stream in (False, True):
        since = env.gw.last_stream_id()
        env.gw.fake.push(Reply(text="Cached answer.", usage=CACHED))
        got = env.ask(Ask("Use the cache", stream=stream))
        assert ("Cached answer.", END[env.client]) == (got.text, got.stop)
        assert CACHED_SEEN[(env.client, env.upstream)] == got.usage
        [event] = env.gw.wait_metering(since)
        assert CACHED_METERED[env.upstream] == event["usage"]
        env.gw.fake.reset()  # the next wait_metering only looks at the next request


def case_upstream_error(env: Env) -> None:
    """An upstream error is the client's own HTTP error, raised before any stream starts: a 429 keeps
    its status, type, message and retry-after; a 400 on a streamed request is an HTTP 400, not SSE."""
    exc_type, status, kind = RATE_LIMITED[env.client]
    # Every attempt gets the 429 (Envoy may retry it); a Retry-After above Envoy's bound is not waited for.
    env.gw.fake.push(Reply(error=ErrorReply(429, "slow down please", retry_after=60), times=None))
    with pytest.raises(exc_type) as info:
        env.ask(Ask("hi"))
    check_error(env.client, info.value, status, kind, "slow down please")
    assert "60" == info.value.response.headers.get("retry-after")  # type: ignore[attr-defined]
    env.gw.fake.reset()
    env.gw.fake.push(Reply(error=ErrorReply(400, "bad parameter for a stream"), times=None))
    exc_type, status, kind = INVALID[env.client]
    with pytest.raises(exc_type) as info:
        env.ask(Ask("hi", stream=True))
    check_error(env.client, info.value, status, kind, "bad parameter for a stream")


def check_error(client: str, exc: Any, status: int, kind: str, message: str) -> None:
    """An SDK's HTTP error: status, the error type (OpenAI, Anthropic) or status name (Gemini), message."""
    assert status == (exc.code if client == "gemini" else exc.status_code)
    assert message in str(exc)
    if client == "gemini":
        assert kind == exc.status
    elif client in ("openai", "openai-responses"):
        assert kind == exc.body["type"]
    else:
        assert kind == exc.body["error"]["type"]


def case_midstream_error(env: Env) -> None:
    """An upstream error after the stream started reaches the client in band: its SDK raises."""
    env.gw.fake.push(Reply(text="one two three four five six", usage=BASIC,
                           error=ErrorReply(529, "overloaded mid-stream"), error_after=3))
    since = env.gw.last_stream_id()
    with pytest.raises(MID_STREAM_EXC[env.client]) as info:
        env.ask(Ask("Count to six", stream=True))
    exc: Any = info.value
    assert "overloaded mid-stream" in str(exc)
    kind = MID_STREAM[(env.client, env.upstream)]
    if env.client == "gemini":
        assert kind == exc.status
    elif env.client == "anthropic":
        assert kind == exc.body["error"]["type"]
    elif env.client == "openai-responses":
        assert kind == exc.code
    else:
        assert kind == (exc.body or {}).get("type")
    [event] = env.gw.wait_metering(since)
    assert event["complete"] is False


CASES: dict[str, Callable[[Env], None]] = {
    "text": case_text,
    "stream_text": case_stream_text,
    "tool": case_tool,
    "stream_tool": case_stream_tool,
    "parallel_tools": case_parallel_tools,
    "image": case_image,
    "system": case_system,
    "cache_usage": case_cache_usage,
    "upstream_error": case_upstream_error,
    "midstream_error": case_midstream_error,
}
MATRIX = [(c, u, case) for c in PROTOCOLS for u in PROTOCOLS for case in CASES]


@pytest.fixture(scope="module")
def callers(gateway: GatewayUnderTest) -> Iterator[dict[str, Caller]]:
    made = {p: Caller(p, gateway) for p in PROTOCOLS}
    yield made
    for c in made.values():
        c.close()


@pytest.mark.parametrize(("client", "upstream", "case"), MATRIX, ids=[f"{c}->{u}-{k}" for c, u, k in MATRIX])
def test_matrix(gateway: GatewayUnderTest, callers: dict[str, Caller], client: str, upstream: str, case: str) -> None:
    """The client's SDK parses the answer of an upstream of any protocol, and gets it right (see CASES)."""
    CASES[case](Env(client, upstream, gateway, callers[client]))


# --- beyond the matrix ------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "upstream", "upstream_status"), list(OVERLOADED),
                         ids=[f"{c}->{u}-{s}" for c, u, s in OVERLOADED])
def test_overloaded_is_spelled_as_the_client_protocol_spells_it(
        gateway: GatewayUnderTest, callers: dict[str, Caller], client: str, upstream: str, upstream_status: int) -> None:
    """An upstream's "overloaded" status (Anthropic 529, OpenAI 503) reaches the client as its own protocol's
    overloaded error: status, error type and message (OVERLOADED)."""
    exc_type, status, kind = OVERLOADED[(client, upstream, upstream_status)]
    gateway.fake.push(Reply(error=ErrorReply(upstream_status, "busy, try later"), times=None))  # Envoy retries it
    with pytest.raises(exc_type) as info:
        callers[client].ask(MODEL[upstream], Ask("hi"))
    check_error(client, info.value, status, kind, "busy, try later")


# A token count asked across protocols: the upstream's count endpoint, and its answer (a count of 1234).
COUNTED: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("anthropic", "gemini"): ("/v1beta/models/gemini-test:countTokens", {"totalTokens": 1234}),
    ("gemini", "anthropic"): ("/v1/messages/count_tokens", {"input_tokens": 1234}),
}


@pytest.mark.parametrize(("client", "upstream"), list(COUNTED), ids=[f"{c}->{u}" for c, u in COUNTED])
def test_token_count_is_asked_of_an_upstream_that_can_count(gateway: GatewayUnderTest, callers: dict[str, Caller],
                                                            client: str, upstream: str) -> None:
    """Anthropic <-> Gemini: the count request goes to the upstream's count endpoint, translated and with its
    provider key, and the upstream's own count comes back, not flagged as an estimate."""
    path, answer = COUNTED[(client, upstream)]
    gateway.fake.push(Reply(body=answer))
    n, headers = callers[client].count(MODEL[upstream], "one two three")
    sent = gateway.fake.requests[-1]
    assert (path, 1234, None) == (sent.path, n, headers.get("x-tokengate-token-count"))
    body = sent.json()
    assert ["one two three"] == upstream_turn_texts(upstream, body.get("generateContentRequest", body))
    header, key = CREDENTIAL[upstream]
    assert key == sent.headers.get(header)


@pytest.mark.parametrize("client", ["anthropic", "gemini"])
def test_token_count_for_an_openai_model_is_a_flagged_estimate(gateway: GatewayUnderTest,
                                                              callers: dict[str, Caller], client: str) -> None:
    """OpenAI has no count endpoint: the gateway estimates (about 4 characters a token), says so in
    x-tokengate-token-count, and sends nothing upstream."""
    n, headers = callers[client].count("gpt-test", "x" * 400)
    assert "estimated" == headers.get("x-tokengate-token-count")
    assert n is not None and 100 <= n <= 110
    assert [] == gateway.fake.requests


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_image_url_for_a_gemini_model_is_a_clear_400(gateway: GatewayUnderTest, callers: dict[str, Caller],
                                                     client: str) -> None:
    """Gemini upstreams take inline images only: an image URL is refused with a 400 that says what to do."""
    url = "https://example.com/cat.png"
    if client == "openai":
        with pytest.raises(openai.BadRequestError) as oai_exc:
            callers["openai"].oai.chat.completions.create(model="gemini-test", messages=[{"role": "user", "content": [
                {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
        body: Any = oai_exc.value.body
        assert "invalid_request_error" == body["type"]
        message = body["message"]
    else:
        with pytest.raises(anthropic.BadRequestError) as ant_exc:
            callers["anthropic"].ant.messages.create(model="gemini-test", max_tokens=10, messages=[{
                "role": "user", "content": [{"type": "text", "text": "what is this?"},
                                            {"type": "image", "source": {"type": "url", "url": url}}]}])
        body = ant_exc.value.body
        assert "invalid_request_error" == body["error"]["type"]
        message = body["error"]["message"]
    assert "media by URL cannot be sent to a Gemini upstream yet; send it inline as base64 (a data: URL)" == message
    assert [] == gateway.fake.requests, "nothing reaches the upstream"


# Reasoning asked in each client's words (Caller: Ask.think), as each upstream must receive it.
THINK_ASKED: dict[tuple[str, str], tuple[str, Any]] = {
    ("openai", "openai"): ("reasoning_effort", "low"),
    ("openai", "anthropic"): ("thinking", {"type": "enabled", "budget_tokens": 1024}),
    ("openai", "gemini"): ("thinkingConfig", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("anthropic", "openai"): ("reasoning_effort", "medium"),
    ("anthropic", "anthropic"): ("thinking", {"type": "enabled", "budget_tokens": 2048}),
    ("anthropic", "gemini"): ("thinkingConfig", {"thinkingBudget": 2048, "includeThoughts": True}),
    ("gemini", "openai"): ("reasoning_effort", "high"),
    ("gemini", "anthropic"): ("thinking", {"type": "enabled", "budget_tokens": 4096}),
    ("gemini", "gemini"): ("thinkingConfig", {"thinkingBudget": 4096, "includeThoughts": True}),
    ("openai-responses", "openai"): ("reasoning_effort", "low"),
    ("openai-responses", "anthropic"): ("thinking", {"type": "enabled", "budget_tokens": 1024}),
    ("openai-responses", "gemini"): ("thinkingConfig", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("openai-responses", "openai-responses"): ("reasoning", {"effort": "low", "summary": "auto"}),
    ("openai", "openai-responses"): ("reasoning", {"effort": "low", "summary": "auto"}),
    ("anthropic", "openai-responses"): ("reasoning", {"effort": "medium", "summary": "auto"}),
    ("gemini", "openai-responses"): ("reasoning", {"effort": "high", "summary": "auto"}),
}
PAIRS = [(c, u) for c in PROTOCOLS for u in PROTOCOLS]
PAIR_IDS = [f"{c}->{u}" for c, u in PAIRS]


def _thinking_asked(protocol: str, body: dict[str, Any]) -> tuple[str, Any]:
    if protocol == "gemini":  # google-genai itself sends snake_case
        config = _g(_g(body, "generationConfig"), "thinkingConfig")
        return "thinkingConfig", {re.sub(r"_(\w)", lambda m: m[1].upper(), k): v for k, v in config.items()}
    key = {"openai": "reasoning_effort", "openai-responses": "reasoning"}.get(protocol, "thinking")
    return key, body.get(key)


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_reasoning_is_asked_and_shown_apart_from_the_answer(gateway: GatewayUnderTest, callers: dict[str, Caller],
                                                           client: str, upstream: str, stream: bool) -> None:
    """Reasoning settings map to the upstream's (THINK_ASKED); its reasoning reaches the client as reasoning
    (OpenAI reasoning_content, Anthropic thinking, Gemini thought parts, Responses reasoning summaries), never
    inside the answer text, and an Anthropic signature only ever comes from Anthropic (other upstreams: an
    empty signature; a Responses client gets it sealed in the reasoning item's encrypted_content)."""
    gateway.fake.push(Reply(text="The answer.", reasoning="Let me think.", usage=Usage(input=5, output=3, reasoning=6)))
    got = callers[client].ask(MODEL[upstream], Ask("Think first", stream=stream, think=True))
    assert ("The answer.", "Let me think.", END[client]) == (got.text, got.reasoning, got.stop)
    seen = {"openai": {"completion_tokens": 9, "reasoning_tokens": 6}, "anthropic": {"output_tokens": 9},
            "gemini": {"candidates_token_count": 3, "thoughts_token_count": 6},
            "openai-responses": {"output_tokens": 9, "reasoning_tokens": 6}}[client]
    assert seen == {k: got.usage[k] for k in seen}
    signed = [signature("Let me think.")] if upstream == "anthropic" else [""]
    if client in ("anthropic", "openai-responses"):
        assert signed == got.signatures
    elif client == "openai" and not stream:
        assert [s for s in signed if s] == got.signatures, "thinking_blocks only carry real signatures"
    assert THINK_ASKED[(client, upstream)] == _thinking_asked(upstream, gateway.fake.requests[-1].json())


def test_anthropic_thinking_replays_byte_exact_through_an_openai_client(gateway: GatewayUnderTest,
                                                                       callers: dict[str, Caller]) -> None:
    """An OpenAI client that sends back the thinking_blocks it got from an Anthropic model has them replayed
    to Anthropic unchanged, before the tool_use, signature and all (reference §8 R13)."""
    oai = callers["openai"].oai
    gateway.fake.push(Reply(reasoning="Plan: call the tool.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = oai.chat.completions.create(model="claude-test", reasoning_effort="low", tools=[
        {"type": "function", "function": WEATHER}], messages=[{"role": "user", "content": "Weather in Paris?"}])
    msg = first.choices[0].message.model_dump(exclude_none=True)
    assert [{"type": "thinking", "thinking": "Plan: call the tool.", "signature": signature("Plan: call the tool.")}] \
        == msg["thinking_blocks"]
    call_id = msg["tool_calls"][0]["id"]
    gateway.fake.push(Reply(text="18C in Paris."))
    oai.chat.completions.create(model="claude-test", reasoning_effort="low", tools=[
        {"type": "function", "function": WEATHER}], messages=[
        {"role": "user", "content": "Weather in Paris?"}, msg,
        {"role": "tool", "tool_call_id": call_id, "content": "18C"}])
    sent = gateway.fake.requests[-1]
    assert [{"type": "thinking", "thinking": "Plan: call the tool.", "signature": signature("Plan: call the tool.")},
            {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}] \
        == sent.json()["messages"][1]["content"]
    assert b'"signature":"' + signature("Plan: call the tool.").encode() + b'"' in sent.body


def test_gemini_call_replayed_through_another_protocol_gets_the_documented_bypass_signature(
        gateway: GatewayUnderTest, callers: dict[str, Caller]) -> None:
    """Gemini thought signatures do not survive a trip through an OpenAI client (no gateway-side store): the
    replayed call carries Google's skip_thought_signature_validator, and the unsigned reasoning is not replayed."""
    oai = callers["openai"].oai
    # the fake Gemini signs the first call of an answer with reasoning, as Gemini does
    gateway.fake.push(Reply(reasoning="Plan.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = oai.chat.completions.create(model="gemini-test", tools=[{"type": "function", "function": WEATHER}],
                                        messages=[{"role": "user", "content": "Weather in Paris?"}])
    msg = first.choices[0].message.model_dump(exclude_none=True)
    gateway.fake.push(Reply(text="18C."))
    oai.chat.completions.create(model="gemini-test", tools=[{"type": "function", "function": WEATHER}], messages=[
        {"role": "user", "content": "Weather in Paris?"}, msg,
        {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "18C"}])
    model_turn = gateway.fake.requests[-1].json()["contents"][1]
    assert {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                        "thoughtSignature": "skip_thought_signature_validator"}]} == model_turn


# A stream the upstream ends cleanly (complete HTTP body) without its terminal event, per upstream protocol.
UNFINISHED: dict[str, list[dict[str, Any]]] = {
    "openai": [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "partial"}, "finish_reason": None}]}],
    "anthropic": [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                        "model": "claude-test", "content": [], "stop_reason": None,
                                                        "stop_sequence": None,
                                                        "usage": {"input_tokens": 3, "output_tokens": 1}}},
                  {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}],
    "gemini": [{"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}}],
    "openai-responses": [
        {"type": "response.created", "sequence_number": 0, "response": {
            "id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "gpt-resp-test",
            "output": [], "usage": None}},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {
            "id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
        {"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": "partial", "logprobs": []}],
}


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
def test_stream_ended_early_by_the_upstream_is_an_error_not_a_success(
        gateway: GatewayUnderTest, callers: dict[str, Caller], client: str, upstream: str) -> None:
    """An upstream stream that ends without its terminal event (no finish, no [DONE] / message_stop) becomes
    an in-band error the client's SDK raises, never a made-up finish (reference §8 T6)."""
    gateway.fake.push(Reply(events=UNFINISHED[upstream]))
    since = gateway.last_stream_id()
    with pytest.raises(MID_STREAM_EXC[client] if client != "gemini" else genai_errors.APIError) as info:
        callers[client].ask(MODEL[upstream], Ask("hi", stream=True))
    assert "upstream stream ended before it finished" in str(info.value)
    [event] = gateway.wait_metering(since)
    assert event["complete"] is False


CUT_PAIRS = [("openai", "anthropic"), ("anthropic", "gemini"), ("gemini", "openai"), ("anthropic", "anthropic"),
             ("openai-responses", "anthropic"), ("openai", "openai-responses")]


@pytest.mark.parametrize(("client", "upstream"), CUT_PAIRS, ids=[f"{c}->{u}" for c, u in CUT_PAIRS])
def test_stream_cut_by_the_upstream_is_never_a_success(gateway: GatewayUnderTest, callers: dict[str, Caller],
                                                     client: str, upstream: str) -> None:
    """An upstream connection lost mid-stream breaks the client's stream (Envoy resets it; the SDK raises a
    transport error) and is metered as incomplete. When the cut comes while a cross-protocol attempt's
    response headers are still being processed, Envoy counts it as a reset before headers: it retries,
    and the client gets a 502 in its own shape (reference §8 T6)."""
    gateway.fake.push(Reply(text="one two three four five six", usage=BASIC, disconnect_after=3, times=None))
    since = gateway.last_stream_id()
    with pytest.raises(Exception) as info:  # noqa: B017 - each SDK has its own transport error type
        callers[client].ask(MODEL[upstream], Ask("hi", stream=True))
    assert not isinstance(info.value, AssertionError)
    [event] = gateway.wait_metering(since)
    assert not (event["complete"] and event["status"] == 200), event


def _cancelled_upstream_requests(gw: GatewayUnderTest) -> int:
    """Envoy's count of upstream connections it closed with a request still active (all provider clusters)."""
    stats = httpx.get(f"{gw.admin}/stats", params={"filter": "upstream_cx_destroy_local_with_active_rq$"}).text
    return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines()
               if line.strip() and not line.startswith("cluster.translator."))


@pytest.mark.parametrize("upstream", PROTOCOLS)
def test_client_disconnect_cancels_the_upstream_request(gateway: GatewayUnderTest, upstream: str) -> None:
    """A client that goes away mid-stream makes Envoy cancel the upstream request at once, and the request is
    metered as cut short (reference §8 T9)."""
    gateway.fake.push(Reply(text=" ".join(["word"] * 100), delay_between=0.05))
    before, since = _cancelled_upstream_requests(gateway), gateway.last_stream_id()
    body = {"model": MODEL[upstream], "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    with httpx.stream("POST", f"{gateway.http}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {gateway.key}"}) as r:
        next(r.iter_bytes())  # the stream is running: leave
    [event] = gateway.wait_metering(since)
    assert (False, True) == (event["complete"], event["cut_short"])
    deadline = time.monotonic() + 5  # far less than the 5 s the upstream would still stream
    while _cancelled_upstream_requests(gateway) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert before + 1 == _cancelled_upstream_requests(gateway)


def test_sdk_auth_and_path_variants_reach_the_model(gateway: GatewayUnderTest) -> None:
    """Anthropic's Bearer token and beta namespace (?beta=true), google-genai's v1alpha API and a models/
    prefix all work across protocols; Anthropic upstreams get anthropic-version (reference §8 R15)."""
    gateway.fake.push(Reply(text="beta ok"), Reply(text="alpha ok"))
    with anthropic.Anthropic(base_url=gateway.http, auth_token=gateway.key, max_retries=0) as ant:
        m = ant.beta.messages.create(model="gemini-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "beta ok" == "".join(b.text for b in m.content if b.type == "text")
    gem = genai.Client(api_key=gateway.key, http_options=types.HttpOptions(
        base_url=gateway.http, api_version="v1alpha", retry_options=types.HttpRetryOptions(attempts=1)))
    try:
        r = gem.models.generate_content(model="models/claude-test", contents="hi")
    finally:
        gem.close()
    assert "alpha ok" == (r.candidates or [])[0].content.parts[0].text  # type: ignore[index, union-attr]
    sent = gateway.fake.requests
    assert "/v1beta/models/gemini-test:generateContent" == sent[0].path
    assert ("/v1/messages", "claude-test") == (sent[1].path, sent[1].json()["model"])
    assert sent[1].headers.get("anthropic-version")
