"""A provider configured by preset, as an attempt to it leaves the upstream filter: the preset's path under
its base URL and the key in the header its protocol wants (tests/test_presets.py checks the expansion)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.config import GatewayConfig, parse
from tests.harness import UPSTREAM_SECRETS, gateway_config
from tests.inprocess.harness import CHAT, attempt_headers, in_process, set_headers
from tests.inprocess.test_upstream import ATTEMPT, wire
from translator.extproc.upstream import UpstreamAttempt

# deployment -> (its provider entry, the :path an OpenAI chat attempt gets, the key header and value)
PRESET_PROVIDERS = {
    "ds": ({"preset": "deepseek", "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
           "/chat/completions", "authorization", "Bearer " + UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]),
    "ds-ant": ({"preset": "deepseek-anthropic", "api_key": {"env": "TG_TEST_ANTHROPIC_KEY"}},
               "/anthropic/v1/messages", "x-api-key", UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"]),
    "cf": ({"preset": "cloudflare-workers-ai", "params": {"account_id": "acct123"},
            "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
           "/client/v4/accounts/acct123/ai/v1/chat/completions", "authorization",
           "Bearer " + UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]),
    "az": ({"preset": "azure-openai", "params": {"resource": "acct123"}, "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
           "/openai/v1/chat/completions", "api-key", UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]),
    "foundry": ({"preset": "azure-ai-foundry", "params": {"resource": "acct123"},
                 "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
                "/openai/v1/chat/completions", "api-key", UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]),
    "vx": ({"preset": "vertex-ai", "vertex": {"project": "acct-123456", "location": "us-east5"},
            "api_key": {"env": "TG_TEST_GEMINI_KEY"}},
           "/v1/projects/acct-123456/locations/us-east5/publishers/google/models/upstream-model:generateContent",
           "authorization", "Bearer " + UPSTREAM_SECRETS["TG_TEST_GEMINI_KEY"]),
    "vx-claude": ({"preset": "vertex-ai-anthropic", "vertex": {"project": "acct-123456"},
                   "api_key": {"env": "TG_TEST_ANTHROPIC_KEY"}},
                  "/v1/projects/acct-123456/locations/global/publishers/anthropic/models/upstream-model:rawPredict",
                  "authorization", "Bearer " + UPSTREAM_SECRETS["TG_TEST_ANTHROPIC_KEY"]),
    "qwen": ({"preset": "dashscope", "api_key": {"env": "TG_TEST_OPENAI_KEY"}},
             "/compatible-mode/v1/chat/completions", "authorization",
             "Bearer " + UPSTREAM_SECRETS["TG_TEST_OPENAI_KEY"]),
}


def _config() -> GatewayConfig:
    doc = gateway_config(1, Path("/nonexistent"))
    for dep, (entry, *_) in PRESET_PROVIDERS.items():
        doc["providers"].append({"name": f"p-{dep}", **entry})
        doc["deployments"].append({"name": dep, "provider": f"p-{dep}", "model": "upstream-model"})
    doc["models"].append({"name": "preset-test", "deployments": list(PRESET_PROVIDERS), "free": True})
    return parse(doc, "tests/inprocess")


@pytest.mark.parametrize("deployment", PRESET_PROVIDERS, ids=PRESET_PROVIDERS)
def test_an_attempt_to_a_preset_provider_gets_its_path_and_credential(redis_url: str, deployment: str) -> None:
    """An OpenAI caller's attempt to each preset deployment: the path under the preset's base URL, its key."""
    _, path, header, value = PRESET_PROVIDERS[deployment]
    cfg = _config()
    protocol = cfg.provider(f"p-{deployment}").protocol.value

    async def scenario() -> None:
        async with in_process(redis_url, cfg) as tg:
            headers = {**ATTEMPT, ":path": CHAT, "x-tokengate-model": "preset-test",
                       "x-tokengate-ctx": wire("openai|chat|e|preset-test")}
            reply = UpstreamAttempt(tg.gw).on_request_headers(attempt_headers(deployment, protocol, headers))
            sets = set_headers(reply)
            assert (path, value) == (sets[":path"], sets[header])

    asyncio.run(scenario())
