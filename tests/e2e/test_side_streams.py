"""Envoy ends every ext_proc side stream with a half-close that the translator answers with OK.

Without ``envoy.reloadable_features.ext_proc_graceful_grpc_close`` (the template's
``layered_runtime``) Envoy resets a side stream as soon as its filter is done: always
for the per-attempt filter's streams, and for a router stream whenever the reset beats
the translator's status. A status sent on a reset call leaks native memory in grpc.aio
(grpc/grpc#43360; docs/performance.md, "Soak"), so this counts Envoy's resets of
translator streams across every kind of request and wants none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakes import Reply
from tests.harness import GatewayUnderTest, own_stack

CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    def tweak(cfg: dict[str, Any]) -> None:  # a model on a per-attempt route: the upstream filter runs
        cfg["models"].append({"name": "failover-test", "deployments": ["ant", "oai"],
                              "price": {"input": 3, "output": 15}})

    with own_stack(tmp_path_factory.mktemp("side-streams"), tweak, workers=1) as g:
        yield g


def _stat(gw: GatewayUnderTest, name: str) -> int:
    for line in httpx.get(f"{gw.admin}/stats?filter=^cluster\\.translator\\.").text.splitlines():
        stat, _, value = line.partition(": ")
        if stat == f"cluster.translator.{name}":
            return int(value)
    raise AssertionError(f"no cluster.translator.{name} in Envoy's stats")


def test_no_translator_stream_is_reset_by_envoy(gw: GatewayUnderTest) -> None:
    key = gw.new_key("sidestreams")
    auth = {"authorization": f"Bearer {key}"}
    resets, streams = _stat(gw, "upstream_rq_tx_reset"), _stat(gw, "upstream_rq_total")
    for _ in range(5):
        for model, stream in (("gpt-test", False), ("gpt-test", True), ("claude-test", False),
                              ("failover-test", False), ("failover-test", True)):
            gw.fake.push(Reply(text="hello there"))
            r = httpx.post(f"{gw.http}/v1/chat/completions", headers=auth, timeout=10,
                           json={"model": model, "messages": CHAT, "stream": stream})
            assert 200 == r.status_code, r.text
        assert 200 == httpx.get(f"{gw.http}/v1/models", headers=auth).status_code
        assert 401 == httpx.post(f"{gw.http}/v1/chat/completions", json={"model": "gpt-test"}).status_code
    # router streams for all 35 requests, plus an upstream-filter stream per failover-test attempt
    assert _stat(gw, "upstream_rq_total") - streams >= 45
    assert 0 == _stat(gw, "upstream_rq_tx_reset") - resets
