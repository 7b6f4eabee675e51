"""Gemini ``generateContent`` requests <-> IR. Input accepts camelCase and snake_case.

Rules (decode, Gemini client):
- ``functionCall`` parts without an ``id`` get a stable synthesized one
  (``call_`` + hash of content index, part index and name); each ``functionResponse``
  pairs with the previous model turn's call of the same id, else the same name in
  order; an unpaired response is a 400.
- ``response`` ``{"output": x}`` becomes the result text ``x``, ``{"error": x}`` an
  error result, any other object its JSON text.
- ``inlineData`` may be URL-safe base64 (google-genai sends it so; proto3 JSON accepts both):
  it is rewritten to standard, padded base64, the only kind OpenAI and Anthropic accept.
- ``candidateCount`` > 1, ``cachedContent``, code execution parts and non-function
  tools are refused with 400; ``safetySettings`` and ``responseLogprobs`` are dropped.
- A ``thoughtSignature`` that is a gateway seal (``carry.py``) is not Gemini's: the Anthropic
  thinking blocks it carries are put back at the start of their model turn (once each, from
  whichever part carried them: the thought part, or the first function call when the client
  dropped its thought parts, as gemini-cli does).

Rules (encode, Gemini upstream; the model and the stream flag live in the URL):
- Ids are dropped; results are paired by the caller's ids to names; all results of a
  turn go into one ``user`` content, before that turn's other parts.
- The first ``functionCall`` of each model turn carries its thought signature, or
  Google's documented ``skip_thought_signature_validator`` when none is known.
- System messages inside the conversation are appended to ``systemInstruction`` in order;
  thinking budgets are capped at 24576 (the most Gemini 2.5 Flash takes).
- Tool schemas are cleaned to Gemini's OpenAPI subset (``schema.py``); ``parallel_tool_calls``
  has no Gemini control and is dropped; stop sequences beyond 5 are dropped.
- Media by URL is refused with 400 unless it is a ``gs://`` or Gemini Files API URI
  (downloading other URLs is not done yet).
- Turns left empty are dropped and the neighbours of one role merged; a ``"..."`` user
  turn starts a history that would start with the model, and ends one whose last user
  turn was empty.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from typing import Any

from translator import ir
from translator.errors import BadRequest
from translator.ir import Json, Media, Message, Role, Text, Thinking, ToolCall, ToolResult
from translator.protocols import carry
from translator.protocols.gemini import schema

SKIP_SIGNATURE = "skip_thought_signature_validator"
MAX_STOP = 5
MAX_BUDGET = 24576
_BAD_NAME = re.compile(r"[^A-Za-z0-9_.:-]")
_LEAD = re.compile(r"[A-Za-z_]")
_FILES_API = "https://generativelanguage.googleapis.com/"


def tool_name(name: str) -> str:
    return ir.fit_name(name, _BAD_NAME, 128, lead=_LEAD)


def field(d: Json, camel: str) -> Any:
    """``d[camel]``, accepting the snake_case proto name too."""
    if camel in d:
        return d[camel]
    return d.get(_snake(camel))


@functools.lru_cache(maxsize=256)
def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def synth_id(*where: object) -> str:
    return f"call_{ir.short_hash(*where)}"


_URL_SAFE = str.maketrans("-_", "+/", " \t\r\n")


def standard_base64(data: str) -> str:
    """Gemini ``bytes`` (standard or URL-safe, padded or not) as standard padded base64."""
    data = data.translate(_URL_SAFE)
    return data + "=" * (-len(data) % 4)


# --- decode -------------------------------------------------------------------------


def _result_content(response: Any) -> tuple[list[Text | Media], bool]:
    if isinstance(response, dict) and set(response) == {"error"}:
        value, is_error = response["error"], True
    elif isinstance(response, dict) and set(response) == {"output"}:
        value, is_error = response["output"], False
    else:
        value, is_error = response, False
    text = value if isinstance(value, str) else ir.dumps(value)
    return ([Text(text)] if text else []), is_error


def _part(p: Json, where: str, ci: int, pi: int, pending: list[ToolCall],
          carried: list[Thinking]) -> ir.Part | None:
    sig = field(p, "thoughtSignature")
    if (doc := carry.unseal(sig)) is not None:  # the gateway's seal, not a Gemini signature
        carried += carry.thinking_parts(doc)
        sig = None
        if "text" in p and field(p, "thought"):
            return None  # the sealed block holds this thought's text
    if "text" in p:
        if field(p, "thought"):
            return Thinking(str(p["text"]), gemini_signature=sig)
        return Text(str(p["text"]), gemini_signature=sig) if p["text"] or sig else None
    if (blob := field(p, "inlineData")) is not None:
        blob = ir.as_dict(blob, f"{where}.inlineData")
        return Media(str(field(blob, "mimeType")), data=standard_base64(str(blob.get("data", ""))))
    if (f := field(p, "fileData")) is not None:
        f = ir.as_dict(f, f"{where}.fileData")
        return Media(str(field(f, "mimeType") or "image/*"), url=str(field(f, "fileUri")))
    if (fc := field(p, "functionCall")) is not None:
        fc = ir.as_dict(fc, f"{where}.functionCall")
        name = str(fc.get("name", ""))
        call = ToolCall(str(fc.get("id") or synth_id(ci, pi, name)), name,
                        ir.as_dict(fc.get("args") or {}, f"{where}.functionCall.args"), sig)
        pending.append(call)
        return call
    if (fr := field(p, "functionResponse")) is not None:
        fr = ir.as_dict(fr, f"{where}.functionResponse")
        name, fid = str(fr.get("name", "")), fr.get("id")
        match = next((c for c in pending if c.id == fid), None) or next(
            (c for c in pending if c.name == name), None)
        if match is None:
            raise BadRequest(f"{where}: functionResponse {name!r} has no matching functionCall")
        pending.remove(match)
        content, is_error = _result_content(fr.get("response"))
        return ToolResult(match.id, name, content, is_error)
    raise BadRequest(f"{where}: this part kind cannot be converted")


def decode_request(body: Json) -> ir.Request:
    messages: list[Message] = []
    pending: list[ToolCall] = []
    for ci, raw in enumerate(ir.as_list(body.get("contents"), "contents")):
        c = ir.as_dict(raw, f"contents[{ci}]")
        role = Role.ASSISTANT if c.get("role") == "model" else Role.USER
        if role is Role.ASSISTANT:
            pending = []
        carried: list[Thinking] = []
        parts = [p for pi, raw_p in enumerate(ir.as_list(c.get("parts"), f"contents[{ci}].parts"))
                 if (p := _part(ir.as_dict(raw_p, f"contents[{ci}].parts[{pi}]"),
                                f"contents[{ci}].parts[{pi}]", ci, pi, pending, carried)) is not None]
        messages.append(Message(role, carry.restore_anthropic(parts, carried) if role is Role.ASSISTANT else parts))
    if not messages:
        raise BadRequest("contents must not be empty")
    if field(body, "cachedContent"):
        raise BadRequest("cachedContent cannot be used with another provider's model")
    sys = ir.as_dict(field(body, "systemInstruction") or {}, "systemInstruction")
    system = [Text(str(sp["text"])) for i, raw in enumerate(ir.as_list(sys.get("parts"), "systemInstruction.parts"))
              if (sp := ir.as_dict(raw, f"systemInstruction.parts[{i}]")).get("text")]
    req = ir.Request(ir.merge_turns(messages), system=system)
    _decode_tools(body, req)
    _decode_config(ir.as_dict(field(body, "generationConfig") or {}, "generationConfig"), req)
    return req


def _decode_tools(body: Json, req: ir.Request) -> None:
    for j, t in enumerate(ir.as_list(body.get("tools"), "tools")):
        decls = field(ir.as_dict(t, f"tools[{j}]"), "functionDeclarations")
        if decls is None:
            raise BadRequest(f"tools[{j}]: only functionDeclarations can be converted")
        for k, raw in enumerate(ir.as_list(decls, f"tools[{j}].functionDeclarations")):
            d = ir.as_dict(raw, f"tools[{j}].functionDeclarations[{k}]")
            params = field(d, "parametersJsonSchema")
            if params is None:
                params = schema.from_gemini(d.get("parameters") or {"type": "OBJECT"})
            req.tools.append(ir.ToolDef(str(d.get("name", "")), d.get("description"), params))
    fcc = field(ir.as_dict(field(body, "toolConfig") or {}, "toolConfig"), "functionCallingConfig")
    if isinstance(fcc, dict) and fcc.get("mode"):
        mode = str(fcc["mode"]).upper()
        modes = {"AUTO": ir.ToolMode.AUTO, "VALIDATED": ir.ToolMode.AUTO,
                 "ANY": ir.ToolMode.REQUIRED, "NONE": ir.ToolMode.NONE}
        if mode not in modes:
            raise BadRequest(f"functionCallingConfig.mode {mode!r} cannot be converted")
        names = tuple(str(n) for n in field(fcc, "allowedFunctionNames") or [])
        req.tool_choice = ir.ToolChoice(modes[mode], names)


_LEVEL_EFFORT = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def _decode_config(cfg: Json, req: ir.Request) -> None:
    count = field(cfg, "candidateCount")
    if isinstance(count, int) and count > 1:
        raise BadRequest("candidateCount > 1 cannot be converted to another provider's protocol")
    where = "generationConfig."
    req.max_tokens = ir.as_number(field(cfg, "maxOutputTokens"), where + "maxOutputTokens", integer=True)
    req.temperature = ir.as_number(field(cfg, "temperature"), where + "temperature")
    req.top_p = ir.as_number(field(cfg, "topP"), where + "topP")
    req.top_k = ir.as_number(field(cfg, "topK"), where + "topK", integer=True)
    req.stop = [str(s) for s in ir.as_list(field(cfg, "stopSequences"), where + "stopSequences")]
    req.seed = ir.as_number(field(cfg, "seed"), where + "seed", integer=True)
    req.presence_penalty = ir.as_number(field(cfg, "presencePenalty"), where + "presencePenalty")
    req.frequency_penalty = ir.as_number(field(cfg, "frequencyPenalty"), where + "frequencyPenalty")
    mime = field(cfg, "responseMimeType")
    if mime == "application/json":
        js = field(cfg, "responseJsonSchema")
        if js is None and field(cfg, "responseSchema") is not None:
            js = schema.from_gemini(field(cfg, "responseSchema"))
        req.response_format = (ir.ResponseFormat("json_schema", js) if js is not None
                               else ir.ResponseFormat("json_object"))
    elif mime == "text/plain":
        req.response_format = ir.ResponseFormat("text")
    tc = field(cfg, "thinkingConfig")
    if isinstance(tc, dict):
        level = field(tc, "thinkingLevel")
        req.reasoning = ir.Reasoning(
            effort=_LEVEL_EFFORT.get(str(level).upper()) if level else None,
            budget=ir.as_number(field(tc, "thinkingBudget"), where + "thinkingConfig.thinkingBudget", integer=True),
            include_thoughts=field(tc, "includeThoughts"))


# --- encode -------------------------------------------------------------------------


def _media(p: Media) -> Json:
    if p.data is not None:
        return {"inlineData": {"mimeType": p.media_type, "data": p.data}}
    url = p.url or ""
    if not url.startswith(("gs://", _FILES_API)):
        raise BadRequest("media by URL cannot be sent to a Gemini upstream yet; "
                         "send it inline as base64 (a data: URL)")
    mime = p.media_type if "*" not in p.media_type else mimetypes.guess_type(url)[0]
    return {"fileData": {"fileUri": url, **({"mimeType": mime} if mime else {})}}


def _encode_part(p: ir.Part, names: dict[str, str]) -> Json | None:
    if isinstance(p, Text):
        if not p.text and not p.gemini_signature:
            return None
        out: Json = {"text": p.text}
    elif isinstance(p, Thinking):
        if not p.gemini_signature:
            return None  # only Gemini's own signed thoughts are replayed
        out = {"text": p.text, "thought": True}
    elif isinstance(p, Media):
        return _media(p)
    elif isinstance(p, ToolCall):
        out = {"functionCall": {"name": p.name, "args": p.arguments}}
    else:
        name = p.name or names.get(p.call_id)
        if name is None:
            raise BadRequest(f"tool result {p.call_id!r} has no matching tool call")
        text = ir.text_of(p.content)
        parsed = ir.parse_args(text) if text.strip() else None
        value: Any = parsed if parsed is not None else text
        response = {"error": value} if p.is_error else (parsed or {"output": text})
        return {"functionResponse": {"name": name, "response": response}}
    if p.gemini_signature:
        out["thoughtSignature"] = p.gemini_signature
    return out


def _parts(m: Message, names: dict[str, str]) -> list[Json]:
    if m.role is Role.USER:
        results = [p for p in m.parts if isinstance(p, ToolResult)]
        media = [c for r in results for c in r.content if isinstance(c, Media)]
        ordered = [*results, *media, *(p for p in m.parts if not isinstance(p, ToolResult))]
        return [o for p in ordered if (o := _encode_part(p, names)) is not None]
    parts, signed = [], False
    for p in m.parts:
        o = _encode_part(p, names)
        if o is None:
            continue
        if "functionCall" in o and not signed:
            signed = True
            o.setdefault("thoughtSignature", SKIP_SIGNATURE)
        parts.append(o)
    return parts


def _contents(req: ir.Request) -> list[Json]:
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ToolCall)}
    turns = [(m.role, _parts(m, names)) for m in req.messages]
    ends_with_user = bool(req.messages) and req.messages[-1].role is Role.USER
    out: list[Json] = []
    for role, parts in ir.tidy_turns(turns, lambda: {"text": "..."}, ends_with_user=ends_with_user):
        if role is Role.USER:  # every functionResponse first, right after the calls they answer
            parts.sort(key=lambda p: "functionResponse" not in p)
        out.append({"role": "user" if role is Role.USER else "model", "parts": parts})
    return out


def encode_request(req: ir.Request, model: str, stream: bool) -> Json:
    instructions = ir.hoist_system(req)
    body: Json = {"contents": _contents(req)}
    if instructions:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in instructions]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in req.tools]}]
    if req.tool_choice is not None:
        c = req.tool_choice
        mode = {"auto": "VALIDATED" if c.names else "AUTO", "none": "NONE", "required": "ANY"}
        fcc: Json = {"mode": mode[c.mode.value]}
        if c.names and c.mode is not ir.ToolMode.NONE:
            fcc["allowedFunctionNames"] = list(c.names)
        body["toolConfig"] = {"functionCallingConfig": fcc}
    config = _config(req, model)
    if config:
        body["generationConfig"] = config
    return body


def _declaration(t: ir.ToolDef) -> Json:
    out: Json = {"name": t.name}
    if t.description:
        out["description"] = t.description
    params = schema.to_gemini(t.parameters)
    if params.get("properties") or params.get("type") not in (None, "OBJECT"):
        out["parameters"] = params
    return out


_EFFORT_LEVEL = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM",
                 "high": "HIGH", "xhigh": "HIGH", "max": "HIGH"}


def _config(req: ir.Request, model: str) -> Json:
    cfg: Json = {k: v for k, v in {
        "maxOutputTokens": req.max_tokens, "temperature": req.temperature, "topP": req.top_p,
        "topK": req.top_k, "seed": req.seed, "presencePenalty": req.presence_penalty,
        "frequencyPenalty": req.frequency_penalty,
    }.items() if v is not None}
    if req.stop:
        cfg["stopSequences"] = req.stop[:MAX_STOP]
    fmt = req.response_format
    if fmt is not None:
        cfg["responseMimeType"] = "text/plain" if fmt.kind == "text" else "application/json"
        if fmt.kind == "json_schema":
            cfg["responseSchema"] = schema.to_gemini(fmt.schema or {})
    r = req.reasoning
    if r is not None:
        tc: Json
        if "gemini-3" in model:
            tc = {"thinkingLevel": _EFFORT_LEVEL.get(r.as_effort(), "MEDIUM")}
        elif r.off:
            tc = {"thinkingBudget": 0}
        else:
            tc = {"thinkingBudget": -1 if r.budget == -1 else min(r.as_budget(), MAX_BUDGET)}
        if not r.off:
            tc["includeThoughts"] = r.include_thoughts is not False
        cfg["thinkingConfig"] = tc
    return cfg
