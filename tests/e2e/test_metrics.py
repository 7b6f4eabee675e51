"""Prometheus metrics of all translator workers, on one endpoint."""

from __future__ import annotations

import time

import httpx

from fakes import Reply, Usage
from tests.harness import GatewayUnderTest


def _sample(text: str, name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_tokens_cost_and_rejections_are_counted_across_workers(gateway: GatewayUnderTest) -> None:
    """Requests served by either worker show up on the one /metrics endpoint, by model and deployment."""
    before = httpx.get(gateway.metrics).text
    for _ in range(4):
        gateway.fake.push(Reply(text="x", usage=Usage(input=10, output=3)))
        httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {gateway.key}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).raise_for_status()
    httpx.post(f"{gateway.http}/v1/chat/completions", json={"model": "gpt-test", "messages": []})  # no key: 401
    deadline = time.monotonic() + 5  # each worker writes its metric files as it finishes a request
    while True:
        after = httpx.get(gateway.metrics).text
        done = _sample(after, "tokengate_requests_total", model="gpt-test", deployment="oai", status="200") \
            - _sample(before, "tokengate_requests_total", model="gpt-test", deployment="oai", status="200")
        if done >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.02)

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert 4 == delta("tokengate_requests_total", model="gpt-test", deployment="oai", status="200")
    assert 40 == delta("tokengate_tokens_total", model="gpt-test", bucket="input")
    assert 4 * (10 * 2500 + 3 * 10000) == delta("tokengate_cost_nano_usd_total", model="gpt-test")
    assert 1 == delta("tokengate_rejected_total", kind="authentication")
    assert 4 == delta("tokengate_request_seconds_count", model="gpt-test")
