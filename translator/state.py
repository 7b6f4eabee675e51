"""What one translator process knows: the config's tables, credentials, Redis, metering.

Built once at start-up; the request path only does dictionary lookups on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from tokengate.billing.ops import Billing
from tokengate.config import GatewayConfig, Model
from tokengate.pricing import Price
from translator.metering import Meter
from translator.protocols import Protocol


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment as the upstream filter needs it."""

    name: str
    protocol: Protocol
    model: str  # the upstream's model name
    base_path: str
    credential: str | None


class Gateway:
    def __init__(self, cfg: GatewayConfig, redis: aioredis.Redis, meter: Meter, base: Path) -> None:
        self.cfg = cfg
        self.redis = redis
        self.meter = meter
        self.models: dict[str, Model] = cfg.model_table()
        self.billing = Billing(redis)
        self.prices: dict[str, Price] = cfg.prices()
        self.max_output: dict[str, int] = {name: m.max_output_tokens for name, m in self.models.items()}
        self.owners: dict[str, str] = {
            name: cfg.deployment(m.deployment_names[0]).provider for name, m in self.models.items()
        }
        self.targets: dict[str, Target] = {}
        # model name -> the protocols its deployments speak
        self.protocols: dict[str, frozenset[Protocol]] = {
            name: frozenset(cfg.provider(cfg.deployment(d).provider).protocol for d in m.deployment_names)
            for name, m in self.models.items()
        }
        for d in cfg.deployments:
            p = cfg.provider(d.provider)
            self.targets[d.name] = Target(
                name=d.name,
                protocol=p.protocol,
                model=d.model,
                base_path=p.base_path,
                credential=p.api_key.resolve(base) if p.api_key else None,
            )
