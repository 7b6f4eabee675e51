"""Admission against a lease: what the Admitter counts locally matches Redis and the metering events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from core import store
from core.billing.ops import Billing
from tests.inprocess.harness import (
    CHAT,
    NANO_PER_USD,
    InProcess,
    bearer,
    immediate,
    request_body,
    request_headers,
    response_body,
    run,
)
from tokengate.procs import free_port
from translator.admission import estimate_hold
from translator.extproc.router import RouterProcessor

ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-test",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26}}
BODY = orjson.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64})
FUNDS = 100 * NANO_PER_USD


async def admitted(tg: InProcess, key: str) -> RouterProcessor:
    """A request past admission (routed, waiting for its answer)."""
    proc = RouterProcessor(tg.gw)
    await proc.on_request_headers(request_headers(CHAT, bearer(key)))
    await proc.on_request_body(request_body(BODY))
    return proc


def answer(proc: RouterProcessor) -> None:
    proc.on_response_body(response_body(ANSWER, status=200, deployment="oai"))
    proc.on_response_body(response_body(b"", end=True))
    proc.close()  # as the servicer does once the last answer went out
    proc.gw.run_later()  # and what it left for a moment later


def test_lease_accounting_follows_each_request_and_redis_holds_the_lease(redis_url: str) -> None:
    """inflight is the running requests' holds, spent their costs; Redis holds the lease, then only what was spent."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        hold = estimate_hold(tg.gw.prices["gpt-test"], len(BODY), 64)
        first = await admitted(tg, key)
        second = await admitted(tg, key)  # admitted locally against the lease the first one got
        lease = tg.gw.admitter.leases["acme"]
        assert (lease.inflight, lease.spent, first.lease_id, second.lease_id) == (2 * hold, 0, lease.id, lease.id)
        assert await tg.gw.billing.balance("acme") == (FUNDS, lease.granted)
        assert lease.granted == tg.gw.cfg.billing.lease.max_nano  # the balance covers the largest lease

        answer(first)
        [event] = tg.meter.events
        assert (lease.inflight, lease.spent) == (hold, event["cost_nano"])
        answer(second)
        assert (lease.inflight, lease.spent) == (0, 2 * event["cost_nano"])
        assert [e["lease"] for e in tg.meter.events] == [lease.id, lease.id]

        assert await tg.gw.admitter.give_back(idle_only=True) == 0  # just used: not idle yet
        back = await tg.gw.admitter.give_back(idle_only=False)
        assert back == lease.granted - 2 * event["cost_nano"]
        assert tg.gw.admitter.leases == {}
        # What the requests cost stays held until the settler charges their events.
        assert await tg.gw.billing.balance("acme") == (FUNDS, 2 * event["cost_nano"])

    run(redis_url, scenario)


def test_a_request_refused_after_admission_is_metered_and_releases_its_share_of_the_lease(redis_url: str) -> None:
    """A 400 from translation (after the hold) is one event with status 400 and no cost; inflight back to 0."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ex = await tg.process([request_headers(CHAT, bearer(key)),
                               request_body({"model": "gemini-test",
                                             "messages": [{"role": "user", "content": [image]}]})],
                              then="forbid")
        status, _, body = immediate(ex.responses[-1])
        assert (status, body["error"]["type"]) == (400, "invalid_request_error")
        [event] = ex.events
        assert (event["status"], event["cost_nano"], event["complete"], event["cut_short"]) == (400, 0, False, False)
        lease = tg.gw.admitter.leases["acme"]
        assert (lease.inflight, lease.spent, event["lease"]) == (0, 0, lease.id)

    run(redis_url, scenario)


def test_a_request_cut_before_its_answer_is_charged_its_estimated_prompt(redis_url: str) -> None:
    """Envoy closes the stream after routing: one cut-short event, the prompt estimated from the body size."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        ex = await tg.process([request_headers(CHAT, bearer(key)), request_body(BODY)], then="cancel")
        [event] = ex.events
        assert (event["status"], event["cut_short"], event["complete"], event["usage"], event["usage_estimated"]) == (
            0, True, False, {"input": len(BODY) // 4}, True)
        lease = tg.gw.admitter.leases["acme"]
        assert (lease.inflight, lease.spent) == (0, event["cost_nano"])

    run(redis_url, scenario)


@pytest.mark.parametrize("failure", ["closed-port", "connection-error"])
def test_give_back_with_redis_failing_drops_the_lease_locally_without_raising(
        redis_url: str, failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease is forgotten (the reaper releases it at its TTL) and give_back returns 0."""
    async def scenario(tg: InProcess) -> None:
        key = await tg.key("acme")
        answer(await admitted(tg, key))
        lease = tg.gw.admitter.leases["acme"]
        assert lease.available > 0
        admitter = tg.gw.admitter
        if failure == "closed-port":
            gone = aioredis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))  # refused at once, no retries
            admitter.billing = Billing(gone)
        else:
            async def refuse(account: str, lease_id: str, amount: int) -> int:
                raise RedisConnectionError("Connection reset by peer")
            monkeypatch.setattr(admitter.billing, "return_lease", refuse)
        try:
            assert await admitter.give_back(idle_only=False) == 0
        finally:
            if failure == "closed-port":
                await admitter.billing.redis.aclose()
        assert admitter.leases == {}
        assert await tg.gw.billing.balance("acme") == (FUNDS, lease.granted)  # still held in Redis

    run(redis_url, scenario)


def test_charge_prompt_prices_a_reaped_hold_and_an_unfinished_request_alike(redis_url: str, tmp_path: Path) -> None:
    """Under billing.reaped_holds: charge_prompt the reaper's charge (stored with the hold) and the event
    the in-flight file keeps are the same estimate: the prompt at 4 bytes a token, as a request cut short
    before its usage arrived is billed."""
    from core.event import MeteringEvent, as_json
    from core.usage import Usage
    from tests.inprocess.harness import config, in_process
    from translator.inflight import Inflight

    base = config()  # frozen: copied with the policy, and no lease (a hold of its own, for the reaper)
    billing = base.billing.model_copy(update={"reaped_holds": "charge_prompt",
                                              "lease": base.billing.lease.model_copy(update={"enabled": False})})
    cfg = base.model_copy(update={"billing": billing})

    async def scenario() -> tuple[bytes | None, list[MeteringEvent], int, RouterProcessor]:
        async with in_process(redis_url, cfg) as tg:
            tg.gw.inflight = Inflight(tmp_path / "inflight")
            tg.gw.inflight.recover()
            key = await tg.key("reapy")
            proc = await admitted(tg, key)
            info = await tg.redis.hget(store.hold_info("reapy"), proc.event_id)
            expected = tg.gw.prices["gpt-test"].cost_nano(Usage(input=len(BODY) // 4))
            return info, Inflight(tmp_path / "inflight").recover(), expected, proc

    info, [recovered], expected, proc = asyncio.run(scenario())
    event = as_json(recovered)
    assert info is not None and int(info.split()[0]) == expected > 0
    assert (expected, True, {"input": len(BODY) // 4}) == (event["cost_nano"], event["usage_estimated"],
                                                           event["usage"])
    assert proc.key is not None
    assert {k: event[k] for k in ("event_id", "request_id", "account", "key_id", "model", "protocol", "stream",
                                  "hold_nano", "lease", "status", "complete", "cut_short", "finish", "deployment",
                                  "attempts")} == {
        "event_id": proc.event_id, "request_id": proc.request_id, "account": "reapy", "key_id": proc.key.key_id,
        "model": "gpt-test", "protocol": "openai", "stream": False, "hold_nano": proc.hold, "lease": "",
        "status": 0, "complete": False, "cut_short": True, "finish": None, "deployment": "", "attempts": 0}
    assert event["ts"] > 0
