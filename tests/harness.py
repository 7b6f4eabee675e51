"""The running gateway for end-to-end tests: real Redis, translators and Envoy.

``GatewayUnderTest`` is what the ``gateway`` fixture yields: base URLs, a key,
the in-process fake provider (script it, read what tokengate sent it), and the
metering events written to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
import yaml

from core import event, keys, redisconn, store
from core.billing.ops import Billing
from fakes import FakeProvider
from tokengate.devstack import Stack
from tokengate.procs import free_port

T = TypeVar("T")
UPSTREAM_SECRETS = {
    "TG_TEST_OPENAI_KEY": "sk-upstream-openai-secret",
    "TG_TEST_ANTHROPIC_KEY": "sk-ant-upstream-secret",
    "TG_TEST_GEMINI_KEY": "upstream-gemini-secret",
    "TG_TEST_RESPONSES_KEY": "sk-upstream-responses-secret",
}
MAX_REQUEST_BYTES = 256 * 1024
# USD per million tokens
PRICES: dict[str, dict[str, float]] = {
    "gpt-test": {"input": 2.5, "output": 10, "cache_read": 1.25},
    "claude-test": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    "gemini-test": {"input": 0.3, "output": 2.5, "cache_read": 0.075},
    "gpt-resp-test": {"input": 1.25, "output": 10, "cache_read": 0.125},
    # embedding models: input only
    "embed-oai-test": {"input": 20},
    "embed-gem-test": {"input": 15},
}


def gateway_config(fake_port: int, workdir: Path) -> dict[str, Any]:
    os.environ.update(UPSTREAM_SECRETS)  # the translators this config starts read provider keys from here
    fake = f"http://127.0.0.1:{fake_port}"
    return {
        "server": {
            "host": "127.0.0.1",
            "http_port": free_port(),
            "https_port": free_port(),
            "admin_port": free_port(),
            "ready_port": free_port(),
            "tls_cert": str(workdir / "tls" / "dev.crt"),
            "tls_key": str(workdir / "tls" / "dev.key"),
            "max_request_bytes": MAX_REQUEST_BYTES,
            "portal_upstream": f"127.0.0.1:{free_port()}",  # tests/portal start the portal there
        },
        "translator": {"socket_dir": str(workdir / "run"), "metrics_listen": f"127.0.0.1:{free_port()}"},
        # leases on (the default), given back soon after use so that tests can wait for held == 0
        "billing": {"lease": {"idle_s": 0.3, "key_cache_s": 1}},
        "providers": [
            {"name": "fake-openai", "protocol": "openai", "base_url": f"{fake}/v1",
             "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
            {"name": "fake-anthropic", "protocol": "anthropic", "base_url": fake,
             "api_key": {"env": "TG_TEST_ANTHROPIC_KEY"}},
            {"name": "fake-gemini", "protocol": "gemini", "base_url": fake,
             "api_key": {"env": "TG_TEST_GEMINI_KEY"}},
            {"name": "fake-responses", "protocol": "openai-responses", "base_url": f"{fake}/v1",
             "api_key": {"env": "TG_TEST_RESPONSES_KEY"}},
            {"name": "nobody-home", "protocol": "anthropic", "base_url": f"http://127.0.0.1:{free_port()}",
             "api_key": {"env": "TG_TEST_ANTHROPIC_KEY"}, "timeout_connect_s": 0.5},
        ],
        "deployments": [
            {"name": "oai", "provider": "fake-openai", "model": "gpt-test"},
            {"name": "oai-renamed", "provider": "fake-openai", "model": "gpt-test-2025-01-01"},
            {"name": "ant", "provider": "fake-anthropic", "model": "claude-test"},
            {"name": "gem", "provider": "fake-gemini", "model": "gemini-test"},
            {"name": "resp", "provider": "fake-responses", "model": "gpt-resp-test"},
            {"name": "oai-embed", "provider": "fake-openai", "model": "embed-oai-test"},
            {"name": "gem-embed", "provider": "fake-gemini", "model": "embed-gem-test"},
            {"name": "down", "provider": "nobody-home", "model": "claude-down"},
        ],
        "models": [
            {"name": "gpt-test", "aliases": ["gpt-alias"], "deployments": ["oai"], "price": PRICES["gpt-test"]},
            {"name": "gpt-latest", "deployments": ["oai-renamed"], "price": PRICES["gpt-test"]},
            {"name": "claude-test", "deployments": ["ant"], "price": PRICES["claude-test"]},
            {"name": "gemini-test", "deployments": ["gem"], "price": PRICES["gemini-test"]},
            {"name": "claude-down", "deployments": ["down"], "price": PRICES["claude-test"]},  # nobody listens
            {"name": "gpt-resp-test", "deployments": ["resp"], "price": PRICES["gpt-resp-test"]},  # Responses API
            # embedding models (tests/e2e/test_embeddings.py); embed-gem-renamed's upstream name differs
            {"name": "embed-oai-test", "kind": "embedding", "deployments": ["oai-embed"],
             "price": PRICES["embed-oai-test"]},
            {"name": "embed-gem-test", "kind": "embedding", "deployments": ["gem-embed"],
             "price": PRICES["embed-gem-test"]},
            {"name": "embed-gem-renamed", "kind": "embedding", "deployments": ["gem-embed"],
             "price": PRICES["embed-gem-test"]},
        ],
    }


@dataclass
class GatewayUnderTest:
    stack: Stack
    fake: FakeProvider
    key: str
    cfg: dict[str, Any]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.cfg['server']['http_port']}"

    @property
    def https(self) -> str:
        return f"https://localhost:{self.cfg['server']['https_port']}"

    @property
    def metrics(self) -> str:
        return f"http://{self.cfg['translator']['metrics_listen']}/metrics"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.cfg['server']['admin_port']}"

    @property
    def tls_cert(self) -> str:
        return str(self.cfg["server"]["tls_cert"])

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.effective_redis_url)

    def _billing(self, fn: Callable[[Billing], Awaitable[T]]) -> T:
        async def call() -> T:
            r = redisconn.connect(self.stack.effective_redis_url)  # a cluster's or Sentinel's URL too
            try:
                return await fn(Billing(r))
            finally:
                await r.aclose()

        return asyncio.run(call())

    def new_key(self, account: str = "test", *, fund_usd: int = 100, **kw: Any) -> str:
        """A key for ``account``; a new account is credited ``fund_usd`` once."""
        if fund_usd:
            self.credit(account, fund_usd * 1_000_000_000, ref=f"test-initial-{account}")
        return self._billing(lambda b: keys.create_key(b.redis, account, **kw))

    def credit(self, account: str, nano: int, *, ref: str | None = None) -> int | None:
        return self._billing(lambda b: b.credit(account, nano, kind="topup", ref=ref or uuid.uuid4().hex,
                                                reason="test"))

    def wait_balance(self, account: str, expected: int, timeout: float = 5.0) -> tuple[int, int]:
        """(balance, held) once the balance is ``expected`` and nothing is held (events settled,
        leases given back), or as they are when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            bal, held = self.balance(account)
            if (bal == expected and held == 0) or time.monotonic() > deadline:
                return bal, held
            time.sleep(0.02)

    def balance(self, account: str) -> tuple[int, int]:
        """(balance, held) in nano-USD."""
        return self._billing(lambda b: b.balance(account))

    def metering_events(self, since: str = "0-0") -> list[dict[str, Any]]:
        """The events on the stream after ``since``, each as its JSON object (``core.event.as_json``)."""
        with self.redis() as r:
            rows = r.xrange(store.METERING_STREAM, min=f"({since}" if since != "0-0" else "-")
        return [event.as_json(event.from_entry(fields)) for _, fields in rows]

    def last_stream_id(self) -> str:
        with self.redis() as r:
            rows = r.xrevrange(store.METERING_STREAM, count=1)
        return rows[0][0].decode() if rows else "0-0"

    def wait_metering(self, since: str, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The metering events, written after ``since``, of the requests the fake received since its
        last reset (a late event of an earlier test is left out); waits until there are ``n``."""
        deadline = time.monotonic() + timeout
        while True:
            ours = {r.headers.get("x-request-id") for r in self.fake.requests}
            events = [e for e in self.metering_events(since) if e["request_id"] in ours]
            if len(events) >= n or time.monotonic() > deadline:
                return events
            time.sleep(0.02)


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@contextlib.contextmanager
def own_stack(workdir: Path, tweak: Callable[[dict[str, Any]], None] = lambda cfg: None, *, workers: int = 2,
              prepare: Callable[[FakeProvider, dict[str, Any], Path], None] | None = None,
              **stack: Any) -> Iterator[GatewayUnderTest]:
    """A stack of its own, on free ports, for tests that kill or stop its parts or need providers of their own;
    ``tweak`` edits its config, ``prepare`` too, given the running fake and the stack's folder as well."""
    with FakeProvider.running() as fake:
        cfg = gateway_config(fake.port, workdir)
        tweak(cfg)
        if prepare is not None:
            prepare(fake, cfg, workdir)
        st = Stack(write_config(cfg, workdir / "gateway.yaml"), workdir=workdir, workers=workers,
                   redis_port=free_port(), **{"log_level": "warning", **stack})  # a test may ask for another
        st.start()
        try:
            yield GatewayUnderTest(st, fake, "", cfg)
        finally:
            st.stop()


def stream_in_background(gw: GatewayUnderTest, key: str) -> tuple[threading.Thread, threading.Event, list[str]]:
    """A streamed chat completion read in a thread: set the event at its first bytes; the list gets
    "ended" or the name of the transport error that cut it."""
    first = threading.Event()
    outcome: list[str] = []

    def read() -> None:
        with httpx.stream("POST", f"{gw.http}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-test", "stream": True,
                                "messages": [{"role": "user", "content": "x"}]}) as r:
            try:
                for _ in r.iter_bytes():
                    first.set()
                outcome.append("ended")
            except httpx.HTTPError as exc:
                outcome.append(type(exc).__name__)

    t = threading.Thread(target=read)
    t.start()
    return t, first, outcome
