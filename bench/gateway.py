"""tokengate under test: a gateway config written by the bench, run by ``devstack.Stack``.

Three providers on loopback: the fast Envoy upstream spoken to as OpenAI and as
Anthropic, and the streaming SSE upstream as OpenAI. Client and upstream model
names are equal, so same-protocol attempts take the cheap path (the upstream
filter skips the body). A real key is created in the stack's own Redis.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import yaml

from core import keys, store
from core.config import Model
from tokengate.devstack import Stack
from tokengate.procs import free_port

OPENAI_MODEL = "gpt-bench"
ANTHROPIC_MODEL = "claude-bench"
STREAM_MODEL = "gpt-stream"
PRICE = {"input": 2.5, "output": 10}  # USD per million tokens, like a mid-size hosted model
TOP_UP_NANO_USD = 10**13  # $10k: enough for ~10 million bench requests (the holds are small)
ACCOUNT = "bench"
SECRETS = {
    "TG_BENCH_OPENAI_KEY": "sk-bench-upstream-openai",
    "TG_BENCH_ANTHROPIC_KEY": "sk-ant-bench-upstream",
}


def config(workdir: Path, upstream_port: int, stream_port: int, workers: int) -> dict[str, Any]:
    fast = f"http://127.0.0.1:{upstream_port}"
    return {
        "server": {
            "host": "127.0.0.1",
            "http_port": free_port(),
            "https_port": None,  # plain HTTP on loopback: TLS cost is not what is measured
            "admin_port": free_port(),
            "ready_port": free_port(),
        },
        "translator": {"workers": workers, "socket_dir": str(workdir / "run")},
        "providers": [
            {"name": "fast-openai", "protocol": "openai", "base_url": f"{fast}/v1",
             "api_key": {"env": "TG_BENCH_OPENAI_KEY"}},
            {"name": "fast-anthropic", "protocol": "anthropic", "base_url": fast,
             "api_key": {"env": "TG_BENCH_ANTHROPIC_KEY"}},
            {"name": "sse-openai", "protocol": "openai", "base_url": f"http://127.0.0.1:{stream_port}/v1",
             "api_key": {"env": "TG_BENCH_OPENAI_KEY"}},
        ],
        "deployments": [
            {"name": "oai-fast", "provider": "fast-openai", "model": OPENAI_MODEL},
            {"name": "ant-fast", "provider": "fast-anthropic", "model": ANTHROPIC_MODEL},
            {"name": "oai-stream", "provider": "sse-openai", "model": STREAM_MODEL},
        ],
        "models": [
            {"name": OPENAI_MODEL, "deployments": ["oai-fast"], **priced()},
            {"name": ANTHROPIC_MODEL, "deployments": ["ant-fast"], **priced()},
            {"name": STREAM_MODEL, "deployments": ["oai-stream"], **priced()},
        ],
    }


def priced() -> dict[str, Any]:
    """A price for a bench model, where the gateway config knows prices (billing work in progress)."""
    if "price" in Model.model_fields:
        return {"price": PRICE}
    return {}


def write(cfg: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `make bench` (bench/gateway.py).\n" + yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Gateway:
    """A started stack, its base URL, one key, and the pids worth watching."""

    stack: Stack
    cfg: dict[str, Any]
    key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg['server']['http_port']}"

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.stack.supervisor.children}

    def translator_pids(self) -> dict[str, int]:
        return {n: p for n, p in self.pids().items() if n.startswith("translator-")}

    def envoy_counters(self) -> dict[str, int]:
        return envoy_counters(int(self.cfg["server"]["admin_port"]))

    def metering_events(self) -> int:
        with redis.Redis.from_url(self.stack.effective_redis_url) as r:
            return int(r.xlen(store.METERING_STREAM))


def start(workdir: Path, upstream_port: int, stream_port: int, *, workers: int, envoy_workers: int = 0,
          log_level: str) -> Gateway:
    os.environ.update(SECRETS)  # the translators read the provider credentials from here
    cfg = config(workdir, upstream_port, stream_port, workers)
    path = write(cfg, workdir / "gateway.yaml")
    stack = Stack(path, workdir=workdir / "stack", workers=workers, envoy_workers=envoy_workers,
                  redis_port=free_port(), log_level=log_level)
    stack.start()
    gw = Gateway(stack, cfg)
    try:
        gw.key = asyncio.run(new_key(stack.effective_redis_url))
    except BaseException:
        stack.stop()
        raise
    return gw


async def new_key(url: str) -> str:
    """A key of the bench account, funded (the bench's and bench.extproc_load's)."""
    r = aioredis.Redis.from_url(url)
    try:
        key = await keys.create_key(r, ACCOUNT, name="bench")
        await _top_up(r)
        return key
    finally:
        await r.aclose()


async def _top_up(r: aioredis.Redis) -> bool:
    """Credit the bench account where prepaid billing exists; False where it does not yet."""
    try:
        from core.billing.ops import Billing
    except ImportError:
        return False
    await Billing(r).credit(ACCOUNT, TOP_UP_NANO_USD, kind="topup", ref="bench", reason="make bench")
    return True


def admission_seen(url: str) -> bool:
    """Whether admission ran for the bench account: holds were placed on its balance."""
    with redis.Redis.from_url(url) as r:
        return bool(r.hexists(store.account_key(ACCOUNT), "held") or r.exists(f"tg:{{{ACCOUNT}}}:holds"))


def envoy_counters(admin_port: int) -> dict[str, int]:
    """Envoy's ext_proc counters and the downstream request count (admin /stats)."""
    url = f"http://127.0.0.1:{admin_port}/stats?usedonly"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own admin port on loopback
        text = resp.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.isdigit() and (".ext_proc." in name or name == "http.api.downstream_rq_total"):
            out[name] = int(value)
    return out


def messages_per_request(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """ext_proc messages Envoy sent and gRPC streams it opened per downstream request, per filter."""
    def delta(suffix: str, scope: str) -> int:
        return sum(v - before.get(k, 0) for k, v in after.items() if k.endswith(suffix) and f".{scope}." in k)

    requests = after.get("http.api.downstream_rq_total", 0) - before.get("http.api.downstream_rq_total", 0)
    if requests <= 0:
        return {}
    out = {}
    for scope in ("router", "upstream"):
        out[scope] = round(delta("stream_msgs_sent", scope) / requests, 2)
        out[f"{scope}_streams"] = round(delta("streams_started", scope) / requests, 2)
    return out
