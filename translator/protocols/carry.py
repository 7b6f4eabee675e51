"""One provider's opaque reasoning, carried through another protocol's client and back.

Anthropic signs its thinking blocks and wants them back, byte-exact, in a tool-use turn; Gemini 3
wants the ``thoughtSignature`` of each step's first function call back. tokengate keeps no state
between requests, so when the client speaks another protocol the signature travels in the slot
*that* protocol has for an opaque reasoning token, and the client carries it back itself:

    client      its slot                          what is sealed in it
    Gemini      a part's ``thoughtSignature``     an Anthropic upstream's thinking blocks: on the
                                                  thought part, and all of the answer's on its first
                                                  function call (gemini-cli drops thought parts from
                                                  its history but keeps call signatures)
    Anthropic   a thinking block's ``signature``  a Gemini upstream's signatures: the thought's own,
                                                  and each function call's by its place in the answer
    OpenAI      none (Chat Completions)           nothing: docs/protocols.md says what is replayed
    Responses   a reasoning item's                an Anthropic block, a Gemini thought's or a Gemini
                ``encrypted_content``             call's signature, one item each (its own doc keys:
                                                  ``openai_responses/reasoning.py``)

A seal is standard base64 of ``MAGIC`` + a small JSON object, so it is valid wherever the slot
wants base64 bytes (Gemini's ``thoughtSignature`` is ``bytes``: google-genai decodes and re-encodes
it, URL-safe; both spellings are read). It is not secret — the signatures are the providers' and
their checks stay theirs — and a client that forges one gains nothing it could not send directly:

    {"a": [[text, signature] | [null, redacted data], …]}   Anthropic thinking blocks, in order
    {"g": signature}                                          a Gemini thought's thoughtSignature
    {"c": {"<n>": signature, …}}                              Gemini call signatures, n = the call's
                                                              ordinal in its message

Anything else in the slot is the client's own protocol's (a real Gemini signature, a real Anthropic
one) and is read as such.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import orjson

from translator import ir

MAGIC = b"\xfftg1"
_PREFIX = base64.b64encode(MAGIC)[:4].decode()  # what every seal starts with ("/3Rn")
_URL_SAFE = str.maketrans("-_", "+/")


def seal(doc: dict[str, Any]) -> str:
    return base64.b64encode(MAGIC + orjson.dumps(doc)).decode()


def unseal(token: object) -> dict[str, Any] | None:
    """The sealed object, or None for anything that is not a seal (a provider's own signature)."""
    if not isinstance(token, str) or not token.translate(_URL_SAFE).startswith(_PREFIX):
        return None
    raw = token.translate(_URL_SAFE)
    try:
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        doc = orjson.loads(data[len(MAGIC):]) if data.startswith(MAGIC) else None
    except (binascii.Error, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# --- Anthropic thinking blocks (carried by Gemini clients) ----------------------------------


def anthropic_blocks(parts: Iterable[ir.Part]) -> list[list[str | None]]:
    """The Anthropic thinking blocks among ``parts``, as a seal lists them."""
    return [[None, p.redacted] if p.redacted is not None else [p.text, p.signature]
            for p in parts if isinstance(p, ir.Thinking) and (p.signature or p.redacted is not None)]


def thinking_parts(doc: dict[str, Any] | None) -> list[ir.Thinking]:
    """The Anthropic thinking blocks a seal carries."""
    out: list[ir.Thinking] = []
    for item in (doc or {}).get("a") or ():
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str):
            text, sig = item
            out.append(ir.Thinking("", redacted=sig) if text is None
                       else ir.Thinking(str(text), signature=sig))
    return out


def restore_anthropic(parts: list[ir.Part], carried: list[ir.Thinking]) -> list[ir.Part]:
    """A model turn's parts with the Anthropic blocks its seals carried put back first (Anthropic wants
    a tool-use turn to start with its thinking), each once however many parts carried it."""
    seen: set[str] = set()
    blocks: list[ir.Part] = []
    for t in carried:
        key = t.signature or t.redacted or ""
        if key not in seen:
            seen.add(key)
            blocks.append(t)
    return [*blocks, *parts] if blocks else parts


# --- Gemini signatures (carried by Anthropic clients) ---------------------------------------


def gemini_marks(thinking: ir.Thinking | None, calls: dict[int, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if thinking is not None and thinking.gemini_signature:
        doc["g"] = thinking.gemini_signature
    if calls:
        doc["c"] = {str(n): sig for n, sig in calls.items()}
    return doc


def restore_gemini(parts: list[ir.Part], docs: list[dict[str, Any]]) -> None:
    """Give a message's function calls the signatures its seals carried, by ordinal, in place."""
    sigs: dict[int, str] = {}
    for doc in docs:
        for n, sig in (doc.get("c") or {}).items():
            if isinstance(sig, str) and str(n).isdigit():
                sigs[int(n)] = sig
    if not sigs:
        return
    calls = [p for p in parts if isinstance(p, ir.ToolCall)]
    for n, sig in sigs.items():
        if n < len(calls) and not calls[n].gemini_signature:
            calls[n].gemini_signature = sig
