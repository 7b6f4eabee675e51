"""A request to a Vertex AI model whose access token is not there. While a just-started translator's first
refresh still runs, the attempt waits for it (off the event loop, ``NOT_READY_WAIT_S`` at most) and goes on
with the token; with no token after that (the fetch slower still, or failed) it gets a 503 in the caller's
shape naming why, and the admitted request is metered."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from core.config import Vertex
from tests.inprocess.harness import (
    InProcess,
    attempt_headers,
    bearer,
    immediate,
    request_body,
    request_headers,
    run,
    set_headers,
)
from tests.inprocess.test_upstream import attempt
from translator.extproc import upstream
from translator.extproc.upstream import UpstreamAttempt
from translator.flavours.gcp_tokens import AccessTokens
from translator.flavours.vertex import VertexClaude

MESSAGES = "/v1/messages"
BODY = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"anthropic-version": "2023-06-01"}


class SlowTokens(AccessTokens):
    """A token endpoint that answers its first request after ``delay_s`` (a cold or loaded machine)."""

    def __init__(self, path: str, delay_s: float) -> None:
        super().__init__(path)
        self.delay_s = delay_s

    def refresh(self) -> float:
        time.sleep(self.delay_s)
        self._token = ("ya29.slow", time.monotonic() + 3600)
        return 3600.0


def on_vertex(tg: InProcess, tokens: AccessTokens) -> None:
    """The Claude deployment ``ant`` (the model claude-test's only one) on Vertex with ``tokens``."""
    t = dataclasses.replace(tg.gw.targets["ant"], flavour=VertexClaude(Vertex(project="acme-prod"), tokens))
    tg.gw.targets["ant"] = tg.gw.direct["claude-test"] = t


def test_a_first_token_on_its_way_is_waited_for(redis_url: str, tmp_path: Path) -> None:
    """Both places that set an attempt's credential: the router's (one deployment) and the upstream filter's."""
    async def scenario(tg: InProcess) -> None:
        tokens = SlowTokens(str(tmp_path / "sa.json"), delay_s=0.3)
        on_vertex(tg, tokens)
        key = await tg.key("acme")
        tokens.start()
        stream = tg.stream([request_headers(MESSAGES, {**bearer(key), **CLAUDE}), request_body(BODY)])
        await anext(stream)
        assert "Bearer ya29.slow" == set_headers(await anext(stream))["authorization"]
        await stream.aclose()

        tokens = SlowTokens(str(tmp_path / "sa.json"), delay_s=0.3)
        on_vertex(tg, tokens)
        tokens.start()
        reply = await UpstreamAttempt(tg.gw).on(attempt_headers(
            "ant", "anthropic", attempt(MESSAGES, "anthropic|chat|e|claude-test", **CLAUDE)))
        assert "Bearer ya29.slow" == set_headers(reply)["authorization"]

    run(redis_url, scenario)


def test_no_token_after_the_wait_is_a_503_in_the_callers_shape(redis_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "NOT_READY_WAIT_S", 0.2)

    async def scenario(tg: InProcess) -> None:
        on_vertex(tg, AccessTokens(str(tmp_path / "sa.json")))  # never started: no token, no error yet
        key = await tg.key("acme")
        started = time.monotonic()
        ex = await tg.process([request_headers(MESSAGES, {**bearer(key), **CLAUDE}), request_body(BODY)],
                              then="forbid")
        assert time.monotonic() - started >= 0.2  # it waited for the first token first
        status, _, body = immediate(ex.responses[-1])
        assert 503 == status
        assert {"type": "error", "error": {"type": "api_error", "message": (
            "The Google Cloud access token for this model is not available yet (the first one is being fetched).")}} \
            == body
        [event] = ex.events  # admitted, so metered: nothing used, nothing charged
        assert (503, 0, {}) == (event["status"], event["cost_nano"], event["usage"])

    run(redis_url, scenario)
