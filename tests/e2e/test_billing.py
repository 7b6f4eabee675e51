"""Prepaid billing end to end: holds, exact charges, 429 on an empty balance, no double charge."""

from __future__ import annotations

import concurrent.futures
import time
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from core import store
from fakes import Reply, Usage
from tests.harness import PRICES, GatewayUnderTest

NANO = Decimal(1_000_000_000)


def expected_cost(model: str, u: Usage) -> int:
    """Cost in nano-USD computed from the price table independently of tokengate's code."""
    p = {k: Decimal(str(v)) for k, v in PRICES[model].items()}
    usd = (u.input * p["input"] + u.cache_read * p.get("cache_read", p["input"])
           + u.cache_write * p.get("cache_write", p["input"])
           + (u.output + u.reasoning) * p["output"]) / Decimal(1_000_000)
    nano = usd * NANO
    return int(nano) if nano == int(nano) else int(nano) + 1


def _sid(stream_id: bytes) -> tuple[int, int]:
    ms, _, seq = stream_id.partition(b"-")
    return int(ms), int(seq)


def test_mixed_run_charges_exactly_the_reported_usage(gateway: GatewayUnderTest) -> None:
    """Streamed, whole, cross-protocol and failed requests: balance = top-up - sum of exact costs."""
    key = gateway.new_key("exact", fund_usd=10)
    start, _ = gateway.balance("exact")
    oai = openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0)
    ant = anthropic.Anthropic(base_url=gateway.http, api_key=key, max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    runs = [
        ("gpt-test", Usage(input=1200, output=300, cache_read=800), lambda: oai.chat.completions.create(
            model="gpt-test", messages=msgs)),  # type: ignore[arg-type]
        ("gpt-test", Usage(input=50, output=2000, reasoning=700), lambda: list(oai.chat.completions.create(
            model="gpt-test", messages=msgs, stream=True))),  # type: ignore[arg-type]
        ("claude-test", Usage(input=3000, output=120, cache_read=9000, cache_write=400), lambda: ant.messages.create(
            model="claude-test", max_tokens=500, messages=msgs)),  # type: ignore[arg-type]
        ("claude-test", Usage(input=77, output=33), lambda: oai.chat.completions.create(
            model="claude-test", messages=msgs)),  # type: ignore[arg-type]
        ("gemini-test", Usage(input=10_000, output=5_000, cache_read=2_000), lambda: list(ant.messages.stream(
            model="gemini-test", max_tokens=100, messages=msgs).__enter__())),  # type: ignore[arg-type]
    ]
    total = 0
    for model, usage, call in runs:
        gateway.fake.push(Reply(text="ok", usage=usage))
        call()
        total += expected_cost(model, usage)
    gateway.fake.push(Reply(status=500, times=None))  # every attempt (retries included) fails
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-test", messages=msgs)  # type: ignore[arg-type]
    assert (start - total, 0) == gateway.wait_balance("exact", start - total)
    charges = [e for e in gateway._billing(lambda b: b.ledger("exact", 100)) if e["type"] == "charge"]
    assert len(runs) == len(charges)
    assert total == -sum(int(e["amount"]) for e in charges)
    oai.close()
    ant.close()


def test_stream_cut_short_is_billed_for_what_was_observed(gateway: GatewayUnderTest) -> None:
    """An upstream that drops the stream after usage was seen is billed for that usage, once."""
    key = gateway.new_key("cut", fund_usd=10)
    start, _ = gateway.balance("cut")
    gateway.fake.push(Reply(text="a b c d e f", usage=Usage(input=400, output=60), disconnect_after=3))
    since = gateway.last_stream_id()
    with anthropic.Anthropic(base_url=gateway.http, api_key=key, max_retries=0) as ant, \
            pytest.raises(Exception, match="incomplete|closed|peer"):  # the SDK's transport error
        with ant.messages.stream(model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "x"}]) as s:
            s.get_final_message()
    [event] = gateway.wait_metering(since)
    assert (False, 400) == (event["complete"], event["usage"]["input"])
    cost = event["cost_nano"]
    assert 0 < cost == expected_cost("claude-test", Usage(input=400, output=event["usage"].get("output", 0)))
    assert (start - cost, 0) == gateway.wait_balance("cut", start - cost)


def test_empty_balance_gets_429_insufficient_quota_without_retry(gateway: GatewayUnderTest) -> None:
    """No balance: 429 in the caller's shape, type insufficient_quota, x-should-retry: false; nothing upstream."""
    key = gateway.new_key("broke", fund_usd=0)
    r = httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
    assert (429, "false") == (r.status_code, r.headers["x-should-retry"])
    assert ("insufficient_quota", "insufficient_quota") == (r.json()["error"]["type"], r.json()["error"]["code"])
    with anthropic.Anthropic(base_url=gateway.http, api_key=key) as ant, pytest.raises(anthropic.RateLimitError):
        ant.messages.create(model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert [] == gateway.fake.requests


def test_concurrent_requests_cannot_overdraw(gateway: GatewayUnderTest) -> None:
    """100 concurrent requests over both translators on a balance covering about 5 holds: 5 run, 95 get 429.

    (Too small a balance for a lease: each request gets a hold of its own, as without leases.)"""
    from core.config import load
    from translator.admission import estimate_hold

    body = {"model": "gpt-test", "max_tokens": 1000, "messages": [{"role": "user", "content": "go"}]}
    raw = httpx.Request("POST", "http://x", json=body).content
    hold = estimate_hold(load(gateway.stack.config_path).prices()["gpt-test"], len(raw), 1000)
    key = gateway.new_key("race", fund_usd=0)
    gateway.credit("race", hold * 5 + hold // 2)
    # The admitted five answer only after every other request had its 429, even on a loaded machine: one
    # that finished (and released its hold) earlier would let a sixth in, without any overdraw.
    gateway.fake.push(Reply(text="slow", usage=Usage(input=10, output=10), delay_first_byte=15.0, times=None))

    def call(_: int) -> int:
        return httpx.post(f"{gateway.http}/v1/chat/completions", content=raw, timeout=30,
                          headers={"authorization": f"Bearer {key}", "content-type": "application/json"}).status_code

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        statuses = list(pool.map(call, range(100)))
    assert (5, 95) == (statuses.count(200), statuses.count(429))
    spent = 5 * expected_cost("gpt-test", Usage(input=10, output=10))
    assert (hold * 5 + hold // 2 - spent, 0) == gateway.wait_balance("race", hold * 5 + hold // 2 - spent)


def test_settling_the_same_event_twice_charges_once(gateway: GatewayUnderTest) -> None:
    """A metering event delivered twice (producer retry, redelivery) is applied once."""
    key = gateway.new_key("dup", fund_usd=1)
    start, _ = gateway.balance("dup")
    since = gateway.last_stream_id()
    gateway.fake.push(Reply(text="x", usage=Usage(input=100, output=100)))
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    [event] = gateway.wait_metering(since)
    cost = event["cost_nano"]
    gateway.wait_balance("dup", start - cost)
    with gateway.redis() as r:
        again = r.xadd(store.METERING_STREAM, {"event": __import__("orjson").dumps(event)})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until the settler has read and acknowledged the copy
            [group] = r.xinfo_groups(store.METERING_STREAM)
            if _sid(group["last-delivered-id"]) >= _sid(again) and group["pending"] == 0:
                break
            time.sleep(0.02)
    assert (start - cost, 0) == gateway.balance("dup")


def test_usage_aggregates_by_day_model_and_key(gateway: GatewayUnderTest) -> None:
    """Settled requests appear in the day's usage by model and by key, with their cost."""
    import datetime as dt

    key = gateway.new_key("agg", fund_usd=5)
    key_id = store.key_id(store.digest(key))
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as oai:
        for _ in range(3):
            gateway.fake.push(Reply(text="x", usage=Usage(input=10, output=4)))
            oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    today = dt.datetime.now(dt.UTC).date()
    cost = 3 * expected_cost("gpt-test", Usage(input=10, output=4))
    gateway.wait_balance("agg", 5_000_000_000 - cost)
    [row] = gateway._billing(lambda b: b.usage("agg", today, today))
    assert ("gpt-test", 3, 30, 12, cost) == (row["model"], row["requests"], row["input"], row["output"], row["cost"])
    [by_key] = gateway._billing(lambda b: b.usage("agg", today, today, key_id=key_id))
    assert row == by_key


def test_rate_limit_per_key_is_429_with_retry_after(gateway: GatewayUnderTest) -> None:
    """A key with rpm=2 gets its third request in a minute refused with Retry-After."""
    key = gateway.new_key("rl", fund_usd=1, rpm=2)
    codes = []
    for _ in range(3):
        r = httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
        codes.append(r.status_code)
    assert [200, 200, 429] == codes
    assert "rate_limit_exceeded" == r.json()["error"]["code"]
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_key_allow_list_is_403(gateway: GatewayUnderTest) -> None:
    """A key limited to some models gets 403 for the others."""
    key = gateway.new_key("allow", fund_usd=1, models=["gpt-test"])
    r = httpx.post(f"{gateway.http}/v1/messages", headers={"x-api-key": key},
                   json={"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert (403, "permission_error") == (r.status_code, r.json()["error"]["type"])


def test_keys_never_appear_in_logs_redis_or_upstream(gateway: GatewayUnderTest) -> None:
    """The client key is stored only as a hash and never logged or forwarded."""
    key = gateway.new_key("secret", fund_usd=1)
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
        list(oai.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "x"}], stream=True))  # type: ignore[arg-type]
    secret = key.split("-", 3)[3]
    for req in gateway.fake.requests:
        assert secret not in str(dict(req.headers)) + req.target + req.body.decode()
    from tests.e2e.conftest import logs

    for name, text in logs(gateway).items():
        assert secret not in text, name
    readers = {"string": "get", "hash": "hgetall", "set": "smembers", "zset": "zrange", "stream": "xrange"}
    with gateway.redis() as r:
        for k in r.scan_iter(match="*"):
            t = r.type(k).decode()
            if t == "none":
                continue  # expired between SCAN and TYPE
            args = (k, 0, -1) if t == "zset" else (k,)
            dump = getattr(r, readers[t])(*args)
            assert secret.encode() not in repr(dump).encode() and secret.encode() not in k


def test_large_balances_stay_exact(gateway: GatewayUnderTest) -> None:
    """A $5,000,000 top-up and a charge against it keep every nano-dollar (no float formatting)."""
    key = gateway.new_key("whale", fund_usd=0)
    assert 5_000_000 * 1_000_000_000 == gateway.credit("whale", 5_000_000 * 1_000_000_000)
    gateway.fake.push(Reply(text="x", usage=Usage(input=1, output=1)))
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    expected = 5_000_000 * 1_000_000_000 - expected_cost("gpt-test", Usage(input=1, output=1))
    assert (expected, 0) == gateway.wait_balance("whale", expected)


def test_an_event_with_no_cost_settles_and_is_counted(gateway: GatewayUnderTest) -> None:
    """A failed upstream call or a free model costs 0: it still settles (no dead letter) and counts as a request."""
    import datetime as dt

    gateway.new_key("free", fund_usd=1)
    start, _ = gateway.balance("free")
    event = {"event_id": "free-1", "account": "free", "model": "gpt-test", "key_id": "k", "usage": {},
             "cost_nano": 0, "status": 502, "complete": False, "ts": time.time()}
    assert "ok" == gateway._billing(lambda b: b.settle(event))
    today = dt.datetime.now(dt.UTC).date()
    [row] = gateway._billing(lambda b: b.usage("free", today, today))
    assert ((start, 0), 1, 1) == (gateway.balance("free"), row["requests"], row["failed"])


def test_a_batch_of_several_accounts_settles_each_event_once_and_adds_usage_up(gateway: GatewayUnderTest) -> None:
    """One settle call per account in the batch: interleaved events of two accounts, one of them
    sent twice, give per-event outcomes in order, exact balances, usage summed per model and key,
    the ledger one charge per event, and each key's last use its latest event."""
    import datetime as dt

    from core.billing.ops import Settlement

    for account in ("batcha", "batchb"):
        gateway.new_key(account, fund_usd=1)
    start = {a: gateway.balance(a)[0] for a in ("batcha", "batchb")}
    now = _now_with(10)

    def ev(i: int, account: str, key: str, cost: int, **usage: int) -> dict[str, Any]:
        return {"event_id": f"batch-{i}", "account": account, "model": "gpt-test", "key_id": key,
                "usage": usage, "cost_nano": cost, "status": 200, "complete": True, "ts": now + i}

    events = [ev(1, "batcha", "ka", 100, input=3, output=4), ev(2, "batchb", "kb", 7, input=1),
              ev(3, "batcha", "kc", 20, input=5, output=1), ev(1, "batcha", "ka", 100, input=3, output=4),
              ev(4, "batcha", "ka", 0)]
    outcomes = gateway._billing(lambda b: b.settle_many([Settlement.of(e) for e in events]))
    assert ["ok", "ok", "ok", "duplicate", "ok"] == outcomes
    assert (start["batcha"] - 120, start["batchb"] - 7) == (gateway.balance("batcha")[0], gateway.balance("batchb")[0])
    today = dt.datetime.now(dt.UTC).date()
    [row] = gateway._billing(lambda b: b.usage("batcha", today, today))
    [ka] = gateway._billing(lambda b: b.usage("batcha", today, today, key_id="ka"))
    assert (3, 8, 5, 120) == (row["requests"], row["input"], row["output"], row["cost"])
    assert (2, 3, 4, 100) == (ka["requests"], ka["input"], ka["output"], ka["cost"])
    charges = [e for e in gateway._billing(lambda b: b.ledger("batcha")) if e["type"] == "charge"]
    assert ["-20", "-100"] == [e["amount"] for e in charges]
    with gateway.redis() as r:
        last = {k.decode(): float(v) for k, v in r.hgetall(store.key_last_used("batcha")).items()}
    assert {"ka": round(now + 4, 3), "kc": round(now + 3, 3)} == {k: round(v, 3) for k, v in last.items()}


def _now_with(seconds: float) -> float:
    """The time now, once ``seconds`` from now is still the same UTC day (so that what a test dates a
    little later lands on today's usage row): just before midnight it waits for the new day."""
    day = 86_400
    now = time.time()
    if int(now // day) != int((now + seconds) // day):
        time.sleep(day - now % day + 0.1)
        now = time.time()
    return now


@pytest.mark.parametrize("reap_charge", [0, 3_000])
def test_a_reaped_hold_leaves_a_record_and_a_late_event_is_charged_only_the_difference(
        gateway: GatewayUnderTest, reap_charge: int) -> None:
    """A request that never reported: the reaper releases its hold, writes a 'reaped' ledger entry
    charging what admission said (0 under billing.reaped_holds: release, the prompt estimate under
    charge_prompt) and counts it in usage. Its event, should it come later, is charged the rest and
    not counted twice: balance = credits − true cost, held 0."""
    import datetime as dt

    account = f"reaped{reap_charge}"
    api_key = gateway.new_key(account, fund_usd=1)
    start, _ = gateway.balance(account)
    digest = store.digest(api_key)
    now = _now_with(30)
    admitted = gateway._billing(lambda b: b.admit(account, digest, "gpt-test", hold=50_000, hold_id="lost-1",
                                                  hold_ttl_s=20, reap_charge=reap_charge, now=now))
    assert ("ok", (start, 50_000)) == (admitted.outcome, gateway.balance(account))
    assert 50_000 == gateway._billing(lambda b: b.release_expired(account, now=now + 21))
    assert (start - reap_charge, 0) == gateway.balance(account)
    [entry] = gateway._billing(lambda b: b.ledger(account, 1))
    assert ("reaped", str(-reap_charge), "lost-1", "gpt-test", admitted.key_id) == (
        entry["type"], entry["amount"], entry["ref"], entry["model"], entry["key"])
    today = dt.datetime.now(dt.UTC).date()
    [row] = gateway._billing(lambda b: b.usage(account, today, today))
    assert (1, 1, reap_charge) == (row["requests"], row["reaped"], row["cost"])

    late = {"event_id": "lost-1", "account": account, "model": "gpt-test", "key_id": admitted.key_id,
            "usage": {"input": 10, "output": 5}, "cost_nano": 2_000, "status": 200, "complete": True, "ts": now}
    assert "ok" == gateway._billing(lambda b: b.settle(late))
    assert (start - 2_000, 0) == gateway.balance(account)
    [row] = gateway._billing(lambda b: b.usage(account, today, today))
    assert (1, 1, 2_000, 10) == (row["requests"], row["reaped"], row["cost"], row["input"])
    [entry] = gateway._billing(lambda b: b.ledger(account, 1))
    assert ("charge" if reap_charge < 2_000 else "adjust", str(reap_charge - 2_000)) == (entry["type"], entry["amount"])


def test_an_alias_is_the_model_for_allow_lists_metering_and_the_upstream(gateway: GatewayUnderTest) -> None:
    """A key allowed 'gpt-test' may call its alias 'gpt-alias'; the event, the price and the upstream see 'gpt-test'."""
    key = gateway.new_key("aliased", fund_usd=1, models=["gpt-test"])
    since = gateway.last_stream_id()
    gateway.fake.push(Reply(text="x", usage=Usage(input=10, output=2)))
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=key, max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-alias", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    [event] = gateway.wait_metering(since)
    [sent] = gateway.fake.requests
    assert ("gpt-test", "gpt-test", expected_cost("gpt-test", Usage(input=10, output=2))) == (
        event["model"], sent.json()["model"], event["cost_nano"])
