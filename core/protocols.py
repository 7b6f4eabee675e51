"""The names of the wire protocols tokengate speaks; their codecs live in ``translator.protocols``.

This is the list the gateway config accepts for a provider's ``protocol``. ``core`` cannot see
the codecs (they are a layer up), so a protocol that providers may speak needs its name here as
well as its folder and registry line in ``translator/protocols/`` (docs/architecture.md, "Adding
a protocol").
"""
from __future__ import annotations

from enum import StrEnum


class Protocol(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OPENAI_RESPONSES = "openai-responses"  # OpenAI's Responses API (POST /v1/responses)
    BEDROCK_CONVERSE = "bedrock-converse"  # AWS Bedrock's Converse API (upstream only: no client speaks it)

    @classmethod
    def parse(cls, value: object) -> Protocol | None:
        """The protocol named ``value``, or None for anything else."""
        return _BY_VALUE.get(value) if isinstance(value, str) else None

    @property
    def embeds(self) -> bool:
        """Whether its providers serve embeddings (its codec has an ``embedder``; a test checks they agree)."""
        return self.value in _EMBEDS

    @property
    def azure_apis(self) -> frozenset[str]:
        """The Azure OpenAI URL styles that serve it (``core.config.Azure.api``); none when Azure does not speak it."""
        return _AZURE.get(self.value, frozenset())

    @property
    def bedrock_api(self) -> str | None:
        """The AWS Bedrock API that serves it (``core.config.Aws``): ``converse`` or ``invoke`` (InvokeModel, whose
        body is the protocol's own); None when Bedrock does not speak it."""
        return _BEDROCK.get(self.value)

    @property
    def vertex_publisher(self) -> str | None:
        """The Vertex AI publisher whose models speak it (``core.config.Vertex``); None when Vertex does not."""
        return _VERTEX.get(self.value)

    @property
    def key_header(self) -> str:
        """Where its codec puts a provider's key, for people (docs, ``tokengate providers``); a test checks it."""
        return _KEY_HEADER[self.value]

    @property
    def quirks(self) -> frozenset[str]:
        """The provider quirks its codec acts on (a provider's ``quirks``, docs/providers.md); a test checks it."""
        return _QUIRKS.get(self.value, frozenset())

    @property
    def price_provider(self) -> str:
        """The provider the genai-prices catalogue files this protocol's models under."""
        return _PRICE_PROVIDER.get(self.value, self.value)


_BY_VALUE = {p.value: p for p in Protocol}
_EMBEDS = frozenset({"openai", "gemini"})
# Azure OpenAI: Chat Completions on deployment paths and the v1 API, the Responses API on the v1 API.
_AZURE = {"openai": frozenset({"deployments", "v1"}), "openai-responses": frozenset({"v1"})}
# AWS Bedrock: Converse for its own protocol, InvokeModel with Anthropic's Messages body.
_BEDROCK = {"bedrock-converse": "converse", "anthropic": "invoke"}
# Google Vertex AI: Gemini models are the google publisher's, Claude models anthropic's (translator/flavours/vertex.py).
_VERTEX = {"gemini": "google", "anthropic": "anthropic"}
# The header each codec's ``credential`` sets (translator/protocols/*/codec.py).
_KEY_HEADER = {"openai": "authorization: Bearer <key>", "openai-responses": "authorization: Bearer <key>",
               "anthropic": "x-api-key: <key>", "gemini": "x-goog-api-key: <key>",
               "bedrock-converse": "authorization: Bearer <Bedrock API key>"}
# The quirks each codec handles (translator/protocols/*/quirks.py): deviations of OpenAI-compatible servers.
_QUIRKS = {"openai": frozenset({
    "reasoning_content",  # wants reasoning sent back as assistant reasoning_content (DeepSeek's thinking mode)
    "no_reasoning_history",  # rejects reasoning_content / thinking_blocks on assistant messages (Mistral's 422)
    "tool_call_id_9_alnum",  # tool-call ids must be 9 characters of [a-zA-Z0-9] (Mistral)
    "no_stream_options",  # rejects stream_options (so no usage chunk can be asked for)
    "max_tokens_only",  # wants max_tokens, not max_completion_tokens
    "no_developer_role",  # rejects the developer role: sent as system
    "no_strict_tools",  # rejects strict in tool definitions and json_schema response formats
})}
# Where the catalogue's provider name is not the protocol's own.
_PRICE_PROVIDER = {"gemini": "google", "openai-responses": "openai", "bedrock-converse": "aws"}
