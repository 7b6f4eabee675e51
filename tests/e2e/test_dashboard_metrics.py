"""Every metric the dashboard and the alert rules read exists on a running gateway: the names are collected
from its one /metrics endpoint (translators and Envoy) and the settler's, after a few requests."""

from __future__ import annotations

import re

import httpx
import openai

from fakes import ErrorReply, Reply, Usage
from tests.deploy.monitoring import dashboard_exprs, metric_names, rule_exprs
from tests.harness import GatewayUnderTest

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)[{ ]")


def _names(text: str) -> set[str]:
    return {m.group(1) for line in text.splitlines() if (m := _SAMPLE.match(line))}


def test_every_metric_the_dashboard_and_the_alerts_read_exists(gateway: GatewayUnderTest) -> None:
    """A plain, a streamed, a retried and a refused request; then each name the PromQL reads is among those served."""
    client = openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=gateway.key, max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    gateway.fake.push(Reply(text="hello", usage=Usage(input=5, output=2)))
    client.chat.completions.create(model="gpt-test", messages=messages)  # type: ignore[arg-type]
    gateway.fake.push(Reply(text="one two three", usage=Usage(input=5, output=3)))
    list(client.chat.completions.create(model="gpt-test", messages=messages, stream=True))  # type: ignore[arg-type]
    gateway.fake.push(Reply(error=ErrorReply(500, "boom")))
    gateway.fake.push(Reply(text="retried"))
    client.chat.completions.create(model="gpt-test", messages=messages)  # type: ignore[arg-type]
    assert 401 == httpx.post(f"{gateway.http}/v1/chat/completions", json={"model": "gpt-test"}).status_code
    served = _names(httpx.get(gateway.metrics).text)
    assert gateway.stack.settler_metrics
    served |= _names(httpx.get(f"http://{gateway.stack.settler_metrics}/metrics").text)
    assert any(n.startswith("envoy_") for n in served) and any(n.startswith("gen_ai_") for n in served)

    read = set().union(*(metric_names(e) for e in [*dashboard_exprs(), *rule_exprs()]))
    assert len(read) >= 15
    assert [] == sorted(read - served)
