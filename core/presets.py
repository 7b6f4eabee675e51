"""Provider presets: a provider configured by name and credential (issue #15, docs/providers.md).

    providers:
      - {name: deepseek, preset: deepseek}                     # key from $DEEPSEEK_API_KEY
      - {name: ds-claude, preset: deepseek-anthropic, api_key: {env: DS_KEY}}
      - {name: cf, preset: cloudflare-workers-ai, params: {account_id: 0123abcd}}

A preset is data: the protocol the provider speaks, its base URL (``{name}`` placeholders are
filled from the provider's ``params``), the environment variable its key is read from when the
config gives no ``api_key``, and notes. ``expand`` turns a provider entry that names a preset
into a plain one before the provider model validates it; any field the entry sets wins.

The credential header is not a preset setting: each protocol's codec puts the key where that
protocol wants it (``Protocol.key_header`` says where; a test checks it against the codecs), and
Azure's ``api-key`` comes with the ``azure`` field a preset may set, Vertex AI's OAuth2 bearer token
with the ``vertex`` field, AWS Bedrock's SigV4 signature or API key with the ``aws`` field. A provider
that needs anything else is ``planned``: listed, but refused at load with a message naming the issue,
never faked.

``quirks`` name known deviations from the protocol (issue #15 item 2): a preset fills the provider's
``quirks`` setting, which the translator acts on (translator/protocols/openai/quirks.py; each is
described in docs/providers.md, "Quirks").
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.protocols import Protocol

Status = Literal["ready", "planned"]

# Known quirk names (issue #15 item 2): each protocol's codec says which it acts on (core/protocols.py).
QUIRKS: frozenset[str] = frozenset(q for p in Protocol for q in p.quirks)

PLANNED_ISSUE = "issue #15"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    protocol: Protocol
    base_url: str  # may hold {param} placeholders, filled from the provider's params
    key_env: str | None  # the default credential source; None: a local server that needs no key
    params: Mapping[str, str] = field(default_factory=dict)  # placeholder -> what the user gives
    fields: Mapping[str, Any] = field(default_factory=dict)  # more provider fields it sets (a wire flavour's)
    status: Status = "ready"
    quirks: tuple[str, ...] = ()
    notes: str = ""
    reference: str = ""  # the provider's API reference page for the URL and the auth
    sets: tuple[str, ...] = ()  # provider fields the user must set besides the key (for people)

    @property
    def key_header(self) -> str:
        """Where the gateway puts the key: Azure's ``api-key`` for an ``azure`` provider, an OAuth2 token for a
        ``vertex`` one, else its codec's."""
        if "vertex" in self.fields:
            return "authorization: Bearer <OAuth2 access token>"
        if "aws" in self.fields:
            return "authorization: SigV4 signature or Bearer <Bedrock API key>"
        return "api-key: <key>" if "azure" in self.fields else self.protocol.key_header

    @property
    def needs(self) -> list[str]:
        """What the user must set, for people: the key's variable, each URL parameter, other fields."""
        out = [f"${self.key_env}"] if self.key_env else []
        return out + [f"params.{p} ({what})" for p, what in self.params.items()] + list(self.sets)


def _p(name: str, title: str, protocol: str, base_url: str, key_env: str | None, **kw: Any) -> Preset:
    return Preset(name, title, Protocol(protocol), base_url, key_env, **kw)


_LOCAL = "a local server; set base_url for another host or port"
_AWS_SETS = ("or instead of the API key: aws.access_key_id and aws.secret_access_key (SigV4; aws.session_token "
             "too for temporary keys)",)
_VERTEX_SETS = ("vertex.project", "vertex.location (default global)", "vertex.credentials_file (a service-account key)")
_VERTEX_NOTES = ("tokens refreshed in the background (or api_key: a token you refresh); the base URL is the "
                 "location's endpoint (https://<location>-aiplatform.googleapis.com, or the global one)")

PRESETS: tuple[Preset, ...] = (
    # --- the three protocols' own providers ---
    _p("openai", "OpenAI", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY",
       reference="https://platform.openai.com/docs/api-reference/chat"),
    _p("openai-responses", "OpenAI (Responses API)", "openai-responses", "https://api.openai.com/v1",
       "OPENAI_API_KEY", reference="https://platform.openai.com/docs/api-reference/responses"),
    _p("anthropic", "Anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY",
       reference="https://docs.anthropic.com/en/api/messages"),
    _p("google-ai-studio", "Google AI Studio (Gemini API)", "gemini", "https://generativelanguage.googleapis.com",
       "GEMINI_API_KEY", reference="https://ai.google.dev/api"),
    # --- OpenAI-compatible hosted providers ---
    _p("deepseek", "DeepSeek", "openai", "https://api.deepseek.com", "DEEPSEEK_API_KEY",
       quirks=("reasoning_content", "no_developer_role", "max_tokens_only"),
       reference="https://api-docs.deepseek.com/"),
    _p("deepseek-anthropic", "DeepSeek (Anthropic API)", "anthropic", "https://api.deepseek.com/anthropic",
       "DEEPSEEK_API_KEY", notes="x-api-key supported; anthropic-version and anthropic-beta ignored",
       reference="https://api-docs.deepseek.com/guides/anthropic_api"),
    _p("mistral", "Mistral AI", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY",
       quirks=("tool_call_id_9_alnum", "no_stream_options", "max_tokens_only", "no_reasoning_history",
               "no_developer_role"), reference="https://docs.mistral.ai/api/"),
    _p("groq", "Groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY",
       reference="https://console.groq.com/docs/openai"),
    _p("xai", "xAI (Grok)", "openai", "https://api.x.ai/v1", "XAI_API_KEY", quirks=("no_strict_tools",),
       reference="https://docs.x.ai/api/integrations"),
    _p("together", "Together AI", "openai", "https://api.together.ai/v1", "TOGETHER_API_KEY",
       notes="older guides give https://api.together.xyz/v1",
       reference="https://docs.together.ai/docs/inference/openai-compatibility"),
    _p("fireworks", "Fireworks AI", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY",
       reference="https://docs.fireworks.ai/tools-sdks/openai-compatibility"),
    _p("openrouter", "OpenRouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
       notes="the optional HTTP-Referer / X-Title attribution headers are not sent",
       reference="https://openrouter.ai/docs/api-reference/overview"),
    _p("perplexity", "Perplexity (Sonar)", "openai", "https://api.perplexity.ai", "PERPLEXITY_API_KEY",
       notes="POST /chat/completions is an alias of /v1/sonar; if Perplexity retires it, use protocol "
             "openai-responses with base_url https://api.perplexity.ai/v1",
       reference="https://docs.perplexity.ai/docs/sonar/openai-compatibility"),
    _p("cerebras", "Cerebras", "openai", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", quirks=("no_strict_tools",),
       reference="https://inference-docs.cerebras.ai/resources/openai"),
    _p("sambanova", "SambaNova Cloud", "openai", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY",
       notes="SambaNova also documents an Anthropic Messages API; no preset for it yet (URL not confirmed)",
       reference="https://docs.sambanova.ai/docs/en/features/openai-compatibility"),
    _p("deepinfra", "DeepInfra", "openai", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY",
       quirks=("no_developer_role",), reference="https://deepinfra.com/docs/openai_api"),
    _p("nebius", "Nebius Token Factory", "openai", "https://api.tokenfactory.nebius.com/v1", "NEBIUS_API_KEY",
       notes="formerly AI Studio at api.studio.nebius.ai/v1",
       reference="https://docs.nebius.com/studio/inference/quickstart"),
    _p("novita", "Novita AI", "openai", "https://api.novita.ai/openai", "NOVITA_API_KEY",
       notes="older guides give https://api.novita.ai/v3/openai",
       reference="https://novita.ai/docs/guides/llm-api"),
    _p("hyperbolic", "Hyperbolic", "openai", "https://api.hyperbolic.xyz/v1", "HYPERBOLIC_API_KEY",
       reference="https://docs.hyperbolic.xyz/docs/rest-api"),
    _p("nvidia-nim", "NVIDIA NIM (API catalog)", "openai", "https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY",
       notes="a self-hosted NIM: set base_url to http://<host>:8000/v1",
       reference="https://build.nvidia.com/"),
    _p("moonshot", "Moonshot AI (Kimi), global", "openai", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY",
       quirks=("reasoning_content", "no_strict_tools"), reference="https://platform.moonshot.ai/docs/api/chat"),
    _p("moonshot-cn", "Moonshot AI (Kimi), China", "openai", "https://api.moonshot.cn/v1", "MOONSHOT_API_KEY",
       quirks=("reasoning_content", "no_strict_tools"), reference="https://platform.moonshot.cn/docs/api/chat"),
    _p("moonshot-anthropic", "Moonshot AI (Kimi), Anthropic API", "anthropic", "https://api.moonshot.ai/anthropic",
       "MOONSHOT_API_KEY", notes="China: base_url https://api.moonshot.cn/anthropic; Moonshot's guide sends the "
       "key as Bearer (ANTHROPIC_AUTH_TOKEN), x-api-key not confirmed",
       reference="https://platform.moonshot.ai/docs/guide/agent-support"),
    _p("dashscope", "Alibaba Model Studio (Qwen), international", "openai",
       "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY",
       reference="https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope"),
    _p("dashscope-cn", "Alibaba DashScope (Qwen), China", "openai", "https://dashscope.aliyuncs.com/compatible-mode/v1",
       "DASHSCOPE_API_KEY", reference="https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope"),
    _p("dashscope-anthropic", "Alibaba Model Studio (Qwen), Anthropic API", "anthropic",
       "https://dashscope-intl.aliyuncs.com/apps/anthropic", "DASHSCOPE_API_KEY",
       notes="international edition (Singapore)",
       reference="https://www.alibabacloud.com/help/en/model-studio/anthropic-api-messages"),
    _p("zhipu", "Zhipu BigModel (GLM), China", "openai", "https://open.bigmodel.cn/api/paas/v4", "ZHIPU_API_KEY",
       reference="https://docs.bigmodel.cn/cn/guide/develop/openai/introduction"),
    _p("zhipu-anthropic", "Zhipu BigModel (GLM), Anthropic API", "anthropic", "https://open.bigmodel.cn/api/anthropic",
       "ZHIPU_API_KEY", reference="https://docs.bigmodel.cn/cn/guide/develop/claude/introduction"),
    _p("zai", "Z.ai (GLM), international", "openai", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY",
       reference="https://docs.z.ai/api-reference/introduction"),
    _p("zai-anthropic", "Z.ai (GLM), Anthropic API", "anthropic", "https://api.z.ai/api/anthropic", "ZAI_API_KEY",
       reference="https://docs.z.ai/scenario-example/develop-tools/claude"),
    _p("siliconflow", "SiliconFlow, international", "openai", "https://api.siliconflow.com/v1", "SILICONFLOW_API_KEY",
       reference="https://docs.siliconflow.com/en/userguide/quickstart"),
    _p("siliconflow-cn", "SiliconFlow, China", "openai", "https://api.siliconflow.cn/v1", "SILICONFLOW_API_KEY",
       reference="https://docs.siliconflow.cn/docs/userguide/quickstart"),
    _p("minimax", "MiniMax, international", "openai", "https://api.minimax.io/v1", "MINIMAX_API_KEY",
       notes="China: base_url https://api.minimaxi.com/v1",
       reference="https://platform.minimax.io/docs/api-reference/text-openai-api"),
    _p("minimax-anthropic", "MiniMax, Anthropic API", "anthropic", "https://api.minimax.io/anthropic",
       "MINIMAX_API_KEY", notes="China: base_url https://api.minimaxi.com/anthropic; text and tools, no images",
       reference="https://platform.minimax.io/docs/api-reference/text-anthropic-api"),
    _p("qianfan", "Baidu Qianfan (ERNIE)", "openai", "https://qianfan.baidubce.com/v2", "QIANFAN_API_KEY",
       notes="the optional appid header is not sent", reference="https://cloud.baidu.com/doc/WENXINWORKSHOP/s/2m3fihw8s"),
    _p("volcengine-ark", "Volcengine Ark (Doubao)", "openai", "https://ark.cn-beijing.volces.com/api/v3", "ARK_API_KEY",
       notes="the model is a model id or an inference endpoint id (ep-…)",
       reference="https://www.volcengine.com/docs/82379/1263482"),
    _p("hunyuan", "Tencent Hunyuan", "openai", "https://api.hunyuan.cloud.tencent.com/v1", "HUNYUAN_API_KEY",
       reference="https://cloud.tencent.com/document/product/1729/111007"),
    _p("cohere", "Cohere (Compatibility API)", "openai", "https://api.cohere.ai/compatibility/v1", "COHERE_API_KEY",
       quirks=("no_stream_options",), reference="https://docs.cohere.com/docs/compatibility-api"),
    _p("meta-llama", "Meta Llama API", "openai", "https://api.llama.com/compat/v1", "LLAMA_API_KEY",
       reference="https://llama.developer.meta.com/docs/features/compatibility"),
    _p("github-models", "GitHub Models", "openai", "https://models.github.ai/inference", "GITHUB_TOKEN",
       notes="a token with the models scope; model ids are publisher/model (openai/gpt-4.1)",
       reference="https://docs.github.com/en/github-models/quickstart"),
    _p("huggingface", "Hugging Face Inference Providers (router)", "openai", "https://router.huggingface.co/v1",
       "HF_TOKEN", notes="a fine-grained token allowed to call Inference Providers",
       reference="https://huggingface.co/docs/inference-providers/index"),
    _p("cloudflare-workers-ai", "Cloudflare Workers AI", "openai",
       "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1", "CLOUDFLARE_API_TOKEN",
       params={"account_id": "your Cloudflare account id"},
       reference="https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility"),
    _p("vercel-ai-gateway", "Vercel AI Gateway", "openai", "https://ai-gateway.vercel.sh/v1", "AI_GATEWAY_API_KEY",
       reference="https://vercel.com/docs/ai-gateway/sdks-and-apis/openai-chat-completions"),
    _p("vercel-ai-gateway-anthropic", "Vercel AI Gateway, Anthropic API", "anthropic", "https://ai-gateway.vercel.sh",
       "AI_GATEWAY_API_KEY", notes="x-api-key or Bearer accepted",
       reference="https://vercel.com/docs/ai-gateway/anthropic-compat"),
    # --- local servers (no key unless you gave them one: then set api_key) ---
    _p("ollama", "Ollama", "openai", "http://localhost:11434/v1", None, notes=_LOCAL,
       reference="https://docs.ollama.com/api/openai-compatibility"),
    _p("ollama-anthropic", "Ollama, Anthropic API", "anthropic", "http://localhost:11434", None, notes=_LOCAL,
       reference="https://docs.ollama.com/api/anthropic-compatibility"),
    _p("vllm", "vLLM", "openai", "http://localhost:8000/v1", None,
       notes=_LOCAL + "; a server started with --api-key wants api_key",
       reference="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html"),
    _p("lm-studio", "LM Studio", "openai", "http://localhost:1234/v1", None, notes=_LOCAL,
       reference="https://lmstudio.ai/docs/api/openai-api"),
    _p("lm-studio-anthropic", "LM Studio, Anthropic API", "anthropic", "http://localhost:1234", None, notes=_LOCAL,
       reference="https://lmstudio.ai/docs/developer/core/server"),
    _p("llama-cpp", "llama.cpp server", "openai", "http://localhost:8080/v1", None, notes=_LOCAL,
       reference="https://github.com/ggml-org/llama.cpp/tree/master/tools/server"),
    _p("llama-cpp-anthropic", "llama.cpp server, Anthropic API", "anthropic", "http://localhost:8080", None,
       notes=_LOCAL, reference="https://huggingface.co/blog/ggml-org/anthropic-messages-api-in-llamacpp"),
    # --- planned: a wire flavour the gateway cannot call yet ---
    _p("azure-openai", "Azure OpenAI", "openai", "https://{resource}.openai.azure.com", "AZURE_OPENAI_API_KEY",
       params={"resource": "your Azure OpenAI resource name"}, fields={"azure": {"api": "v1"}},
       notes="the v1 API; deployment URLs with api-version: azure: {api: deployments, api_version: …}",
       reference="https://learn.microsoft.com/azure/foundry/openai/api-version-lifecycle"),
    _p("azure-ai-foundry", "Azure AI Foundry (Azure OpenAI v1 API)", "openai", "https://{resource}.services.ai.azure.com",
       "AZURE_AI_API_KEY", params={"resource": "your Foundry resource name"}, fields={"azure": {"api": "v1"}},
       notes="a Foundry resource's endpoint with Azure OpenAI's v1 API (docs/providers.md, Azure OpenAI)",
       reference="https://learn.microsoft.com/azure/foundry/openai/api-version-lifecycle"),
    _p("aws-bedrock", "AWS Bedrock (Converse API)", "bedrock-converse", "https://bedrock-runtime.{region}.amazonaws.com",
       "AWS_BEARER_TOKEN_BEDROCK", params={"region": "an AWS region, e.g. us-east-1"}, fields={"aws": {}},
       sets=_AWS_SETS,
       notes="any Bedrock model; model ids as Bedrock names them (a cross-region profile us.…, an ARN)",
       reference="https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html"),
    _p("vertex-ai", "Google Vertex AI (Gemini)", "gemini", "https://aiplatform.googleapis.com", None,
       fields={"vertex": {}}, sets=_VERTEX_SETS, notes=_VERTEX_NOTES,
       reference="https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest"),
    _p("vertex-ai-anthropic", "Google Vertex AI (Claude)", "anthropic", "https://aiplatform.googleapis.com", None,
       fields={"vertex": {}}, sets=_VERTEX_SETS,
       notes=_VERTEX_NOTES + "; model ids as Vertex names them (claude-…@date)",
       reference="https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude"),
)

BY_NAME: Mapping[str, Preset] = {p.name: p for p in PRESETS}

# Presets whose base URL and auth were confirmed against the provider's documentation (or, where
# marked in docs/providers.md, a maintained client library's) when they were added; the others
# follow the provider's reference from memory and are marked unconfirmed in docs/providers.md.
VERIFIED = frozenset({
    "deepseek", "deepseek-anthropic", "moonshot", "moonshot-cn", "moonshot-anthropic", "minimax-anthropic",
    "zhipu", "zhipu-anthropic", "zai-anthropic", "nebius", "novita", "cloudflare-workers-ai", "qianfan",
    "hunyuan", "meta-llama", "cohere", "github-models", "volcengine-ark", "dashscope", "dashscope-cn",
    "dashscope-anthropic", "vercel-ai-gateway", "vercel-ai-gateway-anthropic", "hyperbolic", "huggingface",
    "siliconflow", "siliconflow-cn", "ollama", "ollama-anthropic", "llama-cpp-anthropic",
    "mistral", "groq", "fireworks", "deepinfra", "cerebras", "perplexity", "xai", "together", "openrouter",
    "sambanova", "nvidia-nim", "minimax", "azure-openai", "azure-ai-foundry", "vertex-ai", "vertex-ai-anthropic",
    "zai", "vllm", "lm-studio", "lm-studio-anthropic", "llama-cpp", "aws-bedrock",
})
# The three protocols' own providers: the URLs examples/providers.yaml has always used.
SHIPPED = frozenset({"openai", "openai-responses", "anthropic", "google-ai-studio"})


def placeholders(url: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(url) if f]


def check_table() -> None:
    """The table is consistent (a test calls this; a broken table must not reach a user)."""
    assert len(BY_NAME) == len(PRESETS), "a preset name is used twice"
    for p in PRESETS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", p.name), p.name
        assert sorted(placeholders(p.base_url)) == sorted(p.params), p.name
        assert set(p.quirks) <= p.protocol.quirks, p.name
        assert p.status == "planned" or p.reference, f"{p.name}: no reference"
    assert VERIFIED | SHIPPED <= set(BY_NAME), (VERIFIED | SHIPPED) - set(BY_NAME)


def expand(data: Any) -> Any:
    """A provider entry naming a preset, with the preset's fields filled in where the entry has none.

    Raises ``ValueError`` (a config error at that provider) for an unknown or planned preset, a
    missing or unknown URL parameter, or params without a preset.
    """
    if not isinstance(data, Mapping):
        return data
    name = data.get("preset")
    if name is None:
        if data.get("params"):
            raise ValueError("params fill a preset's URL: give a preset as well, or drop params")
        return data
    preset = BY_NAME.get(name) if isinstance(name, str) else None
    if preset is None:
        close = difflib.get_close_matches(str(name), BY_NAME, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown preset {name!r}{hint} (tokengate providers lists them)")
    if preset.status == "planned":
        raise ValueError(f"preset {name!r} ({preset.title}) is planned, not available yet: "
                         f"{preset.notes or PLANNED_ISSUE}")
    out = dict(data)
    out.setdefault("protocol", preset.protocol.value)
    if "base_url" not in out:
        out["base_url"] = _fill(preset, data.get("params") or {})
    elif data.get("params"):
        raise ValueError("params fill the preset's base_url; give params or base_url, not both")
    signed = isinstance(out.get("aws"), Mapping) and "access_key_id" in out["aws"]  # SigV4 keys: no API key
    if "api_key" not in out and preset.key_env is not None and not signed:
        out["api_key"] = {"env": preset.key_env}
    for k, v in preset.fields.items():
        out.setdefault(k, v)
    if preset.quirks and out["protocol"] == preset.protocol.value:  # another protocol: not its quirks
        out.setdefault("quirks", list(preset.quirks))
    return out


def _fill(preset: Preset, params: Any) -> str:
    if not isinstance(params, Mapping):
        raise ValueError("params must be a mapping of names to values")
    unknown = sorted(set(params) - set(preset.params))
    if unknown:
        known = ", ".join(preset.params) or "none"
        raise ValueError(f"preset {preset.name!r} has no parameter {unknown[0]!r} (its parameters: {known})")
    values: dict[str, str] = {}
    for p, what in preset.params.items():
        v = params.get(p)
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", v):
            got = "is missing" if v is None else f"{v!r} is not a host label (letters, digits, . -)"
            raise ValueError(f"preset {preset.name!r} needs params.{p}: {what}; it {got}")
        values[p] = v
    return preset.base_url.format(**values)


def listing() -> str:
    """The presets as a table for people (``tokengate providers``)."""
    rows = [("PRESET", "PROTOCOL", "BASE URL", "YOU SET", "STATUS")]
    for p in PRESETS:
        needs = ", ".join(p.needs) or ("nothing (local)" if p.status == "ready" else "-")
        rows.append((p.name, p.protocol.value, p.base_url, needs, p.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]
    lines.append("")
    lines.append("The key is sent as " + "; ".join(f"{p.key_header} ({p.value})" for p in Protocol)
                 + "; api-key: <key> (azure-*); authorization: Bearer <OAuth2 token> (vertex-*);"
                 " a SigV4 signature or Bearer <Bedrock API key> (aws-*)."
                 " Any field can be set in the config as well and wins; "
                 "docs/providers.md has the details.")
    return "\n".join(lines)


def markdown_table() -> str:
    """The table in docs/providers.md (a test keeps the two the same; paste this output there)."""
    out = ["| Preset | Provider | Protocol | Base URL | Key sent in | You set | Notes |",
           "|---|---|---|---|---|---|---|"]
    for p in PRESETS:
        ready = p.status == "ready"
        auth = p.key_header.split(":")[0] if ready else "—"
        if ready and not p.needs:
            auth += " (if you set api_key)"
        needs = ", ".join(f"`{n}`" for n in p.needs) or ("nothing" if ready else "—")
        notes = [p.notes] if p.notes else []
        if not ready:
            notes = ["**planned**: " + p.notes]
        if p.quirks:
            notes.append("quirks: " + ", ".join(f"`{q}`" for q in p.quirks))
        if ready and p.name in SHIPPED:
            notes.append("URL as in examples/providers.yaml")
        elif ready and p.name not in VERIFIED:
            notes.append("URL from the provider's reference, not re-confirmed when added")
        name = f"[`{p.name}`]({p.reference})" if p.reference else f"`{p.name}`"
        cells = [name, p.title, p.protocol.value, f"`{p.base_url}`", auth, needs, "; ".join(notes)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)
