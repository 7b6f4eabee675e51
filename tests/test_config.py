"""The gateway config: good files load, bad ones are refused with file, field and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config import ConfigError, load

GOOD = {
    "providers": [{"name": "p", "protocol": "openai", "base_url": "https://api.example.com/v1",
                   "api_key": {"env": "X_KEY"}}],
    "deployments": [{"name": "d", "provider": "p", "model": "m-1"}],
    "models": [{"name": "m", "aliases": ["m-latest"], "deployments": ["d"], "price": {"input": 1, "output": 2}}],
}


def _with(path: str, value: object) -> dict[str, object]:
    """GOOD with one field replaced, addressed like 'providers.0.protocol'."""
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (_with("providers.0.protocol", "grpc"), "providers[0].protocol: Input should be 'openai', 'anthropic', 'gemini', 'openai-responses' or 'bedrock-converse'"),
        (_with("providers.0.base_url", "ftp://x"), "providers[0].base_url: must be an http:// or https:// URL"),
        (_with("providers.0.api_key", {"env": "A", "file": "b"}), "providers[0].api_key: give exactly one of"),
        (_with("providers.0.colour", "red"), "providers[0].colour: unknown field"),
        (_with("deployments.0.provider", "q"), "deployments[0].provider: no provider named 'q'"),
        (_with("models.0.deployments", ["nope"]), "models[0].deployments[0]: no deployment named 'nope'"),
        (_with("models.0.aliases", ["m"]), "models[0]: model name 'm' is already used by 'm'"),
        (_with("models.0.name", "a..b"), "models[0].name: 'a..b' is not a usable model name"),
        (_with("models.0.price", ...), "models[0]: no price is known for 'm': set price:"),
        (_with("models.0.free", True), "models[0]: give a price or free: true, not both"),
        (_with("models.0.price", {"input": -1, "output": 1}), "models[0].price.input: Input should be greater than or equal to 0"),
        (_with("models", []), "models: List should have at least 1 item"),
        (_with("providers", ...), "providers: Field required"),
        (_with("server", {"http_port": 70000}), "server.http_port: Input should be less than or equal to 65535"),
        (_with("server", {"portal_upstream": "8091"}), "server.portal_upstream: must be host:port"),
        ([1, 2], "the top level must be a mapping"),
        (_with("models.0.price", {"input": 1}), "models[0].price.output: required for a chat model"),
        (_with("models.0.kind", "vision"), "models[0].kind: Input should be 'chat' or 'embedding'"),
        (_with("models.0", {"name": "e", "kind": "embedding", "deployments": ["d"], "price": {"input": 1, "output": 2}}),
         "models[0].price: an embedding model is billed for its input tokens only: give price: {input: …} without "
         "output"),
        (_with("providers.0.protocol", "anthropic") | {"models": [{"name": "e", "kind": "embedding",
                                                                  "deployments": ["d"], "price": {"input": 1}}]},
         "models[0].deployments[0]: provider 'p' speaks anthropic, which has no embeddings endpoint (an embedding "
         "model needs a provider speaking openai or gemini)"),
    ],
    ids=["protocol", "base-url", "credential", "unknown-field", "provider-ref", "deployment-ref",
         "duplicate-name", "model-name", "no-price", "price-and-free", "negative-price", "no-models", "no-providers", "port", "portal-upstream", "not-a-mapping",
         "chat-price-without-output", "unknown-kind", "embedding-price-with-output", "embedding-on-anthropic"],
)
def test_bad_config_names_file_field_and_reason(tmp_path: Path, doc: object, expected: str) -> None:
    """Each mistake is reported as '<file>: <field>: <what is wrong>'."""
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert f"{path}: {expected}" in str(exc.value)


def test_good_config_loads_with_aliases(tmp_path: Path) -> None:
    """Names and aliases both resolve to the model."""
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    cfg = load(path)
    assert ["m", "m-latest"] == list(cfg.model_table())
    assert ("api.example.com", 443, True, "/v1") == (
        cfg.providers[0].host, cfg.providers[0].port, cfg.providers[0].tls, cfg.providers[0].base_path)


def test_an_embedding_model_is_priced_by_input_alone(tmp_path: Path) -> None:
    """kind: embedding with price: {input} loads; its output rate is 0; chat models stay kind chat."""
    doc = _with("models.0.aliases", [])
    doc["models"].append({"name": "e", "kind": "embedding", "deployments": ["d"], "price": {"input": 0.02}})
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load(path)
    assert (["chat", "embedding"], 20_000, 0) == (
        [m.kind for m in cfg.models], cfg.prices()["e"].rates.input, cfg.prices()["e"].rates.output)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("providers: [\n", "not valid YAML at line 2, column 1"), (None, "cannot read the gateway config")],
    ids=["yaml-syntax", "missing-file"],
)
def test_unreadable_config_is_refused_clearly(tmp_path: Path, text: str | None, expected: str) -> None:
    """Broken YAML and a missing file get a one-line reason."""
    path = tmp_path / "gw.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load(path)


def test_cli_refuses_bad_config_without_a_traceback(tmp_path: Path) -> None:
    """`tokengate check` exits 2 with the message and no Python traceback."""
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(_with("deployments.0.provider", "q")))
    proc = subprocess.run([sys.executable, "-m", "tokengate.cli", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert 2 == proc.returncode
    assert "deployments[0].provider: no provider named 'q'" in proc.stderr
    assert "Traceback" not in proc.stderr
