"""The rendered pods, run on this machine: a request end to end, and the drain.

Each overlay is rendered; its Redis (in-cluster StatefulSet, or a local
redis-server for an external one), gateway pod and settler run from their
containers' rendered command, args, env, probes and mounted files, rewritten
only where a pod differs from loopback (``tests/deploy/pod.py``). The fake
provider sits behind a TLS front holding a certificate for the providers' real
names, signed by a test CA that replaces the image's CA bundle, and a resolver
on loopback sends those names to it, so Envoy's upstream config (host names,
Host header, SNI, certificate checks) is exercised as rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis
import yaml

from core import keys
from core.billing.ops import Billing
from fakes import FakeProvider, Reply
from tests.deploy.dns import resolver
from tests.deploy.kube import OVERLAYS, ROOT, arg_after, container, find, render
from tests.deploy.pod import LocalPod, Machine, image_files, local_binaries
from tests.deploy.tls import Pem, TlsFront, issue, make_ca
from tokengate.devstack import envoy_binary, redis_binary
from tokengate.procs import Child, Supervisor, free_port, port_open

IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROVIDER_KEYS = {"openai": "sk-sim-openai-secret", "anthropic": "sk-ant-sim-secret", "gemini": "sim-gemini-secret"}
REDIS_PASSWORD = "simulated-redis-password"  # no digits: ports are rewritten by number
FUNDS = 10 * 10**9  # $10 in nano-USD
ACCOUNT = "sim"
CLIENT_TIMEOUT_S = 30  # a request that hangs fails the test instead of holding it


@dataclass
class Sim:
    objs: list[dict[str, Any]]
    sup: Supervisor
    gateway: LocalPod
    children: dict[str, Child]
    fake: FakeProvider
    ca: Path
    redis_url: str  # as the translator got it, rewritten for this machine

    def url(self, port_name: str, scheme: str) -> str:
        envoy = self.gateway.container("envoy")
        return f"{scheme}://127.0.0.1:{self.gateway.port(envoy, port_name)}"

    def new_funded_key(self) -> str:
        async def make() -> str:
            r = aioredis.Redis.from_url(self.redis_url)
            try:
                key = await keys.create_key(r, ACCOUNT, name="simulation")
                await Billing(r).credit(ACCOUNT, FUNDS, kind="topup", ref="simulation", reason="test")
                return key
            finally:
                await r.aclose()
        return asyncio.run(make())

    def balance(self) -> int:
        async def get() -> int:
            r = aioredis.Redis.from_url(self.redis_url)
            try:
                return (await Billing(r).balance(ACCOUNT))[0]
            finally:
                await r.aclose()
        return asyncio.run(get())

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.log_tail(30)}" for c in self.children.values())


def _provider_hosts(envoy_doc: dict[str, Any]) -> set[tuple[str, int]]:
    """(host, port) of every provider endpoint in the Envoy config (all HTTPS: the TLS front plays them).
    The portal's cluster is the in-cluster portal Service, plain HTTP, not a provider."""
    out = set()
    for cluster in envoy_doc["static_resources"]["clusters"]:
        if cluster["name"] == "portal":
            continue
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                sock = ep["endpoint"]["address"].get("socket_address")
                if sock is not None:
                    assert "transport_socket" in cluster or "transport_socket_matches" in cluster, cluster["name"]
                    out.add((sock["address"], int(sock["port_value"])))
    return out


def _pod(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return dict(find(objs, kind, name)["spec"]["template"]["spec"])


@contextlib.contextmanager
def running(overlay: str) -> Iterator[Sim]:
    """The overlay's Redis, gateway pod and settler, up as the kubelet brings them up."""
    objs = render(OVERLAYS[overlay])
    root = Path(tempfile.mkdtemp(prefix="tg-sim-"))  # short: Unix socket paths live under it
    sup = Supervisor(root / "logs")
    ca_pem, ca_key, ca_cert = make_ca()
    ca = root / "ca.pem"
    ca.write_bytes(ca_pem.cert)
    served: Pem = issue(ca_key, ca_cert, ["localhost", "127.0.0.1"])
    config_maps = {cm["metadata"]["name"]: dict(cm["data"]) for cm in objs if cm["kind"] == "ConfigMap"}
    envoy_doc = yaml.safe_load(next(d["envoy.yaml"] for d in config_maps.values() if "envoy.yaml" in d))
    upstreams = _provider_hosts(envoy_doc)
    secrets = {
        "tokengate-provider-keys": dict(PROVIDER_KEYS),
        "tokengate-tls": {"tls.crt": served.cert.decode(), "tls.key": served.key.decode()},
        "tokengate-redis": {"password": REDIS_PASSWORD},
    }
    children: dict[str, Child] = {}
    try:
        names = {h for h, _ in upstreams}
        with FakeProvider.running() as fake, resolver(names) as dns_port, \
                TlsFront(issue(ca_key, ca_cert, sorted(names)), root / "front", fake.port).running() as front:
            machine = Machine(
                binaries=local_binaries(envoy_binary(), {"redis-server": redis_binary()}),
                files={**image_files(ROOT / "Dockerfile"), IMAGE_CA_BUNDLE: ca},
                secrets=secrets,
                config_maps=config_maps,
                services={hp: front.port for hp in upstreams},
                dns_port=dns_port,
            )
            if any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "tokengate-redis" for o in objs):
                sts = find(objs, "StatefulSet", "tokengate-redis")
                redis = LocalPod("redis", _pod(objs, "StatefulSet", "tokengate-redis"), root / "redis", machine,
                                 claims=[t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]])
                children["redis"] = redis.start("redis", sup)
                redis.wait_for("redis", "startupProbe", children["redis"], sup)
                svc = find(objs, "Service", "tokengate-redis")["spec"]["ports"][0]
                local = redis.port(redis.container("redis"), svc["targetPort"])
                machine.services[("tokengate-redis", int(svc["port"]))] = local  # the Service's name and port
            else:  # an external Redis: one here, its URL in the Secret the overlay reads
                port = free_port()
                children["redis"] = sup.start("external-redis", [
                    redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--dir", str(root)])
                sup.wait_until(children["redis"], lambda: port_open(port), 10, "accepting connections")
                secrets["tokengate-redis"] = {"url": f"redis://127.0.0.1:{port}/0"}

            gateway = LocalPod("gateway", _pod(objs, "Deployment", "tokengate-gateway"), root / "gateway", machine)
            children["translator"] = gateway.start("translator", sup)  # the sidecar first,
            gateway.wait_for("translator", "startupProbe", children["translator"], sup)
            children["envoy"] = gateway.start("envoy", sup)  # Envoy once it passes its startup probe
            gateway.wait_for("envoy", "startupProbe", children["envoy"], sup)
            settler = LocalPod("settler", _pod(objs, "Deployment", "tokengate-settler"), root / "settler", machine)
            children["settler"] = settler.start("settler", sup)

            redis_url = gateway.env(container(gateway.spec, "translator"))["REDIS_URL"]
            try:
                yield Sim(objs, sup, gateway, children, fake, ca, redis_url)
            finally:
                sup.stop_all()  # newest first: settler, Envoy, translator, Redis; then the fakes go
    finally:
        sup.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def _client(sim: Sim, key: str, tls: ssl.SSLContext | None = None) -> openai.OpenAI:
    """The OpenAI SDK on Envoy's http listener, or its https one trusting ``tls``."""
    base = sim.url("https", "https") if tls else sim.url("http", "http")
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT_S,
                         http_client=openai.DefaultHttpxClient(verify=tls) if tls else None)


def _serves_end_to_end(sim: Sim) -> None:
    key = sim.new_funded_key()
    with _client(sim, key) as client:
        resp = client.chat.completions.create(model="gpt-4o-mini",
                                              messages=[{"role": "user", "content": "hello pod"}])
    assert "echo: hello pod" == resp.choices[0].message.content, sim.logs()
    upstream = sim.fake.requests[-1]
    assert "Bearer " + PROVIDER_KEYS["openai"] == upstream.headers["authorization"]  # from the Secret's file
    assert "api.openai.com" == upstream.headers["host"]

    tls = ssl.create_default_context(cafile=str(sim.ca))  # the https listener, certificate from the Secret
    with _client(sim, key, tls) as client:
        stream = client.chat.completions.create(model="claude-haiku", stream=True,
                                                messages=[{"role": "user", "content": "over tls"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "echo: over tls" == text
    assert "/v1/messages" == sim.fake.requests[-1].path  # converted to Anthropic's protocol

    deadline = time.monotonic() + 15
    while sim.balance() >= FUNDS and time.monotonic() < deadline:  # the settler charges both requests
        time.sleep(0.1)
    assert sim.balance() < FUNDS, "the settler did not settle: " + sim.logs()


def _every_probe_passes(sim: Sim) -> None:
    for name in ("translator", "envoy"):
        for kind in ("readinessProbe", "livenessProbe"):
            assert sim.gateway.probe(name, kind), f"{name} {kind}\n{sim.logs()}"


@pytest.mark.timeout(90)
def test_dev_overlay_serves_settles_and_drains_like_the_kubelet() -> None:
    """dev: Redis, gateway and settler run as rendered; preStop drains a live stream, then Envoy, then the translator stop."""
    with running("dev") as sim:
        _every_probe_passes(sim)
        _serves_end_to_end(sim)

        envoy_c = sim.gateway.container("envoy")
        drain_s = float(sim.gateway.env(envoy_c)["TOKENGATE_DRAIN_TIME_S"])
        key = sim.new_funded_key()
        sim.fake.push(Reply(text="still streaming while the pod drains", delay_between=0.3))
        got: list[str] = []
        first = threading.Event()

        def stream() -> None:
            with _client(sim, key) as client:
                for chunk in client.chat.completions.create(model="gpt-4o", stream=True,
                                                            messages=[{"role": "user", "content": "long"}]):
                    got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
                    first.set()

        reader = threading.Thread(target=stream, daemon=True)
        reader.start()
        assert first.wait(10), sim.logs()

        started = time.monotonic()  # the pod is deleted: the kubelet runs Envoy's preStop hook
        hook = sim.gateway.spawn("envoy", envoy_c["lifecycle"]["preStop"]["exec"]["command"])
        while sim.gateway.probe("envoy", "readinessProbe") and time.monotonic() - started < 3:
            time.sleep(0.05)
        assert not sim.gateway.probe("envoy", "readinessProbe"), "not ready at once: the pod leaves the endpoints"
        reader.join(30)
        assert "still streaming while the pod drains" == "".join(got)  # the stream ran to its end
        out, _ = hook.communicate(timeout=drain_s + 30)
        assert 0 == hook.returncode, out
        assert time.monotonic() - started >= drain_s  # new connections were taken for the whole drain time
        assert "drained after" in sim.gateway.pid1_log.read_text()  # the hook's log is in Envoy's stdout

        envoy, translator = sim.children["envoy"], sim.children["translator"]
        assert envoy.alive() and translator.alive()
        envoy.proc.send_signal(signal.SIGTERM)  # then the kubelet stops Envoy...
        assert 0 == envoy.proc.wait(10)
        assert translator.alive()  # ...and only then the sidecar
        translator.proc.send_signal(signal.SIGTERM)
        grace = float(arg_after(container(sim.gateway.spec, "translator")["args"], "--grace"))
        assert 0 == translator.proc.wait(grace + 10), sim.logs()


@pytest.mark.timeout(60)
def test_prod_overlay_serves_over_tls_and_settles_with_an_external_redis() -> None:
    """prod: the gateway and settler reach an external Redis from the Secret's URL; both listeners serve."""
    with running("prod") as sim:
        _every_probe_passes(sim)
        _serves_end_to_end(sim)


def test_every_overlay_is_simulated() -> None:
    """A new overlay gets a simulation test here."""
    assert {"dev", "prod"} == set(OVERLAYS)
