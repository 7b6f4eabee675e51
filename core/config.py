"""The gateway config: providers, deployments, models, listeners.

Loaded from one YAML file. A bad file is refused with a ``ConfigError`` whose
message names the file, the field and what is wrong; it never escapes as a
traceback from the CLI.

    providers:    where a protocol is spoken (base URL, credential source)
    deployments:  a provider plus the upstream model name
    models:       what clients ask for (name and aliases) -> deployments
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core import presets, pricing
from core.pricing import Price
from core.protocols import Protocol

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]
Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(Exception):
    """A gateway config that cannot be used, with a message fit for a person."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credential(_Strict):
    """Where a provider's API key comes from: an environment variable or a file."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Credential:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def resolve(self, base: Path) -> str | None:
        if self.env is not None:
            return os.environ.get(self.env) or None
        assert self.file is not None
        path = (base / self.file) if not os.path.isabs(self.file) else Path(self.file)
        try:
            return path.read_text().strip() or None
        except OSError:
            return None


class Azure(_Strict):
    """Azure OpenAI (docs/providers.md): the ``api-key`` header, and one of its two URL styles.

    ``api: deployments`` calls ``<base_url>/openai/deployments/<deployment's model>/chat/completions
    ?api-version=<api_version>`` (the deployment name in the path); ``api: v1`` calls
    ``<base_url>/openai/v1/chat/completions`` or ``…/responses`` with the model in the body.
    """

    api: Literal["deployments", "v1"] = "v1"
    api_version: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")

    @model_validator(mode="after")
    def _version(self) -> Azure:
        if (self.api == "deployments") != (self.api_version is not None):
            raise ValueError("'api_version' is needed with api: deployments, and only there")
        return self


_BEDROCK_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com")


class Aws(_Strict):
    """AWS Bedrock (docs/providers.md, "AWS Bedrock"): the region signed for, and SigV4 keys — an access key id
    and secret (``session_token`` too for temporary credentials). Without keys the provider's ``api_key`` is a
    Bedrock API key, sent as a bearer token. ``region`` defaults to the one in base_url's host. The provider's
    protocol says the API: ``bedrock-converse``
    (Converse/ConverseStream) or ``anthropic`` (InvokeModel with Anthropic's Messages body)."""

    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")  # default: base_url's
    access_key_id: Credential | None = None
    secret_access_key: Credential | None = None
    session_token: Credential | None = None

    @model_validator(mode="after")
    def _keys(self) -> Aws:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both 'access_key_id' and 'secret_access_key', or neither (a Bedrock API key)")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("'session_token' goes with 'access_key_id' and 'secret_access_key'")
        return self

    @property
    def signs(self) -> bool:
        return self.access_key_id is not None


class Vertex(_Strict):
    """Google Vertex AI (docs/providers.md): a Gemini (``protocol: gemini``) or Claude (``protocol:
    anthropic``) model of ``project`` at ``location``, called with an OAuth2 access token.

    The token comes from ``credentials_file`` (a service-account JSON key, refreshed in the background
    by each translator) or, without it, is the provider's ``api_key`` as it stands (a token you
    refresh yourself; for tests and development). With no ``base_url`` the provider calls the
    location's endpoint (``vertex_endpoint``).
    """

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # a Google Cloud project id
    location: str = Field(default="global", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    credentials_file: str | None = None


def vertex_endpoint(location: str) -> str:
    """The Vertex AI endpoint that serves ``location`` (the global one, a multi-region's, a region's)."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class Provider(_Strict):
    name: Name
    protocol: Protocol
    base_url: str
    api_key: Credential | None = None
    timeout_connect_s: float = Field(default=5.0, gt=0)
    preset: str | None = None  # fills protocol, base_url, api_key the entry leaves out (core/presets.py)
    params: dict[str, str] = Field(default_factory=dict)  # the preset's URL placeholders
    azure: Azure | None = None  # an Azure OpenAI resource: base_url is its endpoint, https://<resource>.openai.azure.com
    # Deviations from the protocol the gateway works around (docs/providers.md, "Quirks"); a preset fills them
    quirks: list[str] = Field(default_factory=list)
    vertex: Vertex | None = None  # Google Vertex AI: project, location, service-account file
    aws: Aws | None = None  # AWS Bedrock: base_url is https://bedrock-runtime.<region>.amazonaws.com

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        vertex = data.get("vertex") if isinstance(data, Mapping) else None
        location = vertex.get("location", "global") if isinstance(vertex, Mapping) else None
        if isinstance(location, str) and "base_url" not in data:  # Vertex AI: the location's endpoint
            data = {**data, "base_url": vertex_endpoint(location)}
        return presets.expand(data)

    @model_validator(mode="after")
    def _azure_protocol(self) -> Provider:
        if self.azure is not None and self.azure.api not in self.protocol.azure_apis:
            served = sorted(p.value for p in Protocol if self.azure.api in p.azure_apis)
            raise ValueError(f"Azure OpenAI's {self.azure.api} API serves protocol {' or '.join(served)}, "
                             f"not {self.protocol}")
        return self

    @model_validator(mode="after")
    def _aws(self) -> Provider:
        if self.aws is None:
            if self.protocol.bedrock_api == "converse" and self.api_key is None:
                raise ValueError("AWS Bedrock needs a Bedrock API key in 'api_key', or SigV4 keys in 'aws'")
            return self
        if self.protocol.bedrock_api is None:
            served = sorted(p.value for p in Protocol if p.bedrock_api)
            raise ValueError(f"AWS Bedrock serves protocol {' or '.join(served)}, not {self.protocol}")
        if self.aws.signs == (self.api_key is not None):
            raise ValueError("an AWS Bedrock provider takes SigV4 keys in 'aws' or a Bedrock API key in 'api_key', "
                             "one of the two")
        if self.aws.signs and self.aws_region is None:
            raise ValueError("aws.region is needed to sign (base_url is not https://bedrock-runtime.<region>."
                             "amazonaws.com)")
        return self

    @property
    def price_provider(self) -> str:
        """Where genai-prices files its models: ``aws`` for any AWS Bedrock provider, else the protocol's."""
        return "aws" if self.aws is not None else self.protocol.price_provider

    @property
    def reframes_streams(self) -> bool:
        """Its streams come in AWS's event-stream framing around its protocol's events (Bedrock's InvokeModel), so a
        direct route sets the caller's content type (translator/flavours/bedrock.py undoes the framing)."""
        return self.aws is not None and self.protocol.bedrock_api == "invoke"

    @property
    def aws_region(self) -> str | None:
        """The AWS region a Bedrock provider signs for: ``aws.region``, else its endpoint's."""
        if self.aws is not None and self.aws.region is not None:
            return self.aws.region
        m = _BEDROCK_HOST.fullmatch(self.host)
        return m[1] if m else None

    @model_validator(mode="after")
    def _vertex(self) -> Provider:
        if self.vertex is None:
            return self
        if not self.protocol.vertex_publisher:
            served = sorted(p.value for p in Protocol if p.vertex_publisher)
            raise ValueError(f"Vertex AI serves protocol {' or '.join(served)}, not {self.protocol}")
        if (self.vertex.credentials_file is None) == (self.api_key is None):
            raise ValueError("a Vertex AI provider needs vertex.credentials_file (a service-account key) "
                             "or api_key (an access token), one of the two")
        return self

    @model_validator(mode="after")
    def _quirks(self) -> Provider:
        known = self.protocol.quirks
        for q in self.quirks:
            if q not in known:
                if not known:
                    raise ValueError(f"quirks: protocol {self.protocol} has no quirks (got {q!r})")
                close = difflib.get_close_matches(q, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"quirks: unknown quirk {q!r} for protocol {self.protocol}{hint} "
                                 f"(known: {', '.join(sorted(known))})")
        return self

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def tls(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"

    @property
    def base_path(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")


class Deployment(_Strict):
    name: Name
    provider: Name
    model: str = Field(min_length=1, max_length=256)
    # The most output tokens this model at this provider accepts: a request asking for more is clamped to it
    # (Claude Code asks for 32000) instead of refused by the provider. None: sent as asked.
    max_output_tokens: int | None = Field(default=None, ge=1)


USDPerMTok = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class PriceSpec(_Strict):
    """USD per million tokens; cache and reasoning default to the input and output prices. A chat model
    needs ``input`` and ``output``; an embedding model is billed for its input alone (``input`` only)."""

    input: USDPerMTok
    output: USDPerMTok | None = None
    cache_read: USDPerMTok | None = None
    cache_write: USDPerMTok | None = None
    reasoning: USDPerMTok | None = None


class Routing(_Strict):
    """How Envoy retries and fails over for a model (defaults fit LLM traffic)."""

    retries: int = Field(default=2, ge=0, le=5)  # extra attempts after the first
    retry_on_status: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504, 529])
    per_try_timeout_s: float = Field(default=120, gt=0)  # time to the response headers, per attempt
    idle_timeout_s: float = Field(default=300, gt=0)  # longest silence inside a response
    backoff_base_ms: int = Field(default=250, ge=1)
    backoff_max_ms: int = Field(default=2000, ge=1)
    retry_after_max_s: float = Field(default=10, gt=0)  # a longer Retry-After is not waited for
    retry_budget_percent: float = Field(default=20, gt=0, le=100)  # retries as a share of active requests
    min_retry_concurrency: int = Field(default=3, ge=1)
    eject_after_failures: int = Field(default=3, ge=1)  # consecutive 5xx/connect failures
    ejection_s: float = Field(default=30, gt=0)  # first ejection; grows with repeats, up to 10x


class Target(_Strict):
    """One deployment as a model uses it: weight within its priority, priority for failover."""

    deployment: Name
    weight: int = Field(default=1, ge=1, le=128)
    priority: int = Field(default=0, ge=0, le=10)  # 0 first; higher only when lower ones fail


ModelKind = Literal["chat", "embedding"]
_PRICED_BEYOND_INPUT = ("output", "cache_read", "cache_write", "reasoning")


class Model(_Strict):
    name: str = Field(min_length=1, max_length=256)
    # chat: generation and token counts; embedding: the embeddings endpoints only (OpenAI /v1/embeddings,
    # Gemini :embedContent / :batchEmbedContents), billed for input tokens (docs/billing.md)
    kind: ModelKind = "chat"
    aliases: list[str] = Field(default_factory=list)
    deployments: list[Target] = Field(min_length=1)
    routing: Routing | None = None  # default: the top-level routing section
    price: PriceSpec | None = None  # default: the genai-prices catalogue
    free: bool = False  # serve without a price (cost 0); must be said explicitly
    max_output_tokens: int = Field(default=8192, ge=1)  # the hold assumes this when max_tokens is absent

    @field_validator("deployments", mode="before")
    @classmethod
    def _plain_names(cls, v: Any) -> Any:
        """A bare deployment name means weight 1, priority 0."""
        return [{"deployment": d} if isinstance(d, str) else d for d in v] if isinstance(v, list) else v

    @property
    def deployment_names(self) -> list[str]:
        return [t.deployment for t in self.deployments]

    @field_validator("name", "aliases")
    @classmethod
    def _model_names(cls, v: Any) -> Any:
        for name in [v] if isinstance(v, str) else v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*", name) or ".." in name:
                raise ValueError(f"{name!r} is not a usable model name (letters, digits, . _ : / @ -)")
        return v


class Server(_Strict):
    host: str = "0.0.0.0"
    http_port: Port = 8080
    https_port: Port | None = 8443
    tls_cert: str = "var/tls/dev.crt"
    tls_key: str = "var/tls/dev.key"
    admin_port: Port = 9901
    ready_port: Port = 8081
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    stream_idle_timeout_s: int = Field(default=300, ge=1)
    portal_upstream: str | None = None  # host:port Envoy sends /portal to; null: no portal route

    @field_validator("portal_upstream")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError("must be host:port, for example 127.0.0.1:8091")
        return v


class MeteringSpool(_Strict):
    """Where each translator worker keeps its metering events until Redis has them (docs/billing.md,
    "Metering spool")."""

    dir: str | None = None  # one folder per worker under it; null: "spool" beside the worker's socket
    max_mb: int = Field(default=1024, ge=1)  # per worker; past it events are kept in memory only (logged)
    fsync_s: float = Field(default=0.0, ge=0)  # > 0: fdatasync this often (a machine crash loses less); 0: never


class Translator(_Strict):
    workers: int = Field(default=0, ge=0, le=64)  # 0: one per CPU
    socket_dir: str = "var/run"
    message_timeout_ms: int = Field(default=10000, ge=50)
    metrics_listen: str | None = "127.0.0.1:9464"  # Prometheus /metrics of all workers; null: off
    spool: MeteringSpool = MeteringSpool()


class Lease(_Strict):
    """Admission without a Redis round trip per request (docs/billing.md, "Leases").

    A translator process moves a slice of an account's balance into a lease hold in one
    Lua call and admits that account's requests against it locally until it runs out.
    """

    enabled: bool = True
    max_usd: Decimal = Field(default=Decimal(5), gt=0, le=10_000)  # the most one lease holds
    min_requests: int = Field(default=20, ge=1)  # smaller balances: a hold per request, as without leases
    ttl_s: int = Field(default=60, ge=5)  # a dead process's lease is released by the reaper after this
    idle_s: float = Field(default=10.0, gt=0)  # an unused lease is given back after this
    key_cache_s: float = Field(default=5.0, ge=0)  # a revoked or changed key is noticed within this

    @property
    def max_nano(self) -> int:
        return int(self.max_usd * 1_000_000_000)


class Billing(_Strict):
    hold_ttl_s: int = Field(default=900, ge=10)  # a hold not settled by then is released by the reaper
    # A request whose translator died before it reported (its hold reaped): recorded either way
    # (ledger 'reaped', usage); "release" charges nothing, "charge_prompt" its estimated prompt.
    reaped_holds: Literal["release", "charge_prompt"] = "release"
    lease: Lease = Lease()


class Tracing(_Strict):
    """OpenTelemetry traces (docs/observability.md, "Traces"): off by default, and then nothing on the path.

    Envoy starts (or continues, from an incoming ``traceparent``) each sampled request's trace and
    exports its spans; the translators add theirs to the same trace, both over OTLP/gRPC."""

    enabled: bool = False
    otlp_endpoint: str = Field(default="127.0.0.1:4317", pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")  # host:port, gRPC
    sampling: float = Field(default=0.1, ge=0, le=1)  # share of requests traced (Envoy decides, translators follow)
    service_name: str = Field(default="tokengate", min_length=1, max_length=64)  # translators: <name>-translator
    forward_to_providers: bool = False  # send the attempt's traceparent on to providers (never by default)


# The access log's fields (JSON key -> Envoy format string). ``tokengate`` is the router's dynamic metadata
# (translator/extproc/router.py, ``_log_in_envoy``) as one nested object, written by one formatter: 17 fields
# read one by one cost Envoy about 20 µs more a request (docs/observability.md, "Access log"). No key, no
# prompt, no query string.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ_WITHOUT_QUERY(:PATH)%",  # without the query: Gemini's ?key= is a credential
    "status": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "duration_ms": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "upstream_host": "%UPSTREAM_HOST%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "trace_id": "%TRACE_ID%",
    "user_agent": "%REQ(USER-AGENT)%",
    "tokengate": "%DYNAMIC_METADATA(tokengate)%",
}


class AccessLog(_Strict):
    """Envoy's access log, one JSON object per request (docs/observability.md, "Access log"), with what
    the translator knows of the request; the translator's own per-request line then goes to debug."""

    enabled: bool = True
    path: str = "/dev/stdout"
    fields: dict[str, str] = Field(default_factory=lambda: dict(ACCESS_LOG_FIELDS), min_length=1)


class GatewayConfig(_Strict):
    server: Server = Server()
    translator: Translator = Translator()
    billing: Billing = Billing()
    routing: Routing = Routing()
    tracing: Tracing = Tracing()
    access_log: AccessLog = AccessLog()
    redis_url: str = "redis://127.0.0.1:6379/0"
    providers: list[Provider] = Field(min_length=1)
    deployments: list[Deployment] = Field(min_length=1)
    models: list[Model] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        _unique("providers", [p.name for p in self.providers])
        _unique("deployments", [d.name for d in self.deployments])
        providers = {p.name for p in self.providers}
        for i, d in enumerate(self.deployments):
            if d.provider not in providers:
                raise _FieldError(f"deployments[{i}].provider", f"no provider named {d.provider!r}")
        deployments = {d.name for d in self.deployments}
        seen: dict[str, str] = {}
        for i, m in enumerate(self.models):
            for j, dep in enumerate(m.deployment_names):
                if dep not in deployments:
                    raise _FieldError(f"models[{i}].deployments[{j}]", f"no deployment named {dep!r}")
            if len(set(m.deployment_names)) != len(m.deployments):
                raise _FieldError(f"models[{i}].deployments", "a deployment is listed twice")
            for name in [m.name, *m.aliases]:
                if name in seen:
                    raise _FieldError(f"models[{i}]", f"model name {name!r} is already used by {seen[name]!r}")
                seen[name] = m.name
        for i, m in enumerate(self.models):
            if m.free and m.price is not None:
                raise _FieldError(f"models[{i}]", "give a price or free: true, not both")
            self._check_kind(i, m)
            if self._price(m) is None:
                raise _FieldError(f"models[{i}]", (
                    f"no price is known for {m.name!r}: set price: {{input: …, output: …}} in USD per "
                    "million tokens, or free: true to serve it at no cost"))
        return self

    def _check_kind(self, i: int, m: Model) -> None:
        """A chat model's price has an output rate; an embedding model's has only an input rate, and
        its providers speak a protocol with an embeddings endpoint."""
        if m.kind == "chat":
            if m.price is not None and m.price.output is None:
                raise _FieldError(f"models[{i}].price.output", (
                    "required for a chat model (only a model with kind: embedding is priced by input alone)"))
            return
        extra = [k for k in _PRICED_BEYOND_INPUT if m.price is not None and getattr(m.price, k) is not None]
        if extra:
            raise _FieldError(f"models[{i}].price", (
                f"an embedding model is billed for its input tokens only: give price: {{input: …}} "
                f"without {', '.join(extra)}"))
        for j, dep in enumerate(m.deployment_names):
            p = self.provider(self.deployment(dep).provider)
            if not p.protocol.embeds:
                raise _FieldError(f"models[{i}].deployments[{j}]", (
                    f"provider {p.name!r} speaks {p.protocol.value}, which has no embeddings endpoint "
                    f"(an embedding model needs a provider speaking "
                    f"{' or '.join(q.value for q in Protocol if q.embeds)})"))

    def _price(self, m: Model) -> Price | None:
        if m.free:
            return pricing.FREE
        if m.price is not None:
            return pricing.from_usd_per_mtok(m.price.model_dump(exclude_none=True))
        for dep in m.deployment_names:
            d = self.deployment(dep)
            provider = self.provider(d.provider)
            for name in (m.name, d.model):
                if (p := pricing.catalogue(name, provider.protocol, input_only=m.kind == "embedding",
                                           provider=provider.price_provider)) is not None:
                    return p
        return None

    def prices(self) -> dict[str, Price]:
        """Every name a client may send -> the price it is billed at."""
        out = {}
        for m in self.models:
            p = self._price(m)
            assert p is not None  # checked at load
            for name in (m.name, *m.aliases):
                out[name] = p
        return out

    # --- lookups used on the request path (built once) ---

    def provider(self, name: str) -> Provider:
        return next(p for p in self.providers if p.name == name)

    def deployment(self, name: str) -> Deployment:
        return next(d for d in self.deployments if d.name == name)

    def direct_deployment(self, m: Model) -> Deployment | None:
        """The deployment every attempt for ``m`` goes to in effect, when all of them name one
        provider and one upstream model; else None.

        For a caller of that provider's protocol nothing then differs between attempts, so the
        router sets path, credential and body once and the request takes the *direct* route:
        a cluster without the per-attempt ext_proc filter.
        """
        deps = [self.deployment(n) for n in m.deployment_names]
        return deps[0] if len({(d.provider, d.model) for d in deps}) == 1 else None

    def routing_for(self, m: Model) -> Routing:
        return m.routing or self.routing

    def model_table(self) -> dict[str, Model]:
        """Every name a client may send (names and aliases) -> its model."""
        return {n: m for m in self.models for n in (m.name, *m.aliases)}


class _FieldError(ValueError):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise _FieldError(f"{section}[{i}].name", f"duplicate name {n!r}")
        seen.add(n)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(data: Any, source: str) -> GatewayConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = _loc(tuple(p for p in err["loc"] if p not in ("function-after",)))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling)"
            if ": " in msg and err["type"] == "value_error" and loc == "(top level)":
                lines.append(f"{source}: {msg}")
            else:
                lines.append(f"{source}: {loc}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and validate the gateway config at ``path``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the gateway config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse(data, str(p))
