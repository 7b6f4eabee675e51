"""What one translator process knows: the config's tables, credentials, Redis, metering.

Built once at start-up; the request path only does dictionary lookups on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from core.billing.ops import Billing
from core.config import GatewayConfig, Model
from core.pricing import Price
from core.protocols import Protocol
from translator.admission import Admitter
from translator.flavours import PLAIN, Flavour, for_provider
from translator.inflight import Inflight
from translator.metering import Meter
from translator.metrics import gen_ai_provider
from translator.protocols import REGISTRY
from translator.protocols.base import Codec
from translator.tracing import Tracing

log = structlog.get_logger("tokengate.translator")
# How long a request's end-of-stream work waits, to be done with the others that ended meanwhile (Gateway.later)
LATER_S = 0.02


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment as the upstream filter needs it."""

    name: str
    protocol: Protocol
    codec: Codec  # the protocol's
    model: str  # the upstream's model name
    base_path: str
    credential: str | None
    flavour: Flavour = PLAIN  # the provider's wire flavour: its path, credential, body changes (translator/flavours)
    quirks: frozenset[str] = frozenset()  # the provider's quirks its codec acts on (docs/providers.md, "Quirks")
    max_output: int | None = None  # the deployment's output cap: a request's larger limit is lowered to it
    gen_ai_provider: str = ""  # its gen_ai.provider.name on metrics (translator/metrics.py)


class Gateway:
    def __init__(self, cfg: GatewayConfig, redis: aioredis.Redis, meter: Meter, base: Path,
                 inflight: Inflight | None = None) -> None:
        self.cfg = cfg
        self.redis = redis
        self.meter = meter
        self.inflight = inflight  # None: requests in flight are not written down (tests, tools)
        self.models: dict[str, Model] = cfg.model_table()
        self.billing = Billing(redis)
        self.admitter = Admitter(self.billing, cfg.billing)
        self.prices: dict[str, Price] = cfg.prices()
        self.max_output: dict[str, int] = {name: m.max_output_tokens for name, m in self.models.items()}
        self.owners: dict[str, str] = {
            name: cfg.deployment(m.deployment_names[0]).provider for name, m in self.models.items()
        }
        self.targets = targets(cfg, base)
        # model name -> the protocols its deployments speak
        self.codecs: dict[str, frozenset[Codec]] = {
            name: frozenset(self.targets[d].codec for d in m.deployment_names) for name, m in self.models.items()
        }
        self.direct = direct_targets(cfg, self.targets)
        # a direct route's attempt headers (set, removed) per request shape, where they are fixed
        # (Flavour.fixed_headers): shared by the requests of that shape, never mutated
        self.direct_headers: dict[tuple[Any, ...], tuple[dict[str, str], list[str]]] = {}
        # docs/observability.md: the router's facts go to Envoy's access log; spans when tracing is on
        # (translator.main starts the exporter); a provider gets the trace context only when configured.
        self.access_log = cfg.access_log.enabled
        self.tracing: Tracing | None = None
        self.forward_trace = cfg.tracing.enabled and cfg.tracing.forward_to_providers
        self._later: list[Callable[[], None]] = []

    def later(self, work: Callable[[], None]) -> None:
        """``work()`` ``LATER_S`` from now, together with the work of the other requests that ended meanwhile: what a
        request does once answered and recorded (its lease told, its log line, its metrics) is off every reply's
        path, and runs a few requests at a time on warm caches (docs/performance.md, "Work after the answer")."""
        self._later.append(work)
        if len(self._later) == 1:
            asyncio.get_running_loop().call_later(LATER_S, self.run_later)

    def run_later(self) -> None:
        """The deferred work, now (at shutdown: before the leases are given back). One that fails is logged; the
        rest runs."""
        due, self._later = self._later, []
        for work in due:
            try:
                work()
            except Exception:
                log.exception("deferred_work_failed", work=repr(work))


def targets(cfg: GatewayConfig, base: Path) -> dict[str, Target]:
    """Deployment name -> what an attempt to it needs (credentials resolved now)."""
    out = {}
    flavours = {p.name: for_provider(p, base) for p in cfg.providers}  # one per provider (a token cache is shared)
    for d in cfg.deployments:
        p = cfg.provider(d.provider)
        out[d.name] = Target(name=d.name, protocol=p.protocol, codec=REGISTRY.get(p.protocol), model=d.model,
                             quirks=frozenset(p.quirks), max_output=d.max_output_tokens,
                             base_path=p.base_path, credential=p.api_key.resolve(base) if p.api_key else None,
                             flavour=flavours[p.name], gen_ai_provider=gen_ai_provider(p))
    return out


def direct_targets(cfg: GatewayConfig, by_deployment: dict[str, Target]) -> dict[str, Target]:
    """Model name -> its one deployment, where every attempt goes to the same provider and model
    (a caller of that provider's protocol takes the direct route: no per-attempt filter)."""
    out = {}
    for name, m in cfg.model_table().items():
        d = cfg.direct_deployment(m)
        if d is not None:
            out[name] = by_deployment[d.name]
    return out
