"""OpenAI Responses API: requests, responses, typed streams, errors, usage <-> IR; ``CODEC`` is the protocol."""

from __future__ import annotations

from translator.protocols.openai_responses.codec import CODEC

__all__ = ["CODEC"]
