"""JSON Schema <-> Gemini's OpenAPI-3.0 ``Schema`` subset (docs/protocols.md).

``to_gemini`` keeps what Gemini's ``parameters``/``responseSchema`` accept and
rewrites the rest: local ``$ref``/``$defs`` are inlined (recursion -> 400), type
arrays and ``null`` members of ``anyOf``/``oneOf`` become ``nullable``, a single
``allOf`` is inlined, ``const`` becomes a one-value ``enum``, enums keep their
non-empty string values (other enums are dropped), ``format`` survives only as
``enum``/``date-time`` on strings, empty ``properties`` are dropped and
``required`` keeps only declared properties. Everything else (``additionalProperties``,
``$schema``, ``title``, ``strict``, ``propertyNames`` …) is dropped.
"""

from __future__ import annotations

from typing import Any

from translator.errors import BadRequest
from translator.ir import Json

_KEEP = frozenset({
    "description", "default", "example", "maxItems", "minItems", "maxLength", "minLength",
    "maxProperties", "minProperties", "maximum", "minimum", "pattern", "nullable",
})
_MAX_DEPTH = 32


def to_gemini(schema: Json) -> Json:
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _clean(schema, defs, 0)


def _resolve(ref: str, defs: Json) -> Json:
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith(("#/$defs/", "#/definitions/")) or not isinstance(defs.get(name), dict):
        raise BadRequest(f"schema $ref {ref!r} cannot be resolved for Gemini")
    target: Json = defs[name]
    return target


def _clean(s: Any, defs: Json, depth: int) -> Json:
    if depth > _MAX_DEPTH:
        raise BadRequest("schema is too deep (or its $ref is recursive) for Gemini")
    if not isinstance(s, dict):
        return {}
    if isinstance(s.get("$ref"), str):
        merged = {**_resolve(s["$ref"], defs), **{k: v for k, v in s.items() if k != "$ref"}}
        return _clean(merged, defs, depth + 1)
    all_of = s.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        merged = {**all_of[0], **{k: v for k, v in s.items() if k != "allOf"}}
        return _clean(merged, defs, depth + 1)
    out: Json = {k: v for k, v in s.items() if k in _KEEP}
    nullable = False
    types = s.get("type")
    if isinstance(types, list):
        nullable = "null" in types
        types = [t for t in types if t != "null"]
        if len(types) > 1:
            out["anyOf"] = [{"type": str(t).upper()} for t in types]
        types = types[0] if len(types) == 1 else None
    if isinstance(types, str) and types != "null":
        out["type"] = types.upper()
    variants = s.get("anyOf") or s.get("oneOf")
    if isinstance(variants, list):
        kept = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        nullable = nullable or len(kept) < len(variants)
        if len(kept) == 1:
            inner = _clean(kept[0], defs, depth + 1)
            out = {**inner, **out}
        elif kept:
            out["anyOf"] = [_clean(v, defs, depth + 1) for v in kept]
    if nullable:
        out["nullable"] = True
    enum = [s["const"]] if "const" in s else s.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        values = [v for v in enum if v]
        if values:
            out["enum"] = values
            out.setdefault("type", "STRING")
    if out.get("type") == "STRING" and s.get("format") in ("enum", "date-time"):
        out["format"] = s["format"]
    props = s.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {k: _clean(v, defs, depth + 1) for k, v in props.items()}
        required = [r for r in s.get("required") or [] if r in props]
        if required:
            out["required"] = required
    if "items" in s:
        out["items"] = _clean(s["items"], defs, depth + 1)
    return out


def from_gemini(s: Any) -> Json:
    """Gemini ``Schema`` (upper-case types, ``nullable``) -> JSON Schema."""
    if not isinstance(s, dict):
        return {}
    skip = ("type", "nullable", "properties", "items", "anyOf", "propertyOrdering")
    out: Json = {k: v for k, v in s.items() if k not in skip}
    kind = s.get("type")
    if isinstance(kind, str):
        kind = kind.lower()
        out["type"] = [kind, "null"] if s.get("nullable") else kind
    if isinstance(s.get("properties"), dict):
        out["properties"] = {k: from_gemini(v) for k, v in s["properties"].items()}
    if "items" in s:
        out["items"] = from_gemini(s["items"])
    if isinstance(s.get("anyOf"), list):
        out["anyOf"] = [from_gemini(v) for v in s["anyOf"]]
    return out
