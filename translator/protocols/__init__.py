"""Client and upstream protocols: the names here, one codec package per protocol beside them.

Codec packages (``openai/``, ``anthropic/``, ``gemini/``) import from here, never the
other way round, so ``translator.errors`` can import ``Protocol`` without a cycle.
"""
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
