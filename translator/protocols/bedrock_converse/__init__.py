"""AWS Bedrock's Converse API: requests, responses, event streams, errors, usage <-> IR; ``CODEC`` is the
protocol. Upstream only: no client speaks it (it claims no endpoint)."""

from __future__ import annotations

from translator.protocols.bedrock_converse.codec import CODEC

__all__ = ["CODEC"]
