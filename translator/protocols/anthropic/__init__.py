"""Anthropic Messages: requests, responses, streams, errors, usage <-> IR; ``CODEC`` is the protocol."""

from __future__ import annotations

from translator.protocols.anthropic.codec import CODEC

__all__ = ["CODEC"]
