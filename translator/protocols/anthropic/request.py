"""Anthropic Messages requests <-> IR.

Rules (decode, Anthropic client; every field Claude Code sends is listed in docs/protocols.md):
- ``cache_control`` hints, ``context_management``, ``container``, ``mcp_servers``,
  ``service_tier`` and the ``anthropic-beta`` header are dropped (no peer equivalent). Server
  tools (``web_search_*``, ``bash_*`` …) and server-tool blocks are refused with 400.
- ``system``-role messages inside ``messages`` (Claude Code's mid-conversation system
  messages) stay where they are, as ``ir.SystemText``.
- ``thinking`` enabled -> a token budget; ``adaptive`` -> ``output_config.effort``
  (``medium`` if absent); ``disabled`` -> no reasoning setting. ``output_config.effort``
  without thinking is an effort whose thoughts are not shown. ``display: omitted`` hides them.
- A thinking block whose signature is a gateway seal (``carry.py``) gives back the Gemini
  signatures it carried: the thought's own, and the function calls' of its message.
- A trailing assistant turn is a prefill here; other protocols treat it as history.

Rules (encode, Anthropic upstream):
- ``max_tokens`` defaults to ``DEFAULT_MAX_TOKENS`` (8192) and is raised to
  ``budget + 1024`` when thinking needs it; thinking budgets are at least 1024.
- Temperature is clamped to [0, 1]; with temperature set, ``top_p`` is dropped
  (newer Claude models reject both); with thinking on, temperature/top_p/top_k are
  dropped. A forced tool choice turns thinking off (Anthropic rejects the pair).
- Empty or whitespace-only text never becomes a block; turns left empty are dropped
  and the neighbours of one role merged; a ``"..."`` user turn starts a conversation
  that would start with the assistant, and ends one whose last user turn was empty.
- Thinking is replayed only with an Anthropic signature; images must be jpeg, png,
  gif or webp; audio is refused; ids are cleaned to ``[A-Za-z0-9_-]``.
- With thinking on, a tool-use loop whose first assistant message does not start with a
  signed thinking block (its client could not carry the signature: OpenAI Chat) is sent with
  thinking off, and then no assistant message of the loop keeps a thinking block: Anthropic
  refuses the first and the second ("one thinking mode per assistant turn"). With thinking
  off, a trailing assistant message (a prefill) keeps no thinking block either.
- System messages inside the conversation are appended to ``system`` in order.
- Tool history without tool definitions gets stub definitions and
  ``tool_choice: none`` (Anthropic rejects tool blocks without tools).
- ``json_object`` output has no Anthropic switch: a system line asks for JSON.
- Stop sequences made only of whitespace, ``seed`` and penalties are dropped;
  ``user`` becomes ``metadata.user_id`` unless it looks like an e-mail address.
"""

from __future__ import annotations

import re
from typing import Any

from translator import ir
from translator.errors import BadRequest
from translator.ir import Json, Media, Message, Role, SystemText, Text, Thinking, ToolCall, ToolResult
from translator.protocols import carry

DEFAULT_MAX_TOKENS = 8192
MIN_BUDGET = 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(name: str) -> str:
    return ir.fit_name(name, _BAD_NAME, 128)


def tool_id(raw: str) -> str:
    return ir.fit_id(raw, _BAD_ID, 64)


# --- decode -------------------------------------------------------------------------


def _source(block: Json, where: str) -> Media:
    src = ir.as_dict(block.get("source"), f"{where}.source")
    kind = src.get("type")
    if kind == "base64":
        return Media(str(src.get("media_type", "")), data=str(src.get("data", "")),
                     filename=block.get("title"))
    if kind == "url":
        fallback = "application/pdf" if block.get("type") == "document" else "image/*"
        return Media(fallback, url=str(src.get("url", "")), filename=block.get("title"))
    raise BadRequest(f"{where}: source type {kind!r} cannot be converted")


def _blocks(content: Any, where: str, names: dict[str, str],
            sealed: list[Json] | None = None) -> list[ir.Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[ir.Part] = []
    for i, raw in enumerate(ir.as_list(content, where)):
        b, at = ir.as_dict(raw, f"{where}[{i}]"), f"{where}[{i}]"
        kind = b.get("type")
        if kind == "text":
            if b.get("text"):
                parts.append(Text(str(b["text"])))
        elif kind in ("image", "document"):
            src = b.get("source")
            if isinstance(src, dict) and src.get("type") == "text":
                parts.append(Text(str(src.get("data", ""))))
            else:
                parts.append(_source(b, at))
        elif kind == "tool_use":
            call = ToolCall(str(b.get("id", "")), str(b.get("name", "")),
                            ir.as_dict(b.get("input", {}), f"{at}.input"))
            names[call.id] = call.name
            parts.append(call)
        elif kind == "tool_result":
            cid = str(b.get("tool_use_id", ""))
            inner = [p for p in _blocks(b.get("content") or [], f"{at}.content", names)
                     if isinstance(p, Text | Media)]
            parts.append(ToolResult(cid, names.get(cid), inner, bool(b.get("is_error"))))
        elif kind == "thinking":
            text, sig = str(b.get("thinking", "")), b.get("signature") or None
            doc = carry.unseal(sig)
            if doc is None:
                parts.append(Thinking(text, signature=sig))
            else:  # the gateway's seal: Gemini signatures travelling through this client
                if sealed is not None:
                    sealed.append(doc)
                if text or doc.get("g"):
                    parts.append(Thinking(text, gemini_signature=doc.get("g")))
        elif kind == "redacted_thinking":
            parts.append(Thinking("", redacted=str(b.get("data", ""))))
        else:
            raise BadRequest(f"{at}: content block type {kind!r} cannot be converted")
    return parts


def decode_request(body: Json) -> ir.Request:
    names: dict[str, str] = {}
    messages: list[Message] = []
    for i, raw in enumerate(ir.as_list(body.get("messages"), "messages")):
        m = ir.as_dict(raw, f"messages[{i}]")
        where = f"messages[{i}].content"
        if m.get("role") == "system":  # a mid-conversation system message: kept in place
            texts = [SystemText(p.text) for p in _blocks(m.get("content"), where, names) if isinstance(p, Text)]
            messages.append(Message(Role.USER, list(texts)))
            continue
        if m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}]: role {m.get('role')!r} cannot be converted")
        sealed: list[Json] = []
        parts = _blocks(m.get("content"), where, names, sealed)
        carry.restore_gemini(parts, sealed)
        messages.append(Message(Role(m["role"]), parts))
    if not messages:
        raise BadRequest("messages must not be empty")
    system = [p for p in _blocks(body.get("system") or [], "system", names) if isinstance(p, Text)]
    req = ir.Request(ir.merge_turns(messages), system=system)
    for j, t in enumerate(ir.as_list(body.get("tools"), "tools")):
        t = ir.as_dict(t, f"tools[{j}]")
        if t.get("type") not in (None, "custom"):
            raise BadRequest(f"tools[{j}]: server tool {t.get('type')!r} cannot be converted")
        schema = ir.as_dict(t.get("input_schema") or {"type": "object"}, f"tools[{j}].input_schema")
        req.tools.append(ir.ToolDef(str(t.get("name", "")), t.get("description"), schema,
                                    t.get("strict")))
    _decode_choice(body.get("tool_choice"), req)
    req.max_tokens = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else None
    req.temperature = ir.as_number(body.get("temperature"), "temperature")
    req.top_p = ir.as_number(body.get("top_p"), "top_p")
    req.top_k = ir.as_number(body.get("top_k"), "top_k", integer=True)
    req.stop = [str(s) for s in ir.as_list(body.get("stop_sequences"), "stop_sequences")]
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        req.user = meta["user_id"]
    _decode_output(body, req)
    return req


def _decode_choice(choice: Any, req: ir.Request) -> None:
    if choice is None:
        return
    c = ir.as_dict(choice, "tool_choice")
    modes = {"auto": ir.ToolMode.AUTO, "any": ir.ToolMode.REQUIRED, "none": ir.ToolMode.NONE,
             "tool": ir.ToolMode.REQUIRED}
    if c.get("type") not in modes:
        raise BadRequest(f"tool_choice type {c.get('type')!r} cannot be converted")
    names = (str(c.get("name")),) if c["type"] == "tool" else ()
    req.tool_choice = ir.ToolChoice(modes[c["type"]], names)
    if c.get("disable_parallel_tool_use") is True:
        req.parallel_tool_calls = False


def _decode_output(body: Json, req: ir.Request) -> None:
    config = body.get("output_config") if isinstance(body.get("output_config"), dict) else {}
    assert isinstance(config, dict)
    fmt = config.get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        req.response_format = ir.ResponseFormat("json_schema", fmt.get("schema") or {})
    thinking = body.get("thinking")
    effort = config.get("effort") if isinstance(config.get("effort"), str) else None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    show = not (isinstance(thinking, dict) and thinking.get("display") == "omitted")
    if kind == "enabled":
        assert isinstance(thinking, dict)
        budget = ir.as_number(thinking.get("budget_tokens"), "thinking.budget_tokens", integer=True)
        req.reasoning = ir.Reasoning(budget=budget or MIN_BUDGET, include_thoughts=show)
    elif kind == "adaptive":
        req.reasoning = ir.Reasoning(effort=effort or "medium", include_thoughts=show)
    elif effort is not None:  # an effort for the answer, no thinking asked: nothing to show
        req.reasoning = ir.Reasoning(effort=effort, include_thoughts=False)


# --- encode -------------------------------------------------------------------------


def _media(p: Media) -> Json:
    kind = ir.media_kind(p.media_type)
    if kind == "pdf":
        src = ({"type": "base64", "media_type": p.media_type, "data": p.data} if p.data is not None
               else {"type": "url", "url": p.url})
        return {"type": "document", "source": src}
    if kind != "image":
        raise BadRequest(f"Anthropic does not accept {p.media_type} content")
    if p.data is None:
        return {"type": "image", "source": {"type": "url", "url": p.url}}
    if p.media_type not in IMAGE_TYPES:
        raise BadRequest(f"Anthropic accepts jpeg, png, gif or webp images, not {p.media_type}")
    return {"type": "image", "source": {"type": "base64", "media_type": p.media_type,
                                        "data": p.data}}


def _block(p: ir.Part) -> Json | None:
    if isinstance(p, Text):
        return {"type": "text", "text": p.text} if p.text.strip() else None
    if isinstance(p, Media):
        return _media(p)
    if isinstance(p, Thinking):
        if p.redacted is not None:
            return {"type": "redacted_thinking", "data": p.redacted}
        if p.signature:
            return {"type": "thinking", "thinking": p.text, "signature": p.signature}
        return None  # unsigned or foreign reasoning cannot be replayed
    if isinstance(p, ToolCall):
        return {"type": "tool_use", "id": tool_id(p.id), "name": p.name, "input": p.arguments}
    content = [b for c in p.content if (b := _block(c)) is not None]
    result: Json = {"type": "tool_result", "tool_use_id": tool_id(p.call_id), "content": content}
    if p.is_error:
        result["is_error"] = True
    return result


def _messages(req: ir.Request) -> list[Json]:
    turns = [(m.role, [b for p in m.parts if (b := _block(p)) is not None]) for m in req.messages]
    ends_with_user = bool(req.messages) and req.messages[-1].role is Role.USER
    out: list[Json] = []
    for role, blocks in ir.tidy_turns(turns, lambda: {"type": "text", "text": "..."},
                                      ends_with_user=ends_with_user):
        if role is Role.USER:
            # tool results first: Anthropic pairs them with the previous turn's tool_use
            blocks.sort(key=lambda b: b["type"] != "tool_result")
        out.append({"role": role.value, "content": blocks})
    return out


def encode_request(req: ir.Request, model: str, stream: bool) -> Json:
    instructions = ir.hoist_system(req)
    messages = _messages(req)
    body: Json = {"model": model, "messages": messages}
    system = [{"type": "text", "text": t.text} for t in instructions if t.text.strip()]
    if req.response_format is not None and req.response_format.kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        body["system"] = system
    _encode_tools(req, body)
    budget = _thinking_budget(req)
    loop = _tool_loop(messages)
    unsigned = [] if budget is None or not loop or _starts_signed(messages[loop[0]]) else loop
    if budget is None and messages and messages[-1]["role"] == "assistant":
        unsigned = [len(messages) - 1]  # a prefill may not hold thinking when thinking is off
    if unsigned:  # the client could not carry the loop's signed thinking: see the module docstring
        budget = None
        for i in unsigned:
            messages[i]["content"] = [b for b in messages[i]["content"] if b["type"] not in _THINKING]
    max_tokens = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
    if budget is not None:
        max_tokens = max(max_tokens, budget + MIN_BUDGET)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if req.reasoning is not None and req.reasoning.include_thoughts is False:
            body["thinking"]["display"] = "omitted"
    body["max_tokens"] = max_tokens
    if budget is None:
        if req.temperature is not None:
            body["temperature"] = min(max(float(req.temperature), 0.0), 1.0)
        elif req.top_p is not None:
            body["top_p"] = req.top_p
        if req.top_k is not None:
            body["top_k"] = req.top_k
    stops = [s for s in req.stop if s.strip()]
    if stops:
        body["stop_sequences"] = stops
    if req.user and "@" not in req.user:
        body["metadata"] = {"user_id": req.user}
    fmt = req.response_format
    if fmt is not None and fmt.kind == "json_schema":
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {}}}
    if stream:
        body["stream"] = True
    return body


_THINKING = ("thinking", "redacted_thinking")


def _tool_loop(messages: list[Json]) -> list[int]:
    """The assistant messages of the tool-use loop the request continues (it ends with tool
    results): every one since the last user message that holds no tool result."""
    last = messages[-1] if messages else None
    if last is None or last["role"] != "user" or not any(b["type"] == "tool_result" for b in last["content"]):
        return []
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m["role"] == "user" and not any(b["type"] == "tool_result" for b in m["content"]):
            start = i + 1
            break
    return [i for i in range(start, len(messages)) if messages[i]["role"] == "assistant"]


def _starts_signed(message: Json) -> bool:
    content = message["content"]
    return bool(content) and content[0]["type"] in _THINKING


def _thinking_budget(req: ir.Request) -> int | None:
    r = req.reasoning
    forced = req.tool_choice is not None and req.tool_choice.mode is ir.ToolMode.REQUIRED
    if r is None or r.off or forced:
        return None
    return max(r.as_budget(), MIN_BUDGET)


def _encode_tools(req: ir.Request, body: Json) -> None:
    tools = [_tool(t) for t in req.tools]
    choice = req.tool_choice
    if not tools:
        used = {p.name: None for m in req.messages for p in m.parts if isinstance(p, ToolCall)}
        if not used:
            return
        tools = [{"name": n, "input_schema": {"type": "object"}} for n in used]
        choice = ir.ToolChoice(ir.ToolMode.NONE)
    body["tools"] = tools
    if choice is None and req.parallel_tool_calls is not False:
        return
    choice = choice or ir.ToolChoice(ir.ToolMode.AUTO)
    named = choice.mode is ir.ToolMode.REQUIRED and len(choice.names) == 1
    if choice.names and not named:  # allowed-tools subset: only those are offered
        body["tools"] = [t for t in tools if t["name"] in choice.names]
    out: Json
    if choice.mode is ir.ToolMode.NONE:
        out = {"type": "none"}
    elif named:
        out = {"type": "tool", "name": choice.names[0]}
    else:
        out = {"type": "any" if choice.mode is ir.ToolMode.REQUIRED else "auto"}
    if req.parallel_tool_calls is False and choice.mode is not ir.ToolMode.NONE:
        out["disable_parallel_tool_use"] = True
    body["tool_choice"] = out


def _tool(t: ir.ToolDef) -> Json:
    out: Json = {"name": t.name, "input_schema": t.parameters}
    if t.description:
        out["description"] = t.description
    if t.strict is not None:
        out["strict"] = t.strict
    return out
