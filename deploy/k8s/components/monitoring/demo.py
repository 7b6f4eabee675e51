"""``make dashboard-png``: the dashboard drawn on real data from a local stack under load.

Starts tokengate's own stack (``tokengate.devstack.Stack``, as ``make run`` and the tests do: Redis, the
settler serving its metrics, two translator workers, Envoy) in front of the fake providers
(``fakes.FakeProvider``, answering after 0.05–1.8 s with some 500s, 429s and cut streams), and Debian's
``prometheus`` scraping the gateway's and the settler's ``/metrics`` every 5 s; sends mixed traffic
with the official OpenAI and Anthropic SDKs for ``--minutes`` (plain and streamed, a model whose second
deployment is down so that Envoy retries, fails over and ejects it, a key without balance, a rate-limited
key, a bad key, an unknown model); then draws the dashboard with render.py over the load's time range.

    .venv/bin/python deploy/k8s/components/monitoring/demo.py -o docs/observability/dashboard.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import render  # beside this file
import yaml
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from core import keys, redisconn
from core.billing.ops import Billing
from fakes import ErrorReply, FakeProvider, Reply, Usage
from tokengate.devstack import Stack
from tokengate.procs import free_port

SCRAPE_S = 5
GPT, CLAUDE = "gpt-4o-mini", "claude-haiku-4-5"
RNG = random.Random(16)  # noqa: S311 - the shape of the traffic, not a secret
WORDS = "the gateway meters every token it passes and settles the bill in redis".split()


def config(fake_port: int, workdir: Path) -> dict[str, Any]:
    os.environ["TG_DEMO_KEY"] = "sk-fake-provider-key"  # the translators started next read it
    fake = f"http://127.0.0.1:{fake_port}"
    return {
        "server": {"host": "127.0.0.1", "http_port": free_port(), "https_port": None, "admin_port": free_port(),
                   "ready_port": free_port()},
        "translator": {"socket_dir": str(workdir / "run"), "metrics_listen": f"127.0.0.1:{free_port()}"},
        "providers": [
            {"name": "fake-openai", "protocol": "openai", "base_url": f"{fake}/v1", "api_key": {"env": "TG_DEMO_KEY"}},
            {"name": "fake-anthropic", "protocol": "anthropic", "base_url": fake, "api_key": {"env": "TG_DEMO_KEY"}},
            # nothing listens there: Envoy's connection fails, it retries on the other deployment and ejects this one
            {"name": "unreachable", "protocol": "anthropic", "base_url": f"http://127.0.0.1:{free_port()}",
             "api_key": {"env": "TG_DEMO_KEY"}, "timeout_connect_s": 0.5},
        ],
        "deployments": [
            {"name": "openai-mini", "provider": "fake-openai", "model": GPT},
            {"name": "anthropic-haiku", "provider": "fake-anthropic", "model": CLAUDE},
            {"name": "haiku-unreachable", "provider": "unreachable", "model": CLAUDE},
        ],
        "models": [
            {"name": GPT, "deployments": ["openai-mini"], "price": {"input": 0.15, "output": 0.6, "cache_read": 0.075}},
            {"name": CLAUDE, "deployments": ["anthropic-haiku", "haiku-unreachable"],
             "price": {"input": 1, "output": 5, "cache_read": 0.1, "cache_write": 1.25}},
        ],
    }


def reply(model: str) -> Reply:
    """A provider's answer: a delay before the first byte, some text and usage; now and then an error."""
    roll = RNG.random()
    if roll < 0.06:  # half of them for every attempt of a request: retries do not help, the caller gets the 500
        return Reply(model=model, error=ErrorReply(500, "overloaded, try again"), delay_first_byte=0.2,
                     times=3 if roll < 0.03 else 1)
    if roll < 0.08:
        return Reply(model=model, error=ErrorReply(429, "slow down", retry_after=0.1))
    words = RNG.choices(WORDS, k=RNG.randint(5, 40))
    slow = 1.8 if model == CLAUDE else 0.9
    return Reply(model=model, text=" ".join(words), delay_first_byte=RNG.uniform(0.05, slow), delay_between=0.01,
                 usage=Usage(input=RNG.randint(20, 900), output=len(words), cache_read=RNG.choice([0, 0, 256])),
                 disconnect_after=3 if roll < 0.10 else None)  # a stream cut short now and then


def make_key(redis_url: str, account: str, usd: int, **kw: Any) -> str:
    async def go() -> str:
        r = redisconn.connect(redis_url)
        try:
            if usd:
                await Billing(r).credit(account, usd * 1_000_000_000, kind="topup", ref=f"demo-{account}",
                                        reason="dashboard demo")
            return await keys.create_key(r, account, **kw)
        finally:
            await r.aclose()

    return asyncio.run(go())


def clients(base: str, fake: FakeProvider, redis_url: str) -> list[Callable[[], None]]:
    """One callable per load thread: each sends one request (and ignores the error it may get)."""
    key = make_key(redis_url, "acme", 1000)
    oai = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    ant = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)
    broke = openai.OpenAI(base_url=f"{base}/v1", api_key=make_key(redis_url, "broke", 0), max_retries=0)
    limited = openai.OpenAI(base_url=f"{base}/v1", api_key=make_key(redis_url, "small", 100, rpm=20), max_retries=0)
    stranger = openai.OpenAI(base_url=f"{base}/v1", api_key="tg-not-a-key", max_retries=0)
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say something about gateways."}]
    ask_claude: list[MessageParam] = [{"role": "user", "content": "Say something about gateways."}]

    def chat() -> None:
        fake.push(reply(GPT))
        oai.chat.completions.create(model=GPT, messages=ask)

    def chat_stream() -> None:
        fake.push(reply(GPT))
        for _ in oai.chat.completions.create(model=GPT, messages=ask, stream=True,
                                             stream_options={"include_usage": True}):
            pass

    def messages(stream: bool) -> None:
        fake.push(reply(CLAUDE))
        if stream:
            with ant.messages.stream(model=CLAUDE, max_tokens=256, messages=ask_claude) as s:
                s.until_done()
        else:
            ant.messages.create(model=CLAUDE, max_tokens=256, messages=ask_claude)

    def odd_ones() -> None:  # mostly refused before any upstream call, each in its own way
        time.sleep(0.5)
        client, model = RNG.choice([(broke, GPT), (limited, GPT), (limited, GPT), (stranger, GPT), (oai, "gpt-x")])
        client.chat.completions.create(model=model, messages=ask)

    return [chat, chat_stream, chat_stream, lambda: messages(True), lambda: messages(True),
            lambda: messages(False), odd_ones]


def load(calls: list[Callable[[], None]], seconds: float) -> Counter[str]:
    """Run each call in a loop on its own thread for ``seconds``; the requests sent, by outcome."""
    deadline, outcomes, lock = time.monotonic() + seconds, Counter[str](), threading.Lock()

    def loop(call: Callable[[], None]) -> None:
        while time.monotonic() < deadline:
            try:
                call()
                outcome = "ok"
            except (openai.APIError, anthropic.APIError, httpx.HTTPError) as exc:  # what the clients may meet
                outcome = type(exc).__name__
            with lock:
                outcomes[outcome] += 1
            time.sleep(RNG.uniform(0, 0.3))

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return outcomes


@contextmanager
def prometheus(targets: list[str], workdir: Path) -> Iterator[str]:
    """Debian's prometheus scraping ``targets`` every SCRAPE_S seconds; its base URL."""
    exe = shutil.which("prometheus")
    if not exe:
        raise SystemExit("demo.py: prometheus is missing: apt-get install prometheus (or `make promtool`)")
    cfg = {"global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S - 1}s"},
           "scrape_configs": [{"job_name": "tokengate", "static_configs": [
               {"targets": targets, "labels": {"namespace": "tokengate-demo"}}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    url = f"http://127.0.0.1:{free_port()}"
    with open(workdir / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([exe, f"--config.file={workdir / 'prometheus.yml'}", "--log.level=warn",
                                 f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address={url[7:]}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError), urllib.request.urlopen(f"{url}/-/ready", timeout=1):  # noqa: S310 - loopback
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"demo.py: prometheus did not start; see {workdir / 'prometheus.log'}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=3)
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tokengate-dashboard."))
    with FakeProvider.running() as fake:
        cfg = config(fake.port, workdir)
        (workdir / "gateway.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        settler = f"127.0.0.1:{free_port()}"
        stack = Stack(workdir / "gateway.yaml", workdir=workdir, workers=2, redis_port=free_port(),
                      log_level="warning", settler_metrics=settler)
        stack.start()
        try:
            with prometheus([cfg["translator"]["metrics_listen"], settler], workdir) as prom:
                calls = clients(f"http://127.0.0.1:{cfg['server']['http_port']}", fake, stack.effective_redis_url)
                start = time.time()
                print(f"demo.py: load for {args.minutes:g} min (stack and Prometheus data in {workdir})", flush=True)
                outcomes = load(calls, args.minutes * 60)
                time.sleep(SCRAPE_S + 2)  # the last requests' metrics flushed (1 s) and scraped
                end = time.time()
                print(f"demo.py: {outcomes.total()} requests sent ({dict(outcomes)}); drawing {args.out}", flush=True)
                dashboard = json.loads((render.HERE / "dashboard.json").read_text())
                try:
                    empty = render.render(dashboard, render.http_fetch(prom), start, end, SCRAPE_S, args.out)
                except render.RenderError as exc:
                    print(f"demo.py: {exc}", file=sys.stderr)
                    return 1
        finally:
            stack.stop()
    print(f"demo.py: wrote {args.out}; panels with no data: {', '.join(empty) or 'none'}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
