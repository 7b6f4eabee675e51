"""Gemini generateContent: requests, responses, streams, errors, usage <-> IR; ``CODEC`` is the protocol."""

from __future__ import annotations

from translator.protocols.gemini.codec import CODEC

__all__ = ["CODEC"]
