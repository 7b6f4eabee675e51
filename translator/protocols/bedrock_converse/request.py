"""Bedrock Converse requests <-> IR (botocore's ``bedrock-runtime`` model: ``ConverseRequest``).

The model is in the path (``/model/{modelId}/converse``), never in the body. Blobs (image and document bytes,
redacted reasoning) are base64 strings in the JSON, as AWS's REST-JSON protocol sends them.

Rules (encode, Bedrock upstream):
- ``system`` is a list of ``{"text"}`` blocks, in-conversation system messages appended in order.
- Images (png, jpeg, gif, webp) and PDFs go as bytes; an image by URL cannot (Converse takes bytes or S3
  locations): 400. Audio is refused.
- Tool calls are ``toolUse`` blocks, results ``toolResult`` (``status: error`` for a failed call); tools are
  ``toolSpec`` with ``inputSchema.json``; the choice ``auto``, ``any`` or ``tool``. Converse has no "none": the
  tools are then left out, unless the history holds tool blocks (Bedrock then requires ``toolConfig``), when
  they are sent with no choice. Tool history without definitions gets stub definitions.
- ``maxTokens``, ``temperature``, ``topP``, ``stopSequences`` go in ``inferenceConfig``; ``seed``, penalties,
  ``user`` and a JSON response format have no Converse field and are dropped (json_object: a system line).
- Reasoning and ``top_k`` are model fields (``additionalModelRequestFields``), sent only to Anthropic models
  (a model id holding ``anthropic.``): ``thinking: {type: enabled, budget_tokens}``, the budget at least 1024
  and ``maxTokens`` raised above it; temperature, topP and top_k are dropped with thinking on, as Anthropic
  requires. Other models get no reasoning setting.
- Reasoning is replayed only with its signature (``reasoningContent.reasoningText``), redacted reasoning as
  ``redactedContent``; turns are tidied as for Anthropic (empty ones dropped, same roles merged, a ``...``
  user turn where one is needed).
"""

from __future__ import annotations

import re
from typing import Any

from translator import ir
from translator.errors import BadRequest
from translator.ir import Json, Media, Message, Role, Text, Thinking, ToolCall, ToolResult

MIN_BUDGET = 1024
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_MEDIA_TYPES = {v: k for k, v in IMAGE_FORMATS.items()}
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_BAD_ID = re.compile(r"[^a-zA-Z0-9_.:-]")


def tool_name(name: str) -> str:
    return ir.fit_name(name, _BAD_NAME, 64)


def tool_id(raw: str) -> str:
    return ir.fit_id(raw, _BAD_ID, 64)


def is_anthropic(model: str) -> bool:
    """An Anthropic model on Bedrock (a base model id, an inference profile's or an ARN naming one)."""
    return "anthropic." in model


# --- encode -------------------------------------------------------------------------


def _media(p: Media) -> Json:
    kind = ir.media_kind(p.media_type)
    if p.data is None:
        raise BadRequest("Bedrock takes images and documents as bytes, not by URL")
    if kind == "pdf":
        return {"document": {"format": "pdf", "name": _doc_name(p.filename), "source": {"bytes": p.data}}}
    if kind != "image" or p.media_type not in IMAGE_FORMATS:
        raise BadRequest(f"Bedrock accepts png, jpeg, gif or webp images and PDFs, not {p.media_type}")
    return {"image": {"format": IMAGE_FORMATS[p.media_type], "source": {"bytes": p.data}}}


def _doc_name(name: str | None) -> str:
    """A document name Bedrock accepts: letters, digits, spaces, hyphens, parentheses and brackets."""
    clean = re.sub(r"[^A-Za-z0-9 ()\[\]-]", " ", name or "document")
    return " ".join(clean.split())[:200] or "document"


def _block(p: ir.Part) -> Json | None:
    if isinstance(p, Text):
        return {"text": p.text} if p.text.strip() else None
    if isinstance(p, Media):
        return _media(p)
    if isinstance(p, Thinking):
        if p.redacted is not None:
            return {"reasoningContent": {"redactedContent": p.redacted}}
        if p.signature:
            return {"reasoningContent": {"reasoningText": {"text": p.text, "signature": p.signature}}}
        return None  # unsigned or foreign reasoning cannot be replayed
    if isinstance(p, ToolCall):
        return {"toolUse": {"toolUseId": tool_id(p.id), "name": p.name, "input": p.arguments}}
    content = [b for c in p.content if (b := _block(c)) is not None] or [{"text": ""}]
    result: Json = {"toolUseId": tool_id(p.call_id), "content": content}
    if p.is_error:
        result["status"] = "error"
    return {"toolResult": result}


def _messages(req: ir.Request) -> list[Json]:
    turns = [(m.role, [b for p in m.parts if (b := _block(p)) is not None]) for m in req.messages]
    ends_with_user = bool(req.messages) and req.messages[-1].role is Role.USER
    out: list[Json] = []
    for role, blocks in ir.tidy_turns(turns, lambda: {"text": "..."}, ends_with_user=ends_with_user):
        if role is Role.USER:
            blocks.sort(key=lambda b: "toolResult" not in b)  # results first, next to the calls they answer
        out.append({"role": role.value, "content": blocks})
    return out


def encode_request(req: ir.Request, model: str, stream: bool) -> Json:
    instructions = ir.hoist_system(req)
    body: Json = {"messages": _messages(req)}
    system = [{"text": t.text} for t in instructions if t.text.strip()]
    if req.response_format is not None and req.response_format.kind != "text":
        system.append({"text": JSON_OBJECT_INSTRUCTION})
    if system:
        body["system"] = system
    _encode_tools(req, body)
    config: Json = {}
    extra: Json = {}
    budget = _thinking_budget(req, model)
    if budget is not None:
        config["maxTokens"] = max(req.max_tokens or 0, budget + MIN_BUDGET)
    elif req.max_tokens is not None:
        config["maxTokens"] = req.max_tokens
    if budget is not None:
        extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        if req.temperature is not None:
            config["temperature"] = min(max(float(req.temperature), 0.0), 1.0)
        if req.top_p is not None:
            config["topP"] = req.top_p
        if req.top_k is not None and is_anthropic(model):
            extra["top_k"] = req.top_k
    stops = [s for s in req.stop if s.strip()]
    if stops:
        config["stopSequences"] = stops
    if config:
        body["inferenceConfig"] = config
    if extra:
        body["additionalModelRequestFields"] = extra
    return body


def _thinking_budget(req: ir.Request, model: str) -> int | None:
    r = req.reasoning
    forced = req.tool_choice is not None and req.tool_choice.mode is ir.ToolMode.REQUIRED
    if r is None or r.off or forced or not is_anthropic(model):
        return None
    return max(r.as_budget(), MIN_BUDGET)


def _encode_tools(req: ir.Request, body: Json) -> None:
    choice = req.tool_choice
    used = {p.name: None for m in req.messages for p in m.parts if isinstance(p, ToolCall)}
    tools = [_tool(t) for t in req.tools]
    if choice is not None and choice.mode is ir.ToolMode.NONE:
        if not used:
            return
        choice = None
    if not tools:
        if not used:
            return
        tools = [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}} for n in used]
        choice = None
    if choice is not None and choice.names and not (choice.mode is ir.ToolMode.REQUIRED and len(choice.names) == 1):
        tools = [t for t in tools if t["toolSpec"]["name"] in choice.names]  # allowed-tools subset
    config: Json = {"tools": tools}
    if choice is not None:
        if choice.mode is ir.ToolMode.REQUIRED and len(choice.names) == 1:
            config["toolChoice"] = {"tool": {"name": choice.names[0]}}
        else:
            config["toolChoice"] = {"any": {}} if choice.mode is ir.ToolMode.REQUIRED else {"auto": {}}
    body["toolConfig"] = config


def _tool(t: ir.ToolDef) -> Json:
    spec: Json = {"name": t.name, "inputSchema": {"json": t.parameters}}
    if t.description:
        spec["description"] = t.description
    return {"toolSpec": spec}


# --- decode (no client speaks Converse: for round trips and tests) ---------------------


def decode_block(b: Json, where: str, names: dict[str, str]) -> ir.Part | None:
    if isinstance(b.get("text"), str):
        return Text(b["text"])
    if isinstance(b.get("image"), dict):
        img = b["image"]
        src = ir.as_dict(img.get("source"), f"{where}.image.source")
        return Media(_MEDIA_TYPES.get(str(img.get("format")), "image/png"), data=str(src.get("bytes", "")))
    if isinstance(b.get("document"), dict):
        doc = b["document"]
        src = ir.as_dict(doc.get("source"), f"{where}.document.source")
        return Media("application/pdf", data=str(src.get("bytes", "")), filename=doc.get("name"))
    if isinstance(b.get("toolUse"), dict):
        use = b["toolUse"]
        call = ToolCall(str(use.get("toolUseId", "")), str(use.get("name", "")),
                        ir.as_dict(use.get("input", {}), f"{where}.toolUse.input"))
        names[call.id] = call.name
        return call
    if isinstance(b.get("toolResult"), dict):
        res = b["toolResult"]
        cid = str(res.get("toolUseId", ""))
        inner: list[Text | Media] = []
        for j, c in enumerate(ir.as_list(res.get("content"), f"{where}.toolResult.content")):
            c = ir.as_dict(c, f"{where}.toolResult.content[{j}]")
            if "json" in c:
                inner.append(Text(ir.dumps(c["json"])))
            elif isinstance(p := decode_block(c, f"{where}.toolResult.content[{j}]", names), Text | Media):
                inner.append(p)
        return ToolResult(cid, names.get(cid), inner, res.get("status") == "error")
    if isinstance(b.get("reasoningContent"), dict):
        rc = b["reasoningContent"]
        if "redactedContent" in rc:
            return Thinking("", redacted=str(rc["redactedContent"]))
        rt = rc.get("reasoningText") if isinstance(rc.get("reasoningText"), dict) else {}
        assert isinstance(rt, dict)
        return Thinking(str(rt.get("text", "")), signature=rt.get("signature") or None)
    return None  # cachePoint, guardContent, citations … have no peer shape


def decode_request(body: Json) -> ir.Request:
    names: dict[str, str] = {}
    messages: list[Message] = []
    for i, raw in enumerate(ir.as_list(body.get("messages"), "messages")):
        m = ir.as_dict(raw, f"messages[{i}]")
        if m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}]: role {m.get('role')!r} cannot be converted")
        parts = [p for j, b in enumerate(ir.as_list(m.get("content"), f"messages[{i}].content"))
                 if (p := decode_block(ir.as_dict(b, f"messages[{i}].content[{j}]"), f"messages[{i}].content[{j}]",
                                       names)) is not None]
        messages.append(Message(Role(m["role"]), parts))
    if not messages:
        raise BadRequest("messages must not be empty")
    system = [Text(str(s["text"])) for s in ir.as_list(body.get("system"), "system")
              if isinstance(s, dict) and isinstance(s.get("text"), str)]
    req = ir.Request(ir.merge_turns(messages), system=system)
    config = body.get("toolConfig") if isinstance(body.get("toolConfig"), dict) else {}
    assert isinstance(config, dict)
    for j, t in enumerate(ir.as_list(config.get("tools"), "toolConfig.tools")):
        spec = ir.as_dict(t, f"toolConfig.tools[{j}]").get("toolSpec")
        if isinstance(spec, dict):
            schema = spec.get("inputSchema") if isinstance(spec.get("inputSchema"), dict) else {}
            assert isinstance(schema, dict)
            req.tools.append(ir.ToolDef(str(spec.get("name", "")), spec.get("description"),
                                        ir.as_dict(schema.get("json") or {"type": "object"}, "inputSchema.json")))
    choice = config.get("toolChoice")
    if isinstance(choice, dict):
        if isinstance(choice.get("tool"), dict):
            req.tool_choice = ir.ToolChoice(ir.ToolMode.REQUIRED, (str(choice["tool"].get("name")),))
        elif "any" in choice:
            req.tool_choice = ir.ToolChoice(ir.ToolMode.REQUIRED)
        elif "auto" in choice:
            req.tool_choice = ir.ToolChoice(ir.ToolMode.AUTO)
    inf = body.get("inferenceConfig") if isinstance(body.get("inferenceConfig"), dict) else {}
    assert isinstance(inf, dict)
    req.max_tokens = ir.as_number(inf.get("maxTokens"), "inferenceConfig.maxTokens", integer=True)
    req.temperature = ir.as_number(inf.get("temperature"), "inferenceConfig.temperature")
    req.top_p = ir.as_number(inf.get("topP"), "inferenceConfig.topP")
    req.stop = [str(s) for s in ir.as_list(inf.get("stopSequences"), "inferenceConfig.stopSequences")]
    extra: Any = body.get("additionalModelRequestFields")
    if isinstance(extra, dict):
        req.top_k = ir.as_number(extra.get("top_k"), "top_k", integer=True)
        thinking = extra.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            req.reasoning = ir.Reasoning(budget=ir.as_number(thinking.get("budget_tokens"), "budget_tokens",
                                                             integer=True) or MIN_BUDGET)
    return req
