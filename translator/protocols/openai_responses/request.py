"""OpenAI Responses requests (``POST /v1/responses``) <-> IR.

Rules (decode, Responses client; docs/protocols.md, "The Responses API"):
- ``instructions`` and ``system``/``developer`` messages become the IR system prompt, in order;
  ``input`` is a string (one user turn) or items: messages (``input_text``, ``input_image``,
  ``input_file``, ``input_audio``, ``output_text``, ``refusal`` parts), ``function_call`` /
  ``function_call_output``, ``custom_tool_call`` / ``custom_tool_call_output`` and ``reasoning``
  items (their ``encrypted_content`` is read only when the gateway sealed it: ``reasoning.py``).
- A ``custom`` tool (free-form input, plain text or a grammar: Codex's ``apply_patch``) becomes a
  function with one string argument, ``input``, whose description carries the grammar; a custom
  call in history is that function called with ``{"input": …}``. Its answer is turned back into a
  ``custom_tool_call`` by name (``tool_names`` marks the custom tools, ``ir.CustomToolName``).
- Refused (400): ``previous_response_id``, ``conversation``, ``prompt`` and ``background`` (they
  need state the gateway does not keep; an OpenAI Responses upstream gets them untouched, passed
  through), ``item_reference`` items, items without a peer, files by id, a ``tool_choice`` that
  forces a hosted tool.
- Dropped: hosted tools (``web_search``, ``file_search``, ``image_generation`` …) and ``namespace``
  tools — Codex declares web search and its sub-agent namespace on every request; the model simply
  cannot call them elsewhere — ``store``, ``include``, ``metadata``, ``prompt_cache_key``,
  ``client_metadata``, ``service_tier``, ``truncation``, ``text.verbosity``, ``top_logprobs``,
  ``max_tool_calls``, ``stream_options``, ``safety_identifier``, image ``detail``.

Rules (encode, Responses upstream): the system prompt is a leading ``system`` message; function
tools are sent with ``strict: false`` unless the client said otherwise (the Responses API would
default to strict); ``max_output_tokens`` is at least 16 (its minimum); ``top_k``, stop sequences,
``seed`` and penalties have no Responses field and are dropped; reasoning history without a
Responses item is dropped; ``store: false`` always (the gateway keeps nothing, so nothing is
stored upstream either).
"""

from __future__ import annotations

import re
from typing import Any

from translator import ir
from translator.errors import BadRequest
from translator.ir import Json, Media, Message, Role, Text, ToolCall, ToolResult
from translator.protocols.base import dicts
from translator.protocols.openai_responses import reasoning

_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")
_BAD_ID = re.compile(r"[^\x21-\x7e]")
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mpeg"}
MIN_OUTPUT = 16  # the smallest max_output_tokens the Responses API accepts
CUSTOM_ARG = "input"  # the one argument a custom tool has as a function
STATEFUL = ("previous_response_id", "conversation", "prompt")
PREVIOUS_RESPONSE = ("previous_response_id needs an OpenAI Responses upstream: tokengate keeps no conversation "
                     "state, so this model cannot continue a stored response. Send the whole conversation in "
                     "'input' instead (with store: false).")
_EFFORT = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "xhigh"}


def tool_name(name: str) -> str:
    return ir.fit_name(name, _BAD_NAME, 64)


def call_id(raw: str) -> str:
    return ir.fit_id(raw, _BAD_ID, 64)


def custom_parameters(fmt: Any) -> Json:
    """The function schema a custom tool becomes: one string argument, its format described."""
    f = fmt if isinstance(fmt, dict) else {}
    if f.get("type") == "grammar":
        about = (f"Free-form input, exactly as the tool takes it (not JSON), in this {f.get('syntax', '')} "
                 f"grammar:\n{f.get('definition', '')}")
    else:
        about = "Free-form text input, exactly as the tool takes it (not JSON)."
    return {"type": "object", "properties": {CUSTOM_ARG: {"type": "string", "description": about}},
            "required": [CUSTOM_ARG]}


# --- decode -------------------------------------------------------------------------


def _media_from_url(url: str, filename: str | None, where: str) -> Media:
    inline = ir.parse_data_url(url)
    if inline is not None:
        return Media(inline[0], data=inline[1], filename=filename)
    if url.startswith("data:"):
        raise BadRequest(f"{where}: data URLs must be base64: data:<mime>;base64,<data>")
    guessed = "application/pdf" if url.lower().split("?")[0].endswith(".pdf") else "image/*"
    return Media(guessed, url=url, filename=filename)


def _file(p: Json, where: str) -> Media:
    name = p.get("filename") if isinstance(p.get("filename"), str) else None
    data = p.get("file_data")
    if isinstance(data, str):
        if data.startswith("data:"):
            return _media_from_url(data, name, where)
        if name is not None and name.lower().endswith(".pdf"):
            return Media("application/pdf", data=data, filename=name)
        raise BadRequest(f"{where}.file_data: send it as a data URL (data:<mime>;base64,<data>)")
    if isinstance(p.get("file_url"), str):
        return _media_from_url(p["file_url"], name, where)
    raise BadRequest(f"{where}: only inline file_data or a file_url can be converted (not a file_id)")


def _parts(content: Any, where: str) -> list[Text | Media]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    out: list[Text | Media] = []
    for j, raw in enumerate(ir.as_list(content, where)):
        p, at = ir.as_dict(raw, f"{where}[{j}]"), f"{where}[{j}]"
        kind = p.get("type")
        if kind in ("input_text", "output_text", "text", "refusal"):
            text = p.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise BadRequest(f"{at}: a {kind} part needs its text")
            if text:
                out.append(Text(text))
        elif kind == "input_image":
            if not isinstance(p.get("image_url"), str):
                raise BadRequest(f"{at}: only an image_url (https or data:) can be converted, not a file_id")
            out.append(_media_from_url(p["image_url"], None, at))
        elif kind == "input_file":
            out.append(_file(p, at))
        elif kind == "input_audio":
            audio = ir.as_dict(p.get("input_audio"), f"{at}.input_audio")
            fmt = audio.get("format")
            if fmt not in _AUDIO or not isinstance(audio.get("data"), str):
                raise BadRequest(f"{at}.input_audio needs data and format wav or mp3")
            out.append(Media(_AUDIO[fmt], data=audio["data"]))
        else:
            raise BadRequest(f"{at}: content part type {kind!r} cannot be converted")
    return out


def _summary(item: Json) -> str:
    texts = [str(s.get("text", "")) for s in dicts(item.get("summary"))]
    if not any(texts):
        texts = [str(c.get("text", "")) for c in dicts(item.get("content"))]
    return "\n\n".join(t for t in texts if t)


class _Decoder:
    """One request's ``input`` items -> IR messages (tool names by call id, a sealed call signature)."""

    def __init__(self) -> None:
        self.system: list[Text] = []
        self.messages: list[Message] = []
        self.names: dict[str, str] = {}  # call_id -> tool name, for Gemini's functionResponse
        self.call_signature: str | None = None  # sealed in the reasoning item before the next call

    def add(self, role: Role, part: ir.Part) -> None:
        self.messages.append(Message(role, [part]))

    def item(self, item: Json, where: str) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self.message(item, where)
        elif kind in ("function_call", "custom_tool_call"):
            cid, name = str(item.get("call_id") or item.get("id") or ""), str(item.get("name", ""))
            raw = item.get("arguments", "")
            args = ({CUSTOM_ARG: str(item.get("input", ""))} if kind == "custom_tool_call"
                    else ir.parse_args(raw) if isinstance(raw, str) else None)
            if args is None:
                raise BadRequest(f"{where}.arguments must be a JSON object")
            self.names[cid] = name
            self.add(Role.ASSISTANT, ToolCall(cid, name, args, gemini_signature=self.call_signature))
            self.call_signature = None
        elif kind in ("function_call_output", "custom_tool_call_output"):
            cid = str(item.get("call_id", ""))
            self.add(Role.USER, ToolResult(cid, self.names.get(cid), _parts(item.get("output"), f"{where}.output")))
        elif kind == "reasoning":
            doc = reasoning.unseal(item.get("encrypted_content"))
            if isinstance(doc.get("n"), str):
                self.call_signature = doc["n"]
            text = _summary(item)
            if text or doc:
                for thought in reasoning.thinking_from(text, doc):
                    self.add(Role.ASSISTANT, thought)
        elif kind == "item_reference":
            raise BadRequest(f"{where}: item_reference needs conversation state tokengate does not keep; "
                             "send the item itself")
        else:
            raise BadRequest(f"{where}: item type {kind!r} cannot be converted")

    def message(self, item: Json, where: str) -> None:
        role = item.get("role")
        parts = _parts(item.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            self.system += [p for p in parts if isinstance(p, Text)]
        elif role == "user":
            self.messages.append(Message(Role.USER, list(parts)))
        elif role == "assistant":
            if any(isinstance(p, Media) for p in parts):
                raise BadRequest(f"{where}: assistant messages carry text only")
            self.messages.append(Message(Role.ASSISTANT, list(parts)))
        else:
            raise BadRequest(f"{where}: role {role!r} cannot be converted")


def decode_request(body: Json) -> ir.Request:
    for key in STATEFUL:
        if body.get(key):
            message = PREVIOUS_RESPONSE if key == "previous_response_id" else (
                f"{key} needs state kept by OpenAI: only an OpenAI Responses upstream can serve it")
            raise BadRequest(message, param=key)
    if body.get("background") is True:
        raise BadRequest("background responses need an OpenAI Responses upstream", param="background")
    d = _Decoder()
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        d.system.append(Text(instructions))
    raw = body.get("input")
    if isinstance(raw, str):
        d.messages.append(Message(Role.USER, [Text(raw)] if raw else []))
    else:
        for i, item in enumerate(ir.as_list(raw, "input")):
            d.item(ir.as_dict(item, f"input[{i}]"), f"input[{i}]")
    if not d.messages:
        raise BadRequest("input must contain at least one message", param="input")
    req = ir.Request(ir.merge_turns(d.messages), system=d.system)
    _decode_options(body, req)
    return req


def _decode_options(body: Json, req: ir.Request) -> None:
    for j, raw in enumerate(ir.as_list(body.get("tools"), "tools")):
        t = ir.as_dict(raw, f"tools[{j}]")
        kind = t.get("type")
        desc = t.get("description") if isinstance(t.get("description"), str) else None
        if kind == "function":
            params = t.get("parameters") or {"type": "object", "properties": {}}
            req.tools.append(ir.ToolDef(str(t.get("name", "")), desc, ir.as_dict(params, f"tools[{j}].parameters"),
                                        t.get("strict") if isinstance(t.get("strict"), bool) else None))
        elif kind == "custom":
            req.tools.append(ir.ToolDef(str(t.get("name", "")), desc, custom_parameters(t.get("format"))))
        # Hosted tools (web_search, file_search …) and namespaces of tools: dropped (module docstring).
    req.tool_choice = _decode_choice(body.get("tool_choice"))
    if isinstance(body.get("parallel_tool_calls"), bool):
        req.parallel_tool_calls = body["parallel_tool_calls"]
    req.max_tokens = ir.as_number(body.get("max_output_tokens"), "max_output_tokens", integer=True)
    req.temperature = ir.as_number(body.get("temperature"), "temperature")
    req.top_p = ir.as_number(body.get("top_p"), "top_p")
    req.user = body.get("user") if isinstance(body.get("user"), str) else None
    text = body.get("text")
    if isinstance(text, dict) and text.get("format") is not None:
        req.response_format = _decode_format(text["format"])
    r = body.get("reasoning")
    if isinstance(r, dict) and isinstance(r.get("effort"), str):
        summary = r.get("summary") or r.get("generate_summary")
        req.reasoning = ir.Reasoning(effort=r["effort"], include_thoughts=True if summary else None)


def _decode_choice(choice: Any) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(ir.ToolMode(choice))
    c = ir.as_dict(choice, "tool_choice")
    if c.get("type") in ("function", "custom") and isinstance(c.get("name"), str):
        return ir.ToolChoice(ir.ToolMode.REQUIRED, (c["name"],))
    if c.get("type") == "allowed_tools":
        names = tuple(str(t.get("name")) for t in dicts(c.get("tools")) if t.get("type") in ("function", "custom"))
        mode = ir.ToolMode.REQUIRED if c.get("mode") == "required" else ir.ToolMode.AUTO
        return ir.ToolChoice(mode, names)
    raise BadRequest(f"tool_choice {choice!r} cannot be converted", param="tool_choice")


def _decode_format(fmt: Any) -> ir.ResponseFormat:
    f = ir.as_dict(fmt, "text.format")
    if f.get("type") == "json_schema":
        return ir.ResponseFormat("json_schema", ir.as_dict(f.get("schema") or {}, "text.format.schema"),
                                 f.get("name") if isinstance(f.get("name"), str) else None,
                                 f.get("strict") if isinstance(f.get("strict"), bool) else None)
    if f.get("type") in ("text", "json_object"):
        return ir.ResponseFormat(f["type"])
    raise BadRequest(f"text.format type {f.get('type')!r} cannot be converted", param="text")


# --- encode -------------------------------------------------------------------------


def _part(p: Text | Media) -> Json:
    if isinstance(p, Text):
        return {"type": "input_text", "text": p.text}
    kind = ir.media_kind(p.media_type)
    url = p.url if p.data is None else f"data:{p.media_type};base64,{p.data}"
    if kind == "image":
        return {"type": "input_image", "image_url": url, "detail": "auto"}
    if kind == "pdf":
        if p.data is None:
            return {"type": "input_file", "file_url": url}
        return {"type": "input_file", "file_data": url, "filename": p.filename or "file.pdf"}
    if kind == "audio":
        fmt = {v: k for k, v in _AUDIO.items()}.get(p.media_type)
        if fmt is None or p.data is None:
            raise BadRequest(f"OpenAI accepts inline wav or mp3 audio only, not {p.media_type}")
        return {"type": "input_audio", "input_audio": {"data": p.data, "format": fmt}}
    raise BadRequest(f"media type {p.media_type} cannot be sent to OpenAI")


def _encode_user(m: Message) -> list[Json]:
    out: list[Json] = []
    rest: list[Text | Media] = []
    for p in m.parts:
        if isinstance(p, ToolResult):
            text = ir.text_of(p.content)
            output: str | list[Json] = text
            if p.is_error:
                output = ir.dumps({"error": text})
            elif any(isinstance(c, Media) for c in p.content):
                output = [_part(c) for c in p.content]
            out.append({"type": "function_call_output", "call_id": call_id(p.call_id), "output": output})
        elif isinstance(p, Text | Media):
            rest.append(p)
    if rest:
        out.append({"type": "message", "role": "user", "content": [_part(p) for p in rest]})
    return out


def _encode_assistant(m: Message) -> list[Json]:
    out: list[Json] = []
    for p in m.parts:
        if isinstance(p, Text) and p.text:
            if out and out[-1]["type"] == "message":
                out[-1]["content"].append({"type": "output_text", "text": p.text})
            else:
                out.append({"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": p.text}]})
        elif isinstance(p, ToolCall):
            out.append({"type": "function_call", "call_id": call_id(p.id), "name": p.name,
                        "arguments": ir.dumps(p.arguments)})
        elif isinstance(p, Media):
            raise BadRequest("assistant messages with media cannot be sent to OpenAI")
        # Thinking: another provider's reasoning has no Responses item; not replayed.
    return out


def encode_request(req: ir.Request, model: str, stream: bool) -> Json:
    items: list[Json] = []
    if req.system:
        items.append({"type": "message", "role": "system",
                      "content": [{"type": "input_text", "text": t.text} for t in req.system]})
    for m in req.messages:
        items += _encode_user(m) if m.role is Role.USER else _encode_assistant(m)
    body: Json = {"model": model, "input": items, "store": False}
    if stream:
        body["stream"] = True
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice is not None:
        body["tool_choice"] = _encode_choice(req.tool_choice)
    if req.max_tokens is not None:
        body["max_output_tokens"] = max(req.max_tokens, MIN_OUTPUT)
    opts = {"temperature": req.temperature, "top_p": req.top_p, "user": req.user}
    body.update({k: v for k, v in opts.items() if v is not None})
    if req.response_format is not None:
        body["text"] = {"format": _encode_format(req.response_format)}
    if req.reasoning is not None:
        r: Json = {"effort": _EFFORT.get(req.reasoning.as_effort(), "medium")}
        if not req.reasoning.off and req.reasoning.include_thoughts is not False:
            r["summary"] = "auto"
        body["reasoning"] = r
    return body


def _tool(t: ir.ToolDef) -> Json:
    out: Json = {"type": "function", "name": t.name, "parameters": t.parameters, "strict": bool(t.strict)}
    if t.description:
        out["description"] = t.description
    return out


def _encode_choice(c: ir.ToolChoice) -> Any:
    if not c.names or c.mode is ir.ToolMode.NONE:
        return c.mode.value
    if c.mode is ir.ToolMode.REQUIRED and len(c.names) == 1:
        return {"type": "function", "name": c.names[0]}
    return {"type": "allowed_tools", "mode": c.mode.value,
            "tools": [{"type": "function", "name": n} for n in c.names]}


def _encode_format(f: ir.ResponseFormat) -> Json:
    if f.kind != "json_schema":
        return {"type": f.kind}
    out: Json = {"type": "json_schema", "name": f.name or "structured_output", "schema": f.schema or {}}
    if f.strict is not None:
        out["strict"] = f.strict
    return out
