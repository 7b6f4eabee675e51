"""``GET /v1/models`` and friends, answered from the config in the caller's shape (``Codec.model_entry``)."""

from __future__ import annotations

from typing import Any

from core.config import Model
from translator.errors import ModelNotFound
from translator.protocols.base import Codec


def list_models(
    codec: Codec, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    names = [n for n in models if not allowed or n in allowed]
    return codec.model_list([codec.model_entry(n, owners[n]) for n in names], names)


def get_model(
    codec: Codec, name: str, models: dict[str, Model], owners: dict[str, str], allowed: frozenset[str]
) -> dict[str, Any]:
    name = name.removeprefix("models/")
    if name not in models or (allowed and name not in allowed):
        raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.")
    return codec.model_entry(name, owners[name])
