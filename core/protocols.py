"""The names of the wire protocols tokengate speaks; their codecs live in ``translator.protocols``."""
from __future__ import annotations

from enum import StrEnum


class Protocol(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"

    @classmethod
    def parse(cls, value: object) -> Protocol | None:
        """The protocol named ``value``, or None for anything else."""
        return _BY_VALUE.get(value) if isinstance(value, str) else None


_BY_VALUE = {p.value: p for p in Protocol}
