"""``GET /v1/models`` and friends, answered from the config in the caller's shape."""

from __future__ import annotations

from typing import Any

from core.config import Model
from core.protocols import Protocol
from translator.errors import ModelNotFound

_EPOCH_ISO = "2025-01-01T00:00:00Z"


def _one(protocol: Protocol, name: str, owner: str) -> dict[str, Any]:
    if protocol is Protocol.ANTHROPIC:
        return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH_ISO}
    if protocol is Protocol.GEMINI:
        return {
            "name": f"models/{name}",
            "version": "1",
            "displayName": name,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }
    return {"id": name, "object": "model", "created": 1735689600, "owned_by": owner}


def list_models(
    protocol: Protocol, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    names = [n for n in models if not allowed or n in allowed]
    items = [_one(protocol, n, owners[n]) for n in names]
    if protocol is Protocol.ANTHROPIC:
        return {
            "data": items,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    if protocol is Protocol.GEMINI:
        return {"models": items}
    return {"object": "list", "data": items}


def get_model(
    protocol: Protocol, name: str, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    name = name.removeprefix("models/")
    if name not in models or (allowed and name not in allowed):
        raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.")
    return _one(protocol, name, owners[name])
