"""Reasoning items' ``encrypted_content``: the slot a Responses client sends back untouched.

OpenAI fills it with its own encrypted reasoning (a same-protocol answer passes through, so that
never concerns this codec). For an answer from another protocol, the gateway seals the reasoning's
provider signature in it, so that the client's next turn carries it back and the upstream that
signed it accepts the conversation (Anthropic refuses a tool-use turn whose thinking block lost its
signature; Gemini 3 wants its ``thoughtSignature`` on the function call it answered). The seal is
``tg1.`` + unpadded base64url of a small JSON object, and is not secret (the signatures are the
providers', opaque to the client anyway):

    {"t": thinking text, "s": Anthropic signature}   a signed Anthropic thinking block (text byte-exact)
    {"r": data}                                      an Anthropic redacted_thinking block
    {"g": signature}                                 a Gemini thought's thoughtSignature
    {"c": signature}                                 a Gemini functionCall's thoughtSignature: the item
                                                     carrying it comes right before that call

Anything else in ``encrypted_content`` (OpenAI's own) has no meaning for another protocol and is
dropped toward it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from translator import ir

PREFIX = "tg1."


def seal(doc: dict[str, str]) -> str:
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def unseal(value: Any) -> dict[str, str]:
    """The sealed object in ``encrypted_content`` (``{}`` for anything else: OpenAI's, or damaged)."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return {}
    raw = value[len(PREFIX):]
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, str)}


def thinking_seal(p: ir.Thinking) -> str | None:
    """The seal of a thinking part, when it carries a signature."""
    if p.redacted is not None:
        return seal({"r": p.redacted})
    if p.signature:
        return seal({"t": p.text, "s": p.signature})
    if p.gemini_signature:
        return seal({"g": p.gemini_signature})
    return None


def call_seal(p: ir.ToolCall) -> str | None:
    return seal({"c": p.gemini_signature}) if p.gemini_signature else None


def thinking_from(text: str, doc: dict[str, str]) -> ir.Thinking | None:
    """The thinking part a client's reasoning item stands for (None: it only carries a call's signature)."""
    if "r" in doc:
        return ir.Thinking("", redacted=doc["r"])
    if "s" in doc:
        return ir.Thinking(doc.get("t", text), signature=doc["s"])
    if "c" in doc and not text:
        return None
    return ir.Thinking(text, gemini_signature=doc.get("g"))
