"""Reasoning items' ``encrypted_content``: the slot a Responses client sends back untouched.

OpenAI fills it with its own encrypted reasoning (a same-protocol answer passes through, so that
never concerns this codec). For an answer from another protocol, the gateway seals the reasoning's
provider signature in it (``translator/protocols/carry.py``, the seal every client protocol uses),
so that the client's next turn carries it back and the upstream that signed it accepts the
conversation: Anthropic refuses a tool-use turn whose thinking block lost its signature; Gemini 3
wants its ``thoughtSignature`` on the function call it answered. One reasoning item per thinking
block:

    {"a": [[text, signature]]} or {"a": [[null, data]]}   an Anthropic thinking (redacted_thinking) block,
                                                          its text byte-exact
    {"g": signature}                                      a Gemini thought's thoughtSignature
    {"n": signature}                                      a Gemini functionCall's thoughtSignature, in an
                                                          item of its own right before that call

Anything else in ``encrypted_content`` (OpenAI's own) has no meaning for another protocol and is
dropped toward it.
"""

from __future__ import annotations

from typing import Any

from translator import ir
from translator.protocols import carry


def unseal(value: Any) -> dict[str, Any]:
    """The sealed object in ``encrypted_content`` (``{}`` for anything else: OpenAI's, or damaged)."""
    return carry.unseal(value) or {}


def thinking_seal(p: ir.Thinking) -> str | None:
    """The seal of a thinking part, when it carries a signature."""
    if p.redacted is not None or p.signature:
        return carry.seal({"a": carry.anthropic_blocks([p])})
    if p.gemini_signature:
        return carry.seal({"g": p.gemini_signature})
    return None


def redacted_seal(data: str) -> str:
    return carry.seal({"a": [[None, data]]})


def call_seal(signature: str) -> str:
    """The seal of a Gemini function call's signature (its item goes right before the call)."""
    return carry.seal({"n": signature})


def thinking_from(text: str, doc: dict[str, Any]) -> list[ir.Thinking]:
    """The thinking a client's reasoning item stands for (none when it only carries a call's signature)."""
    if "a" in doc:
        return carry.thinking_parts(doc)
    if "n" in doc and not text:
        return []
    sig = doc.get("g")
    return [ir.Thinking(text, gemini_signature=sig if isinstance(sig, str) else None)]
