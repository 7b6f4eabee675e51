"""OpenAI Chat Completions: requests, responses, streams, errors, usage <-> IR; ``CODEC`` is the protocol."""

from __future__ import annotations

from translator.protocols.openai.codec import CODEC

__all__ = ["CODEC"]
