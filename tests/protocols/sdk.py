"""The official SDKs as judges: feed them translated bytes over a mock transport."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types as gtypes

from core.protocols import Protocol
from translator.protocols.convert import response_translator


def _transport(body: bytes, status: int = 200, sse: bool = True) -> httpx2.MockTransport:
    ctype = "text/event-stream" if sse else "application/json"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": ctype})

    return httpx2.MockTransport(handler)


def openai_client(body: bytes, status: int = 200, sse: bool = True) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="k",
        base_url="http://gw/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=_transport(body, status, sse)),
    )


def anthropic_client(body: bytes, status: int = 200, sse: bool = True) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="k",
        base_url="http://gw",
        max_retries=0,
        http_client=httpx2.Client(transport=_transport(body, status, sse)),
    )


def gemini_client(body: bytes, status: int = 200, sse: bool = True) -> genai.Client:
    opts = gtypes.HttpOptions(
        base_url="http://gw", httpx_client=httpx2.Client(transport=_transport(body, status, sse))
    )
    return genai.Client(api_key="k", http_options=opts)


def openai_chunks(body: bytes) -> list[openai.types.chat.ChatCompletionChunk]:
    stream = openai_client(body).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    return list(stream)


def anthropic_message(body: bytes) -> anthropic.types.Message:
    with anthropic_client(body).messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        return s.get_final_message()


def gemini_chunks(body: bytes) -> list[gtypes.GenerateContentResponse]:
    return list(gemini_client(body).models.generate_content_stream(model="m", contents="hi"))


def translate_stream(
    client: Protocol, upstream: Protocol, chunks: list[bytes], **kw: Any
) -> tuple[bytes, Any]:
    t = response_translator(
        client,
        upstream,
        stream=True,
        client_model="client-model",
        include_usage=kw.pop("include_usage", True),
        created=1700000000,
        **kw,
    )
    out = b"".join(t.feed(c) for c in chunks) + t.flush()
    assert t.flush() == b""
    return out, t


def accumulate_openai(chunks: list[openai.types.chat.ChatCompletionChunk]) -> dict[str, Any]:
    """Text, reasoning, tool calls (by index), finish reason and usage of an OpenAI stream."""
    text, reasoning, finish, usage = "", "", None, None
    tools: dict[int, dict[str, str]] = {}
    for c in chunks:
        if c.usage is not None:
            usage = c.usage.model_dump(exclude_none=True)
        for ch in c.choices:
            text += ch.delta.content or ""
            reasoning += getattr(ch.delta, "reasoning_content", None) or ""
            for tc in ch.delta.tool_calls or []:
                slot = tools.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
    return {
        "text": text,
        "reasoning": reasoning,
        "tools": [tools[i] for i in sorted(tools)],
        "finish": finish,
        "usage": usage,
    }


def accumulate_gemini(chunks: list[gtypes.GenerateContentResponse]) -> dict[str, Any]:
    text, thoughts, calls, finish, usage = "", "", [], None, None
    for c in chunks:
        for cand in c.candidates or []:
            for p in (cand.content.parts if cand.content else None) or []:
                if p.function_call is not None:
                    calls.append((p.function_call.name, p.function_call.args))
                elif p.thought:
                    thoughts += p.text or ""
                else:
                    text += p.text or ""
            finish = cand.finish_reason or finish
        if c.usage_metadata is not None:
            usage = c.usage_metadata.model_dump(exclude_none=True)
    return {
        "text": text,
        "thoughts": thoughts,
        "calls": calls,
        "finish": finish.value if finish else None,
        "usage": usage,
    }
