"""The metrics' names, labels and buckets against the OpenTelemetry GenAI semantic conventions
(open-telemetry/semantic-conventions-genai, docs/gen-ai/gen-ai-metrics.md) in Prometheus form, and
every label bounded: values from the configuration or a fixed set, never an account, key or request."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram

from core.config import Provider
from settler import metrics as settler_metrics
from translator import metrics
from translator.protocols import REGISTRY

# name, unit, attributes (required and recommended ones tokengate records), recommended buckets
CONVENTIONS = [
    ("gen_ai.client.token.usage", "{token}",
     ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.token.type", "gen_ai.request.model",
      "gen_ai.response.model"],
     [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]),
    ("gen_ai.server.request.duration", "s",
     ["gen_ai.operation.name", "gen_ai.provider.name", "error.type", "gen_ai.request.model",
      "gen_ai.response.model"],
     [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]),
    ("gen_ai.server.time_to_first_token", "s",
     ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model"],
     [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]),
    ("gen_ai.server.time_per_output_token", "s",
     ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model"],
     [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]),
]
UNIT_SUFFIX = {"s": "_seconds", "{token}": ""}  # Prometheus: base unit as a suffix; an annotation ({…}) has none

ALL = [m for mod in (metrics, settler_metrics) for m in vars(mod).values() if isinstance(m, Counter | Gauge | Histogram)]
# Every label any metric may carry, each bounded by the configuration (models, deployments, providers) or a
# fixed set (protocols, statuses, error kinds, token buckets, outcomes).
BOUNDED = {"model", "deployment", "protocol", "status", "kind", "bucket", "path", "outcome",
           "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
           "gen_ai_token_type", "error_type"}


def _by_name(name: str) -> Any:
    return next(m for m in ALL if m._name == name)


@pytest.mark.parametrize(("name", "unit", "attributes", "buckets"), CONVENTIONS, ids=[c[0] for c in CONVENTIONS])
def test_a_gen_ai_metric_has_the_conventions_name_attributes_and_buckets(
        name: str, unit: str, attributes: list[str], buckets: list[float]) -> None:
    """Dots become underscores, the unit a suffix; the attributes become labels; the recommended buckets."""
    metric = _by_name(name.replace(".", "_") + UNIT_SUFFIX[unit])
    assert isinstance(metric, Histogram)
    assert sorted(a.replace(".", "_") for a in attributes) == sorted(metric._labelnames)
    assert [*buckets, float("inf")] == list(metric._upper_bounds)


def test_every_label_is_bounded() -> None:
    """No metric has a label that could take an account, a key or a request as its value."""
    assert ALL
    for m in ALL:
        assert set(m._labelnames) <= BOUNDED, m._name


@pytest.mark.parametrize(("provider", "expected"), [
    ({"name": "p", "preset": "openai", "api_key": {"env": "X"}}, "openai"),
    ({"name": "p", "preset": "google-ai-studio", "api_key": {"env": "X"}}, "gcp.gemini"),
    ({"name": "p", "preset": "mistral", "api_key": {"env": "X"}}, "mistral_ai"),
    ({"name": "p", "preset": "together", "api_key": {"env": "X"}}, "together"),
    ({"name": "p", "protocol": "anthropic", "base_url": "https://api.anthropic.com"}, "anthropic"),
    ({"name": "local", "protocol": "openai", "base_url": "http://10.0.0.5:8000/v1"}, "local"),
    ({"name": "p", "protocol": "openai", "base_url": "https://r.openai.azure.com", "azure": {"api": "v1"}},
     "azure.ai.openai"),
], ids=["openai", "gemini", "mistral", "custom-preset", "official-host", "own-name", "azure"])
def test_the_provider_name_is_the_conventions_well_known_value_where_one_applies(
        provider: dict[str, Any], expected: str) -> None:
    """gen_ai.provider.name: a well-known value by preset or official host, else the preset's or provider's name."""
    assert expected == metrics.gen_ai_provider(Provider.model_validate(provider))


@pytest.mark.parametrize(("kind", "protocol", "expected"), [
    ("chat", "openai", "chat"), ("chat", "anthropic", "chat"), ("chat", "gemini", "generate_content"),
    ("embed_batch", "openai", "embeddings"), ("embed", "gemini", "embeddings"),
    ("count_tokens", "anthropic", "count_tokens"),
])
def test_the_operation_name(kind: str, protocol: str, expected: str) -> None:
    """gen_ai.operation.name: chat, Gemini's generate_content, embeddings; counting tokens a custom value."""
    assert expected == metrics.gen_ai_operation(kind, REGISTRY.get(protocol).gen_ai_operation)
