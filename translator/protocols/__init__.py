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
