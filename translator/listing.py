"""``GET /v1/models`` and friends, answered from the config in the caller's shape (``Codec.model_entry``).

An embedding model is listed to callers of a protocol with embeddings endpoints, as that protocol lists
one (``Embedder.model_entry``: Gemini's ``supportedGenerationMethods`` name the embedding methods); a
protocol without any (Anthropic's) neither lists nor finds it.
"""

from __future__ import annotations

from typing import Any

from core.config import Model
from translator.errors import ModelNotFound
from translator.protocols.base import Codec, Json


def _entry(codec: Codec, name: str, model: Model, owner: str) -> Json | None:
    entry = codec.model_entry(name, owner)
    if model.kind != "embedding":
        return entry
    return codec.embedder.model_entry(entry) if codec.embedder is not None else None


def list_models(
    codec: Codec, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    entries = [(n, e) for n, m in models.items() if not allowed or n in allowed
               if (e := _entry(codec, n, m, owners[n])) is not None]
    return codec.model_list([e for _, e in entries], [n for n, _ in entries])


def get_model(
    codec: Codec, name: str, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    name = name.removeprefix("models/")
    entry = _entry(codec, name, models[name], owners[name]) if name in models else None
    if entry is None or (allowed and name not in allowed):
        raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.")
    return entry
