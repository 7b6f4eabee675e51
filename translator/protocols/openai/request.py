"""OpenAI Chat Completions requests <-> IR.

Rules (decode, OpenAI client):
- ``system`` and ``developer`` messages, wherever they are, become the IR system
  prompt in order (their position in the conversation is not kept).
- ``n`` > 1, ``file_id`` files, legacy ``function`` messages and non-function tools
  are refused with 400. ``logprobs``, ``logit_bias``, ``metadata``, ``store``,
  ``service_tier``, ``prediction``, ``prompt_cache_key`` and ``stream_options`` are
  dropped (``include_usage`` is the caller's ``response_translator`` argument).
- Tool-call ``arguments`` must be a JSON object (``""`` counts as ``{}``), else 400.
- Non-standard ``reasoning_content`` / ``thinking_blocks`` on assistant history are
  read (LiteLLM convention); only signed Anthropic blocks can be replayed upstream.

Rules (encode, OpenAI upstream):
- One system message (text parts when there were several) first; a system message from
  inside the conversation (``ir.SystemText``) stays a ``system`` message where it was.
- ``user`` longer than OpenAI's 64 characters (Claude Code's ``metadata.user_id`` is a JSON
  object of ~150) is sent as a stable ``tg-`` + hash of it.
- Tool results become ``tool`` messages before the rest of their user turn; an
  error result is sent as ``{"error": <text>}`` (OpenAI has no error flag); images
  in a tool result follow in a user message (tool messages are text-only).
- ``top_k`` and thinking history are dropped; stop sequences beyond 4 are dropped.
- ``max_completion_tokens`` carries the limit; ids longer than 40 characters are
  replaced by a stable hash (calls and results alike).
- For a provider with the ``reasoning_content`` quirk (``Request.quirks``; the other quirks are
  ``quirks.py``'s), thinking history is sent back as assistant ``reasoning_content``, and an assistant
  message with tool calls always has one (``""`` when no thinking was kept): DeepSeek's thinking mode
  refuses a tool-call turn without it.
"""

from __future__ import annotations

import re
from typing import Any

from translator import ir
from translator.errors import BadRequest
from translator.ir import Json, Media, Message, Role, SystemText, Text, Thinking, ToolCall, ToolResult

_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")
_BAD_ID = re.compile(r"[^\x21-\x7e]")
MAX_STOP = 4
MAX_USER = 64
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def tool_name(name: str) -> str:
    return ir.fit_name(name, _BAD_NAME, 64)


def call_id(raw: str) -> str:
    return ir.fit_id(raw, _BAD_ID, 40)


# --- decode -------------------------------------------------------------------------


def _content_parts(content: Any, where: str) -> list[ir.Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[ir.Part] = []
    for i, raw in enumerate(ir.as_list(content, where)):
        p = ir.as_dict(raw, f"{where}[{i}]")
        kind = p.get("type")
        if kind in ("text", "refusal"):
            text = p.get(kind)
            if not isinstance(text, str):
                raise BadRequest(f"{where}[{i}].{kind} must be a string")
            if text:
                parts.append(Text(text))
        elif kind == "image_url":
            url = ir.as_dict(p.get("image_url"), f"{where}[{i}].image_url").get("url")
            if not isinstance(url, str):
                raise BadRequest(f"{where}[{i}].image_url.url must be a string")
            parts.append(_media_from_url(url, None))
        elif kind == "input_audio":
            audio = ir.as_dict(p.get("input_audio"), f"{where}[{i}].input_audio")
            fmt = audio.get("format")
            if fmt not in _AUDIO or not isinstance(audio.get("data"), str):
                raise BadRequest(f"{where}[{i}].input_audio needs data and format wav or mp3")
            parts.append(Media(_AUDIO[fmt], data=audio["data"]))
        elif kind == "file":
            f = ir.as_dict(p.get("file"), f"{where}[{i}].file")
            if not isinstance(f.get("file_data"), str):
                raise BadRequest(f"{where}[{i}].file: only inline file_data can be converted")
            parts.append(_media_from_url(f["file_data"], f.get("filename")))
        else:
            raise BadRequest(f"{where}[{i}]: content part type {kind!r} cannot be converted")
    return parts


def _media_from_url(url: str, filename: Any) -> Media:
    name = filename if isinstance(filename, str) else None
    inline = ir.parse_data_url(url)
    if inline is not None:
        return Media(inline[0], data=inline[1], filename=name)
    if url.startswith("data:"):
        raise BadRequest("data URLs must be base64: data:<mime>;base64,<data>")
    guessed = "application/pdf" if url.lower().split("?")[0].endswith(".pdf") else "image/*"
    return Media(guessed, url=url, filename=name)


def _assistant(m: Json, where: str) -> list[ir.Part]:
    parts: list[ir.Part] = []
    for j, b in enumerate(ir.as_list(m.get("thinking_blocks"), f"{where}.thinking_blocks")):
        b = ir.as_dict(b, f"{where}.thinking_blocks[{j}]")
        if b.get("type") == "redacted_thinking":
            parts.append(Thinking("", redacted=str(b.get("data", ""))))
        else:
            parts.append(Thinking(str(b.get("thinking", "")), signature=b.get("signature") or None))
    if not parts and isinstance(m.get("reasoning_content"), str) and m["reasoning_content"]:
        parts.append(Thinking(m["reasoning_content"]))
    parts += _content_parts(m.get("content"), f"{where}.content")
    if isinstance(m.get("refusal"), str) and m["refusal"]:
        parts.append(Text(m["refusal"]))
    for j, tc in enumerate(ir.as_list(m.get("tool_calls"), f"{where}.tool_calls")):
        tc = ir.as_dict(tc, f"{where}.tool_calls[{j}]")
        fn = ir.as_dict(tc.get("function"), f"{where}.tool_calls[{j}].function")
        raw_args = fn.get("arguments", "")
        args = ir.parse_args(raw_args) if isinstance(raw_args, str) else None
        if args is None:
            raise BadRequest(f"{where}.tool_calls[{j}].function.arguments must be a JSON object")
        parts.append(ToolCall(str(tc.get("id") or f"call_{j}"), str(fn.get("name", "")), args))
    return parts


def decode_request(body: Json) -> ir.Request:
    system: list[Text] = []
    messages: list[Message] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for Gemini
    for i, raw in enumerate(ir.as_list(body.get("messages"), "messages")):
        m = ir.as_dict(raw, f"messages[{i}]")
        role, where = m.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            system += [p for p in _content_parts(m.get("content"), where) if isinstance(p, Text)]
        elif role == "user":
            messages.append(Message(Role.USER, _content_parts(m.get("content"), where)))
        elif role == "assistant":
            parts = _assistant(m, where)
            names.update((p.id, p.name) for p in parts if isinstance(p, ToolCall))
            messages.append(Message(Role.ASSISTANT, parts))
        elif role == "tool":
            cid = str(m.get("tool_call_id", ""))
            content = [p for p in _content_parts(m.get("content"), where)
                       if isinstance(p, Text | Media)]
            messages.append(Message(Role.USER, [ToolResult(cid, names.get(cid), content)]))
        else:
            raise BadRequest(f"{where}: role {role!r} cannot be converted")
    if not messages:
        raise BadRequest("messages must contain at least one user or assistant message")
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise BadRequest("n > 1 cannot be converted to another provider's protocol", param="n")
    req = ir.Request(ir.merge_turns(messages), system=system)
    _decode_options(body, req)
    return req


def _decode_options(body: Json, req: ir.Request) -> None:
    for j, t in enumerate(ir.as_list(body.get("tools"), "tools")):
        t = ir.as_dict(t, f"tools[{j}]")
        if t.get("type", "function") != "function":
            raise BadRequest(f"tools[{j}]: tool type {t.get('type')!r} cannot be converted")
        fn = ir.as_dict(t.get("function"), f"tools[{j}].function")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        req.tools.append(ir.ToolDef(str(fn.get("name", "")), fn.get("description"),
                                    ir.as_dict(params, f"tools[{j}].parameters"),
                                    fn.get("strict")))
    req.tool_choice = _decode_choice(body.get("tool_choice"))
    if isinstance(body.get("parallel_tool_calls"), bool):
        req.parallel_tool_calls = body["parallel_tool_calls"]
    for key in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(key), int):
            req.max_tokens = body[key]
            break
    req.temperature = ir.as_number(body.get("temperature"), "temperature")
    req.top_p = ir.as_number(body.get("top_p"), "top_p")
    req.seed = ir.as_number(body.get("seed"), "seed", integer=True)
    req.presence_penalty = ir.as_number(body.get("presence_penalty"), "presence_penalty")
    req.frequency_penalty = ir.as_number(body.get("frequency_penalty"), "frequency_penalty")
    stop = body.get("stop")
    req.stop = [stop] if isinstance(stop, str) else [s for s in ir.as_list(stop, "stop")]
    req.response_format = _decode_format(body.get("response_format"))
    if isinstance(body.get("reasoning_effort"), str):
        req.reasoning = ir.Reasoning(effort=body["reasoning_effort"])
    req.user = body.get("user") if isinstance(body.get("user"), str) else None


def _decode_choice(choice: Any) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(ir.ToolMode(choice))
    c = ir.as_dict(choice, "tool_choice")
    if c.get("type") == "function":
        return ir.ToolChoice(ir.ToolMode.REQUIRED, (str(c["function"]["name"]),))
    if c.get("type") == "allowed_tools":
        allowed = ir.as_dict(c.get("allowed_tools"), "tool_choice.allowed_tools")
        names = tuple(str(t["function"]["name"]) for t in allowed.get("tools", []))
        mode = ir.ToolMode.REQUIRED if allowed.get("mode") == "required" else ir.ToolMode.AUTO
        return ir.ToolChoice(mode, names)
    raise BadRequest(f"tool_choice {choice!r} cannot be converted", param="tool_choice")


def _decode_format(fmt: Any) -> ir.ResponseFormat | None:
    if fmt is None:
        return None
    f = ir.as_dict(fmt, "response_format")
    if f.get("type") == "json_schema":
        js = ir.as_dict(f.get("json_schema"), "response_format.json_schema")
        return ir.ResponseFormat("json_schema", js.get("schema") or {}, js.get("name"),
                                 js.get("strict"))
    if f.get("type") in ("text", "json_object"):
        return ir.ResponseFormat(f["type"])
    raise BadRequest(f"response_format type {f.get('type')!r} cannot be converted")


# --- encode -------------------------------------------------------------------------


def _part(p: Text | Media) -> Json:
    if isinstance(p, Text):
        return {"type": "text", "text": p.text}
    kind = ir.media_kind(p.media_type)
    if kind == "audio":
        fmt = {v: k for k, v in _AUDIO.items()}.get(p.media_type)
        if fmt is None or p.data is None:
            raise BadRequest(f"OpenAI accepts inline wav or mp3 audio only, not {p.media_type}")
        return {"type": "input_audio", "input_audio": {"data": p.data, "format": fmt}}
    url = p.url if p.data is None else f"data:{p.media_type};base64,{p.data}"
    if kind == "pdf":
        if p.data is None:
            raise BadRequest("OpenAI cannot fetch a PDF by URL; send it inline")
        return {"type": "file", "file": {"file_data": url, "filename": p.filename or "file.pdf"}}
    if kind != "image":
        raise BadRequest(f"media type {p.media_type} cannot be sent to OpenAI")
    return {"type": "image_url", "image_url": {"url": url}}


def _content(parts: list[Text | Media]) -> str | list[Json]:
    if all(isinstance(p, Text) for p in parts) and len(parts) <= 1:
        return ir.text_of(parts)
    return [_part(p) for p in parts]


def _encode_user(m: Message) -> list[Json]:
    """Tool messages first (OpenAI wants them right after the calls), then the turn's user content,
    split where a system message sat in it."""
    out: list[Json] = []
    rest: list[Text | Media] = []
    for p in m.parts:
        if isinstance(p, ToolResult):
            text = [c for c in p.content if isinstance(c, Text)]
            body: str | list[Json] = _content(list(text)) if text else ""
            if p.is_error:
                body = ir.dumps({"error": ir.text_of(text)})
            out.append({"role": "tool", "tool_call_id": call_id(p.call_id), "content": body})
            rest += [c for c in p.content if isinstance(c, Media)]
    for p in m.parts:
        if isinstance(p, SystemText):
            if rest:
                out.append({"role": "user", "content": _content(rest)})
                rest = []
            out.append({"role": "system", "content": p.text})
        elif isinstance(p, Text | Media):
            rest.append(p)
    if rest:
        out.append({"role": "user", "content": _content(rest)})
    return out


def _encode_assistant(m: Message, reasoning: bool) -> Json:
    text = ir.text_of(m.parts)
    out: Json = {"role": "assistant", "content": text or None}
    calls = [{"id": call_id(p.id), "type": "function",
              "function": {"name": p.name, "arguments": ir.dumps(p.arguments)}}
             for p in m.parts if isinstance(p, ToolCall)]
    if calls:
        out["tool_calls"] = calls
    thought = "".join(p.text for p in m.parts if isinstance(p, Thinking) and p.redacted is None)
    if reasoning and (thought or calls):
        out["reasoning_content"] = thought
    if any(isinstance(p, Media) for p in m.parts):
        raise BadRequest("assistant messages with media cannot be sent to OpenAI")
    return out


def encode_request(req: ir.Request, model: str, stream: bool) -> Json:
    messages: list[Json] = []
    if req.system:
        sys_content: Any = req.system[0].text if len(req.system) == 1 else [
            {"type": "text", "text": t.text} for t in req.system]
        messages.append({"role": "system", "content": sys_content})
    for m in req.messages:
        if m.role is Role.USER:
            messages += _encode_user(m)
        else:
            messages.append(_encode_assistant(m, "reasoning_content" in req.quirks))
    body: Json = {"model": model, "messages": messages}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if req.tools:
        body["tools"] = [{"type": "function", "function": _fn(t)} for t in req.tools]
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice is not None:
        body["tool_choice"] = _encode_choice(req.tool_choice)
    user = req.user if req.user is None or len(req.user) <= MAX_USER else f"tg-{ir.short_hash(req.user, n=40)}"
    opts = {"max_completion_tokens": req.max_tokens, "temperature": req.temperature,
            "top_p": req.top_p, "seed": req.seed, "presence_penalty": req.presence_penalty,
            "frequency_penalty": req.frequency_penalty, "user": user}
    body.update({k: v for k, v in opts.items() if v is not None})
    if req.stop:
        body["stop"] = req.stop[:MAX_STOP]
    if req.response_format is not None:
        body["response_format"] = _encode_format(req.response_format)
    if req.reasoning is not None:
        body["reasoning_effort"] = req.reasoning.as_effort()
    return body


def _fn(t: ir.ToolDef) -> Json:
    fn: Json = {"name": t.name, "parameters": t.parameters}
    if t.description:
        fn["description"] = t.description
    if t.strict is not None:
        fn["strict"] = t.strict
    return fn


def _encode_choice(c: ir.ToolChoice) -> Any:
    if not c.names or c.mode is ir.ToolMode.NONE:
        return c.mode.value
    if c.mode is ir.ToolMode.REQUIRED and len(c.names) == 1:
        return {"type": "function", "function": {"name": c.names[0]}}
    return {"type": "allowed_tools", "allowed_tools": {
        "mode": c.mode.value, "tools": [{"type": "function", "function": {"name": n}}
                                        for n in c.names]}}


def _encode_format(f: ir.ResponseFormat) -> Json:
    if f.kind != "json_schema":
        return {"type": f.kind}
    js: Json = {"name": f.name or "structured_output", "schema": f.schema or {}}
    if f.strict is not None:
        js["strict"] = f.strict
    return {"type": "json_schema", "json_schema": js}
