"""Prometheus metrics of all translator workers, on one endpoint."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from core import keys
from fakes import ErrorReply, Reply, Usage
from tests.harness import GatewayUnderTest
from translator import metrics


def _sample(text: str, name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_tokens_cost_and_rejections_are_counted_across_workers(gateway: GatewayUnderTest) -> None:
    """Requests served by either worker show up on the one /metrics endpoint, by model and deployment."""
    before = _scrape_settled(gateway)
    for _ in range(4):
        gateway.fake.push(Reply(text="x", usage=Usage(input=10, output=3)))
        httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {gateway.key}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).raise_for_status()
    httpx.post(f"{gateway.http}/v1/chat/completions", json={"model": "gpt-test", "messages": []})  # no key: 401
    after = _scrape_until(gateway, before, "tokengate_requests_total", 4, model="gpt-test", deployment="oai",
                          status="200")

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert 4 == delta("tokengate_requests_total", model="gpt-test", deployment="oai", status="200")
    assert 40 == delta("tokengate_tokens_total", model="gpt-test", bucket="input")
    assert 4 * (10 * 2500 + 3 * 10000) == delta("tokengate_cost_nano_usd_total", model="gpt-test")
    assert 1 == delta("tokengate_rejected_total", kind="authentication")
    assert 4 == delta("tokengate_request_seconds_count", model="gpt-test")


def _scrape_settled(gateway: GatewayUnderTest) -> str:
    """/metrics once the samples of every earlier request are in it: a translator hands its tally over once a
    second, so an earlier test's last request could otherwise land between this test's two scrapes."""
    time.sleep(metrics.FLUSH_S + 0.2)
    return httpx.get(gateway.metrics).text


def _scrape_until(gateway: GatewayUnderTest, before: str, name: str, want: float, **labels: str) -> str:
    """/metrics once ``name{labels}`` grew by ``want`` since ``before``. Each translator hands its tally of a
    request's samples to /metrics once a second, one sample after another (translator/metrics.py), so a
    scrape may catch a flush half done: the one returned comes a moment after the awaited growth was seen."""
    deadline = time.monotonic() + 5
    while True:
        after = httpx.get(gateway.metrics).text
        if _sample(after, name, **labels) - _sample(before, name, **labels) >= want:
            time.sleep(0.2)  # a flush takes microseconds; the next comes a second after it
            return httpx.get(gateway.metrics).text
        if time.monotonic() > deadline:
            return after
        time.sleep(0.02)


GEN_AI = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "fake-openai",
          "gen_ai_request_model": "gpt-test", "gen_ai_response_model": "gpt-test"}


def test_a_stream_is_measured_under_the_gen_ai_names(gateway: GatewayUnderTest) -> None:
    """A streamed answer: its tokens (input and output, cache and reasoning included), its duration, its time
    to first token (no earlier than the provider's first byte) and its time per output token, under the
    GenAI conventions' Prometheus names and attributes."""
    client = openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=gateway.key)
    before = _scrape_settled(gateway)
    gateway.fake.push(Reply(text="one two three four", usage=Usage(input=10, cache_read=2, output=5, reasoning=1),
                            delay_first_byte=0.05))
    chunks = list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}],
                                                 stream=True))
    assert chunks
    after = _scrape_until(gateway, before, "gen_ai_server_time_to_first_token_seconds_count", 1, **GEN_AI)

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **GEN_AI, **labels) - _sample(before, name, **GEN_AI, **labels)

    assert 1 == delta("gen_ai_server_time_to_first_token_seconds_count")
    ttft = delta("gen_ai_server_time_to_first_token_seconds_sum")
    assert 0.05 <= ttft <= delta("gen_ai_server_request_duration_seconds_sum")
    assert 1 == delta("gen_ai_server_time_per_output_token_seconds_count")
    assert 12 == delta("gen_ai_client_token_usage_sum", gen_ai_token_type="input")
    assert 6 == delta("gen_ai_client_token_usage_sum", gen_ai_token_type="output")
    assert 1 == delta("gen_ai_client_token_usage_bucket", gen_ai_token_type="input", le="16.0")
    assert 1 == delta("gen_ai_server_request_duration_seconds_count")
    assert 2 == _sample(after, "tokengate_tokens_total", model="gpt-test", bucket="cache_read") \
        - _sample(before, "tokengate_tokens_total", model="gpt-test", bucket="cache_read")


def test_a_retried_request_and_an_error_are_counted_per_deployment(gateway: GatewayUnderTest) -> None:
    """A 500 then a 200: two attempts and a failover on the deployment that answered; 500s on every attempt:
    the request's duration carries error_type (the error's kind)."""
    client = openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=gateway.key, max_retries=0)
    before = _scrape_settled(gateway)
    gateway.fake.push(Reply(error=ErrorReply(500, "boom")))
    gateway.fake.push(Reply(text="fine"))
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    gateway.fake.push(Reply(error=ErrorReply(500, "boom"), times=None))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    gateway.fake.reset()
    after = _scrape_until(gateway, before, "gen_ai_server_request_duration_seconds_count", 1, error_type="api_error",
                          **GEN_AI)

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert 1 == delta("gen_ai_server_request_duration_seconds_count", error_type="api_error", **GEN_AI)
    assert 1 <= delta("tokengate_failovers_total", model="gpt-test", deployment="oai")
    assert 2 <= delta("tokengate_upstream_attempts_total", model="gpt-test", deployment="oai")
    assert 1 == delta("tokengate_requests_total", model="gpt-test", deployment="oai", status="500")


def test_admission_outcomes_are_counted(gateway: GatewayUnderTest) -> None:
    """Admitted and refused for want of balance, each under its outcome."""
    broke = gateway.new_key("metricsbroke", fund_usd=0)
    before = _scrape_settled(gateway)
    gateway.fake.push(Reply(text="x"))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
    httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {gateway.key}"},
               json=body).raise_for_status()
    assert 429 == httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {broke}"},
                             json=body).status_code
    _scrape_until(gateway, before, "tokengate_admission_outcomes_total", 1, outcome="insufficient_balance")
    # the two requests may have been two translators', whose tallies reach /metrics up to a second apart
    after = _scrape_until(gateway, before, "tokengate_admission_outcomes_total", 1, outcome="admitted")
    for outcome in ("admitted", "insufficient_balance"):
        assert 1 <= _sample(after, "tokengate_admission_outcomes_total", outcome=outcome) \
            - _sample(before, "tokengate_admission_outcomes_total", outcome=outcome), outcome


def test_envoys_stats_are_on_the_same_endpoint(gateway: GatewayUnderTest) -> None:
    """One scrape of the translators' endpoint also returns Envoy's stats (upstream clusters, outlier detection)."""
    text = httpx.get(gateway.metrics).text
    assert 1 == _sample(text, "tokengate_envoy_stats_up") or "tokengate_envoy_stats_up 1" in text
    assert 'envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name="model/gpt-test"}' in text
    assert any(line.startswith("envoy_cluster_upstream_rq_total{") for line in text.splitlines())


def test_no_label_carries_an_account_a_key_or_a_request(gateway: GatewayUnderTest) -> None:
    """Requests from several accounts with chosen request ids add no series of their own: no label value on
    the endpoint is an account, a key id or a request id."""
    secrets = []
    for i in range(3):
        account = f"metricsacct{i}"
        key = gateway.new_key(account, name=f"metrics-key-{i}")
        rid = f"metrics-rid-{i}-{time.time_ns()}"
        listed: list[dict[str, str]] = gateway._billing(lambda b, a=account: keys.list_keys(b.redis, a))  # type: ignore[misc]
        key_ids = [k["id"] for k in listed]
        assert key_ids
        secrets += [account, key, *key_ids, rid]
        gateway.fake.push(Reply(text="x"))
        httpx.post(f"{gateway.http}/v1/chat/completions",
                   headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).raise_for_status()
    text = httpx.get(gateway.metrics).text
    labelled = [line for line in text.splitlines() if "{" in line and not line.startswith("#")]
    assert labelled
    for s in secrets:
        assert not [line for line in labelled if s in line], s


def test_an_embeddings_request_counts_input_tokens_only(gateway: GatewayUnderTest) -> None:
    """gen_ai.operation.name embeddings: its input tokens are recorded, and no output sample at all."""
    labels = {"gen_ai_operation_name": "embeddings", "gen_ai_request_model": "embed-oai-test"}
    before = _scrape_settled(gateway)
    client = openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=gateway.key, max_retries=0)
    assert client.embeddings.create(model="embed-oai-test", input="a few words to embed").usage.prompt_tokens > 0
    after = _scrape_until(gateway, before, "gen_ai_client_token_usage_count", 1, gen_ai_token_type="input",
                          **labels)

    def delta(name: str, **more: str) -> float:
        return _sample(after, name, **labels, **more) - _sample(before, name, **labels, **more)

    assert 1 == delta("gen_ai_client_token_usage_count", gen_ai_token_type="input")
    assert 0 == delta("gen_ai_client_token_usage_count", gen_ai_token_type="output")
    assert 1 == delta("gen_ai_server_request_duration_seconds_count")
