"""Provider presets (core/presets.py, docs/providers.md): what each expands to, overrides, errors,
and ``tokengate providers``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core import presets
from core.config import ConfigError, Provider, load, parse
from core.protocols import Protocol
from translator.flavours import for_provider
from translator.protocols import REGISTRY
from translator.protocols.base import Kind

# preset, protocol, the URL a chat request goes to (model "m"; params filled with "acct123"; for Azure the
# endpoint and its URL style),
# the variable the key is read from by default, the header the gateway puts the key in.
EXPECTED = [
    ("openai", "openai",
     "https://api.openai.com/v1/chat/completions", "OPENAI_API_KEY", "authorization"),
    ("openai-responses", "openai-responses",
     "https://api.openai.com/v1/responses", "OPENAI_API_KEY", "authorization"),
    ("anthropic", "anthropic",
     "https://api.anthropic.com/v1/messages", "ANTHROPIC_API_KEY", "x-api-key"),
    ("google-ai-studio", "gemini",
     "https://generativelanguage.googleapis.com/v1beta/models/m:generateContent", "GEMINI_API_KEY", "x-goog-api-key"),
    ("deepseek", "openai",
     "https://api.deepseek.com/chat/completions", "DEEPSEEK_API_KEY", "authorization"),
    ("deepseek-anthropic", "anthropic",
     "https://api.deepseek.com/anthropic/v1/messages", "DEEPSEEK_API_KEY", "x-api-key"),
    ("mistral", "openai",
     "https://api.mistral.ai/v1/chat/completions", "MISTRAL_API_KEY", "authorization"),
    ("groq", "openai",
     "https://api.groq.com/openai/v1/chat/completions", "GROQ_API_KEY", "authorization"),
    ("xai", "openai",
     "https://api.x.ai/v1/chat/completions", "XAI_API_KEY", "authorization"),
    ("together", "openai",
     "https://api.together.ai/v1/chat/completions", "TOGETHER_API_KEY", "authorization"),
    ("fireworks", "openai",
     "https://api.fireworks.ai/inference/v1/chat/completions", "FIREWORKS_API_KEY", "authorization"),
    ("openrouter", "openai",
     "https://openrouter.ai/api/v1/chat/completions", "OPENROUTER_API_KEY", "authorization"),
    ("perplexity", "openai",
     "https://api.perplexity.ai/chat/completions", "PERPLEXITY_API_KEY", "authorization"),
    ("cerebras", "openai",
     "https://api.cerebras.ai/v1/chat/completions", "CEREBRAS_API_KEY", "authorization"),
    ("sambanova", "openai",
     "https://api.sambanova.ai/v1/chat/completions", "SAMBANOVA_API_KEY", "authorization"),
    ("deepinfra", "openai",
     "https://api.deepinfra.com/v1/openai/chat/completions", "DEEPINFRA_API_KEY", "authorization"),
    ("nebius", "openai",
     "https://api.tokenfactory.nebius.com/v1/chat/completions", "NEBIUS_API_KEY", "authorization"),
    ("novita", "openai",
     "https://api.novita.ai/openai/chat/completions", "NOVITA_API_KEY", "authorization"),
    ("hyperbolic", "openai",
     "https://api.hyperbolic.xyz/v1/chat/completions", "HYPERBOLIC_API_KEY", "authorization"),
    ("nvidia-nim", "openai",
     "https://integrate.api.nvidia.com/v1/chat/completions", "NVIDIA_API_KEY", "authorization"),
    ("moonshot", "openai",
     "https://api.moonshot.ai/v1/chat/completions", "MOONSHOT_API_KEY", "authorization"),
    ("moonshot-cn", "openai",
     "https://api.moonshot.cn/v1/chat/completions", "MOONSHOT_API_KEY", "authorization"),
    ("moonshot-anthropic", "anthropic",
     "https://api.moonshot.ai/anthropic/v1/messages", "MOONSHOT_API_KEY", "x-api-key"),
    ("dashscope", "openai",
     "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions", "DASHSCOPE_API_KEY", "authorization"),
    ("dashscope-cn", "openai",
     "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions", "DASHSCOPE_API_KEY", "authorization"),
    ("dashscope-anthropic", "anthropic",
     "https://dashscope-intl.aliyuncs.com/apps/anthropic/v1/messages", "DASHSCOPE_API_KEY", "x-api-key"),
    ("zhipu", "openai",
     "https://open.bigmodel.cn/api/paas/v4/chat/completions", "ZHIPU_API_KEY", "authorization"),
    ("zhipu-anthropic", "anthropic",
     "https://open.bigmodel.cn/api/anthropic/v1/messages", "ZHIPU_API_KEY", "x-api-key"),
    ("zai", "openai",
     "https://api.z.ai/api/paas/v4/chat/completions", "ZAI_API_KEY", "authorization"),
    ("zai-anthropic", "anthropic",
     "https://api.z.ai/api/anthropic/v1/messages", "ZAI_API_KEY", "x-api-key"),
    ("siliconflow", "openai",
     "https://api.siliconflow.com/v1/chat/completions", "SILICONFLOW_API_KEY", "authorization"),
    ("siliconflow-cn", "openai",
     "https://api.siliconflow.cn/v1/chat/completions", "SILICONFLOW_API_KEY", "authorization"),
    ("minimax", "openai",
     "https://api.minimax.io/v1/chat/completions", "MINIMAX_API_KEY", "authorization"),
    ("minimax-anthropic", "anthropic",
     "https://api.minimax.io/anthropic/v1/messages", "MINIMAX_API_KEY", "x-api-key"),
    ("qianfan", "openai",
     "https://qianfan.baidubce.com/v2/chat/completions", "QIANFAN_API_KEY", "authorization"),
    ("volcengine-ark", "openai",
     "https://ark.cn-beijing.volces.com/api/v3/chat/completions", "ARK_API_KEY", "authorization"),
    ("hunyuan", "openai",
     "https://api.hunyuan.cloud.tencent.com/v1/chat/completions", "HUNYUAN_API_KEY", "authorization"),
    ("cohere", "openai",
     "https://api.cohere.ai/compatibility/v1/chat/completions", "COHERE_API_KEY", "authorization"),
    ("meta-llama", "openai",
     "https://api.llama.com/compat/v1/chat/completions", "LLAMA_API_KEY", "authorization"),
    ("github-models", "openai",
     "https://models.github.ai/inference/chat/completions", "GITHUB_TOKEN", "authorization"),
    ("huggingface", "openai",
     "https://router.huggingface.co/v1/chat/completions", "HF_TOKEN", "authorization"),
    ("cloudflare-workers-ai", "openai",
     "https://api.cloudflare.com/client/v4/accounts/acct123/ai/v1/chat/completions", "CLOUDFLARE_API_TOKEN", "authorization"),
    ("vercel-ai-gateway", "openai",
     "https://ai-gateway.vercel.sh/v1/chat/completions", "AI_GATEWAY_API_KEY", "authorization"),
    ("vercel-ai-gateway-anthropic", "anthropic",
     "https://ai-gateway.vercel.sh/v1/messages", "AI_GATEWAY_API_KEY", "x-api-key"),
    ("ollama", "openai",
     "http://localhost:11434/v1/chat/completions", None, "authorization"),
    ("ollama-anthropic", "anthropic",
     "http://localhost:11434/v1/messages", None, "x-api-key"),
    ("vllm", "openai",
     "http://localhost:8000/v1/chat/completions", None, "authorization"),
    ("lm-studio", "openai",
     "http://localhost:1234/v1/chat/completions", None, "authorization"),
    ("lm-studio-anthropic", "anthropic",
     "http://localhost:1234/v1/messages", None, "x-api-key"),
    ("llama-cpp", "openai",
     "http://localhost:8080/v1/chat/completions", None, "authorization"),
    ("llama-cpp-anthropic", "anthropic",
     "http://localhost:8080/v1/messages", None, "x-api-key"),
    ("azure-openai", "openai",
     "https://acct123.openai.azure.com (azure v1)", "AZURE_OPENAI_API_KEY", "api-key"),
    ("azure-ai-foundry", "openai",
     "https://acct123.services.ai.azure.com (azure v1)", "AZURE_AI_API_KEY", "api-key"),
    # AWS Bedrock: a Bedrock API key; SigV4 is tests/protocols/test_bedrock_converse.py's
    ("aws-bedrock", "bedrock-converse",
     "https://bedrock-runtime.acct123.amazonaws.com/model/m/converse", "AWS_BEARER_TOKEN_BEDROCK", "authorization"),
    # Vertex AI: the entry adds vertex: {project, location} and a static token in api_key (VERTEX)
    ("vertex-ai", "gemini", "https://us-east5-aiplatform.googleapis.com/v1/projects/acct-123456/locations/us-east5"
     "/publishers/google/models/m:generateContent", "VERTEX_TOKEN", "authorization"),
    ("vertex-ai-anthropic", "anthropic", "https://us-east5-aiplatform.googleapis.com/v1/projects/acct-123456"
     "/locations/us-east5/publishers/anthropic/models/m:rawPredict", "VERTEX_TOKEN", "authorization"),
]
VERTEX = {"vertex": {"project": "acct-123456", "location": "us-east5"}, "api_key": {"env": "VERTEX_TOKEN"}}


def _provider(entry: dict[str, Any]) -> Provider:
    doc = {"providers": [{"name": "p", **entry}], "deployments": [{"name": "d", "provider": "p", "model": "m"}],
           "models": [{"name": "m", "deployments": ["d"], "free": True}]}
    return parse(doc, "gw.yaml").providers[0]


def _chat_url(p: Provider) -> str:
    port = "" if p.port in (80, 443) else f":{p.port}"
    if p.azure is not None:  # the path is translator/flavours/azure.py's (tests/inprocess/test_presets.py checks it)
        return f"{p.base_url} (azure {p.azure.api})"
    codec = REGISTRY.get(p.protocol.value)
    path = for_provider(p).upstream_path(codec, p.base_path, Kind.CHAT, "m", stream=False, sse=False)
    return f"{'https' if p.tls else 'http'}://{p.host}{port}{path}"


def _credential(p: Provider, key: str) -> dict[str, str]:
    return for_provider(p).credential(REGISTRY.get(p.protocol.value), key)


@pytest.mark.parametrize(("name", "protocol", "url", "key_env", "header"), EXPECTED, ids=[r[0] for r in EXPECTED])
def test_preset_expands_to_its_provider(name: str, protocol: str, url: str, key_env: str | None, header: str) -> None:
    """A provider naming only a preset (and its URL parameters) gets the protocol, the URL, the key source and
    the credential header the preset says."""
    preset = presets.BY_NAME[name]
    p = _provider({"preset": name, **({"params": {k: "acct123" for k in preset.params}} if preset.params else {}),
                   **(VERTEX if "vertex" in preset.fields else {})})
    assert (protocol, url) == (p.protocol.value, _chat_url(p))
    assert key_env == (p.api_key.env if p.api_key else None)
    sent = _credential(p, "sk-test")
    assert [header] == list(sent)
    assert preset.key_header.split(":")[0] == header
    assert "sk-test" in sent[header]


def test_every_ready_preset_has_a_row_and_the_catalogue_is_big_enough() -> None:
    """The table above covers every selectable preset, and there are at least 40 of them."""
    ready = [p.name for p in presets.PRESETS if p.status == "ready"]
    assert sorted(ready) == sorted(r[0] for r in EXPECTED)
    assert len(ready) >= 40
    presets.check_table()


def test_key_header_matches_every_codec() -> None:
    """Protocol.key_header (what docs and the CLI say) names the header each protocol's codec really sets."""
    for protocol in Protocol:
        assert [protocol.key_header.split(":")[0]] == list(REGISTRY.get(protocol.value).credential("k"))


@pytest.mark.parametrize(
    ("entry", "field", "expected"),
    [({"preset": "deepseek", "base_url": "http://127.0.0.1:9100"}, "base_url", "http://127.0.0.1:9100"),
     ({"preset": "deepseek", "api_key": {"file": "secrets/ds"}}, "api_key", "secrets/ds"),
     ({"preset": "deepseek", "protocol": "anthropic", "base_url": "https://api.deepseek.com/anthropic"},
      "protocol", Protocol.ANTHROPIC),
     ({"preset": "ollama", "base_url": "http://gpu-box:11434/v1"}, "base_url", "http://gpu-box:11434/v1"),
     ({"preset": "vllm", "api_key": {"env": "VLLM_KEY"}}, "api_key", "VLLM_KEY"),
     ({"preset": "deepseek", "timeout_connect_s": 2}, "timeout_connect_s", 2.0)],
    ids=["base_url", "api_key-file", "protocol", "local-host", "local-with-key", "timeout"],
)
def test_a_field_set_in_the_config_wins_over_the_preset(entry: dict[str, Any], field: str, expected: object) -> None:
    """Any field the entry sets is kept; the preset fills only what it leaves out."""
    p = _provider(entry)
    actual = getattr(p, field)
    if field == "api_key":
        actual = actual.env or actual.file
    assert expected == actual
    assert entry["preset"] == p.preset


GOOD_DOC = {"deployments": [{"name": "d", "provider": "p", "model": "m"}],
            "models": [{"name": "m", "deployments": ["d"], "free": True}]}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [({"preset": "deepsek"}, "providers\\[0\\]: unknown preset 'deepsek'; did you mean 'deepseek'"),
     ({"preset": "nope-nothing-like-it"}, "unknown preset 'nope-nothing-like-it' \\(tokengate providers lists them\\)"),
     ({"preset": "cloudflare-workers-ai"},
      "preset 'cloudflare-workers-ai' needs params.account_id: your Cloudflare account id; it is missing"),
     ({"preset": "cloudflare-workers-ai", "params": {"account_id": "a/b"}},
      "needs params.account_id: your Cloudflare account id; it 'a/b' is not a host label"),
     ({"preset": "cloudflare-workers-ai", "params": {"account_id": "a", "region": "x"}},
      "preset 'cloudflare-workers-ai' has no parameter 'region' \\(its parameters: account_id\\)"),
     ({"preset": "deepseek", "params": {"x": "y"}}, "preset 'deepseek' has no parameter 'x' \\(its parameters: none\\)"),
     ({"protocol": "openai", "base_url": "https://x.example/v1", "params": {"a": "b"}}, "give a preset as well"),
     ({"preset": "aws-bedrock", "params": {"region": "us-east-1"}, "aws": {"access_key_id": {"env": "K"}}},
      "give both 'access_key_id' and 'secret_access_key'"),
     ({"preset": "vertex-ai"}, "providers\\[0\\].vertex.project: Field required"),
     ({"preset": "vertex-ai-anthropic", "vertex": {"project": "acct-123456"}},
      "vertex.credentials_file .* or api_key .*, one of the two"),
     ({"preset": 3}, "unknown preset 3")],
    ids=["typo", "unknown", "missing-param", "bad-param", "unknown-param", "param-without-placeholder",
         "params-without-preset", "bedrock-half-keys", "vertex-without-project", "vertex-without-credential",
         "not-a-string"],
)
def test_a_bad_preset_is_a_clear_config_error(entry: dict[str, Any], expected: str) -> None:
    """Unknown, planned or under-specified presets are refused at load, naming the provider and what to do."""
    with pytest.raises(ConfigError, match=expected):
        parse({"providers": [{"name": "p", **entry}], **GOOD_DOC}, "gw.yaml")


def test_a_preset_config_loads_from_yaml_in_three_lines(tmp_path: Path) -> None:
    """The issue's example: name, preset, key."""
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(
        {"providers": [{"name": "deepseek", "preset": "deepseek", "api_key": {"env": "DEEPSEEK_API_KEY"}}],
         "deployments": [{"name": "d", "provider": "deepseek", "model": "deepseek-chat"}],
         "models": [{"name": "m", "deployments": ["d"], "price": {"input": 1, "output": 2}}]}))
    p = load(path).providers[0]
    assert ("https://api.deepseek.com", Protocol.OPENAI) == (p.base_url, p.protocol)


def test_tokengate_providers_lists_every_preset_with_what_it_needs() -> None:
    """`tokengate providers` prints one line per preset: protocol, base URL, what to set, status."""
    proc = subprocess.run([sys.executable, "-m", "tokengate.cli", "providers"], capture_output=True, text=True,
                          timeout=60)
    assert 0 == proc.returncode, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:] if line.strip()}
    for p in presets.PRESETS:
        assert p.name in lines
        assert [p.protocol.value, p.base_url] == lines[p.name][1:3]
        assert p.status == lines[p.name][-1]
    assert "$DEEPSEEK_API_KEY" in lines["deepseek"]
    assert "params.account_id" in lines["cloudflare-workers-ai"]
    assert "$CLOUDFLARE_API_TOKEN," in lines["cloudflare-workers-ai"]
    assert "nothing" in lines["ollama"]
    assert "x-api-key: <key> (anthropic)" in proc.stdout


def test_docs_table_is_the_catalogue() -> None:
    """docs/providers.md carries the table core/presets.py renders (regenerate it when a preset changes)."""
    docs = (Path(__file__).parent.parent / "docs" / "providers.md").read_text()
    assert presets.markdown_table() in docs
