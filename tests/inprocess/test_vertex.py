"""A request to a Vertex AI model whose access token is not there (the first refresh still running, or every
refresh failing): a 503 in the caller's shape naming why, never a wait, and the admitted request metered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.config import Vertex
from tests.inprocess.harness import InProcess, bearer, immediate, request_body, request_headers, run
from translator.flavours.gcp_tokens import AccessTokens
from translator.flavours.vertex import VertexClaude

MESSAGES = "/v1/messages"
BODY = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_no_token_yet_is_a_503_in_the_callers_shape(redis_url: str, tmp_path: Path) -> None:
    async def scenario(tg: InProcess) -> None:
        tokens = AccessTokens(str(tmp_path / "sa.json"))  # never started: no token, no error yet
        t = dataclasses.replace(tg.gw.targets["ant"], flavour=VertexClaude(Vertex(project="acme-prod"), tokens))
        tg.gw.targets["ant"] = tg.gw.direct["claude-test"] = t
        key = await tg.key("acme")
        ex = await tg.process([request_headers(MESSAGES, {**bearer(key), "anthropic-version": "2023-06-01"}),
                               request_body(BODY)], then="forbid")
        status, _, body = immediate(ex.responses[-1])
        assert 503 == status
        assert {"type": "error", "error": {"type": "api_error", "message": (
            "The Google Cloud access token for this model is not available yet (the first one is being fetched).")}} \
            == body
        [event] = ex.events  # admitted, so metered: nothing used, nothing charged
        assert (503, 0, {}) == (event["status"], event["cost_nano"], event["usage"])

    run(redis_url, scenario)
