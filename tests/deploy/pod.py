"""A rendered pod, run on this machine the way the kubelet runs it.

    pod = LocalPod("gateway", pod_spec, root, machine)   # volumes become folders, files written
    child = pod.start("translator", supervisor)          # command, args and env as rendered
    pod.wait_for("translator", "startupProbe", child)    # the probe as rendered, polled
    assert pod.probe("envoy", "readinessProbe")

Only what differs between a pod and this machine is rewritten, and only so:

- a mount path becomes its volume's folder here (in argv, env values and the
  mounted files themselves);
- a file of the image becomes its source here (the Dockerfile's COPY lines;
  the CA bundle becomes the test CA), an image binary the one on this machine;
- the pod's ports become free loopback ports, and ``0.0.0.0`` becomes
  ``127.0.0.1`` (the pod has its own network namespace, this machine has one);
- a Service ``host:port`` in argv or env becomes ``127.0.0.1`` and the port of
  whatever plays it here; in the Envoy config, upstream names stay and only
  their port changes, with Envoy's resolver pointed at one on loopback that
  answers 127.0.0.1 for them (``tests/deploy/dns.py``);
- ``/proc/1/fd/1`` (stdout of the container's PID 1) becomes a log file.

Everything else (argv, env, probes, file contents) is used as rendered, with
Kubernetes' ``$(VAR)`` expansion done here as the kubelet does it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tokengate.procs import Child, Supervisor, free_port

Obj = dict[str, Any]
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables only; ``$$`` is a literal ``$``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(sub, value)


def image_files(dockerfile: Path) -> dict[str, Path]:
    """Image path -> source file, from the COPY lines of the Dockerfile's last stage."""
    root = dockerfile.parent
    stage: list[str] = []
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            stage = []
        stage.append(line)
    out: dict[str, Path] = {}
    for line in stage:
        parts = line.split()
        if parts and parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
            *sources, dest = [p for p in parts[1:] if not p.startswith("--")]
            for src in sources:
                out[dest + Path(src).name if dest.endswith("/") else dest] = root / src
    return out


@dataclass
class Machine:
    """What stands in for the image and the cluster network on this machine."""

    binaries: dict[str, str]  # argv[0] in the image -> executable here
    files: dict[str, Path]  # file in the image -> file here
    secrets: dict[str, dict[str, str]]  # Secret name -> its data (plain text)
    services: dict[tuple[str, int], int] = field(default_factory=dict)  # (host, port) -> loopback port
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    dns_port: int | None = None  # a resolver on loopback that sends the services' names to 127.0.0.1


class LocalPod:
    def __init__(self, name: str, spec: Obj, root: Path, machine: Machine,
                 claims: list[str] | None = None) -> None:
        self.name = name
        self.spec = spec
        self.root = root
        self.machine = machine
        self.volumes: dict[str, Path] = {}
        self.workdir = root / "workdir"  # the image's WORKDIR; nothing relative may depend on it
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pid1_log = root / "pid1.log"
        for v in spec.get("volumes", []):
            self.volumes[v["name"]] = root / "vol" / v["name"]
        for claim in claims or []:  # a StatefulSet's volumeClaimTemplates
            self.volumes[claim] = root / "vol" / claim
        for d in self.volumes.values():
            d.mkdir(parents=True, exist_ok=True)
        self.ports = {p: free_port() for p in self._pod_ports()}
        self._write_volumes()

    # -- the pod's view -> this machine ---------------------------------------------

    def container(self, name: str) -> Obj:
        return next(c for c in [*self.spec.get("initContainers", []), *self.spec["containers"]]
                    if c["name"] == name)

    def mounts(self, c: Obj) -> dict[str, Path]:
        return {m["mountPath"].rstrip("/"): self.volumes[m["name"]] for m in c.get("volumeMounts", [])}

    def local_path(self, c: Obj, path: str) -> Path:
        """Where a path of container ``c`` is on this machine."""
        return Path(self.paths(path, c))

    def paths(self, text: str, c: Obj) -> str:
        """Mount paths, image files and PID 1's stdout in ``text`` -> their places here."""
        table: dict[str, str] = {k: str(v) for k, v in self.machine.files.items()}
        table.update({k: str(v) for k, v in self.mounts(c).items()})
        table["/proc/1/fd/1"] = str(self.pid1_log)
        alternatives = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
        pattern = r"(?<![\w./-])(" + alternatives + r")(?=[/\s'\",}\])]|$)"
        return re.sub(pattern, lambda m: table[m.group(1)], text)  # one pass: a result is never rewritten again

    def _network(self, text: str) -> str:
        for (host, port), local in self.machine.services.items():
            text = re.sub(re.escape(host) + r"(\.[A-Za-z0-9.-]+)?:" + str(port) + r"(?!\d)",
                          f"127.0.0.1:{local}", text)
        for port, local in self.ports.items():
            text = re.sub(r"(?<!\d)" + str(port) + r"(?!\d)", str(local), text)
        return text.replace("0.0.0.0:", "127.0.0.1:")

    def localize(self, text: str, c: Obj) -> str:
        return self.paths(self._network(text), c)

    # -- volumes and files ------------------------------------------------------------

    def _pod_ports(self) -> set[int]:
        ports = {p["containerPort"] for c in [*self.spec.get("initContainers", []), *self.spec["containers"]]
                 for p in c.get("ports", [])}
        for content in self._config_files():
            doc = yaml.safe_load(content)
            if isinstance(doc, dict) and "static_resources" in doc:  # an Envoy bootstrap: admin too
                ports.add(int(doc["admin"]["address"]["socket_address"]["port_value"]))
        return ports

    def _config_files(self) -> list[str]:
        out = []
        for v in self.spec.get("volumes", []):
            if "configMap" in v:
                out += list(self.machine.config_maps[v["configMap"]["name"]].values())
        return out

    def _write_volumes(self) -> None:
        for v in self.spec.get("volumes", []):
            if "configMap" in v:
                data, ref = self.machine.config_maps[v["configMap"]["name"]], v["configMap"]
            elif "secret" in v:
                name = v["secret"]["secretName"]
                if name not in self.machine.secrets:
                    raise AssertionError(f"pod {self.name} mounts Secret {name}, which the test does not provide")
                data, ref = self.machine.secrets[name], v["secret"]
            else:
                continue  # emptyDir: an empty folder
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            reader = next(c for c in [*self.spec.get("initContainers", []), *self.spec["containers"]]
                          if any(m["name"] == v["name"] for m in c.get("volumeMounts", [])))
            for item in items:
                dest = self.volumes[v["name"]] / item["path"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(self._file(data[item["key"]], reader))

    def _file(self, content: str, reader: Obj) -> str:
        """A mounted file as the container reads it here: its paths, ports and upstreams local."""
        content = self.paths(content, reader)
        try:
            doc = yaml.safe_load(content)
        except yaml.YAMLError:
            return content  # not YAML (a key, a certificate): paths were all there was to change
        if isinstance(doc, dict) and "static_resources" in doc:
            return yaml.safe_dump(self._envoy(doc), sort_keys=False)
        if isinstance(doc, dict) and "providers" in doc and "server" in doc:
            return yaml.safe_dump(self._gateway(doc), sort_keys=False)
        return content

    def _listen(self, sock: Obj) -> None:
        port = int(sock["port_value"])
        if port in self.ports:
            sock["port_value"] = self.ports[port]
            if sock["address"] == "0.0.0.0":
                sock["address"] = "127.0.0.1"

    def _envoy(self, doc: Obj) -> Obj:
        self._listen(doc["admin"]["address"]["socket_address"])
        for listener in doc["static_resources"]["listeners"]:
            self._listen(listener["address"]["socket_address"])
        named = False
        for cluster in doc["static_resources"]["clusters"]:
            for group in cluster["load_assignment"]["endpoints"]:
                for ep in group["lb_endpoints"]:
                    sock = ep["endpoint"]["address"].get("socket_address")
                    if sock and (sock["address"], int(sock["port_value"])) in self.machine.services:
                        sock["port_value"] = self.machine.services[(sock["address"], int(sock["port_value"]))]
                        named = named or cluster["type"] in ("STRICT_DNS", "LOGICAL_DNS")
        if named:  # the names stay (Host, SNI, SAN checks follow them); the pod's resolver is ours
            if self.machine.dns_port is None:
                raise AssertionError("the Envoy config resolves upstream names: give the Machine a dns_port")
            doc["typed_dns_resolver_config"] = {
                "name": "envoy.network.dns_resolver.cares",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
                    "resolvers": [{"socket_address": {"address": "127.0.0.1", "port_value": self.machine.dns_port}}],
                },
            }
        return doc

    def _gateway(self, doc: Obj) -> Obj:
        server = doc.get("server", {})
        for key in ("http_port", "https_port", "admin_port", "ready_port"):
            if server.get(key) in self.ports:
                server[key] = self.ports[server[key]]
        if server.get("host") == "0.0.0.0":
            server["host"] = "127.0.0.1"
        return doc

    # -- containers ---------------------------------------------------------------------

    def env(self, c: Obj) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in c.get("env", []):
            if "value" in e:
                value = expand(str(e["value"]), out)
            else:
                ref = e["valueFrom"]
                if "secretKeyRef" in ref:
                    value = self.machine.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
                elif "configMapKeyRef" in ref:
                    value = self.machine.config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
                else:
                    raise NotImplementedError(f"env {e['name']}: {ref}")
            out[e["name"]] = value
        if "envFrom" in c:
            raise NotImplementedError("envFrom")
        return {k: self.localize(v, c) for k, v in out.items()}

    def argv(self, c: Obj, argv: list[str]) -> list[str]:
        env = self.env(c)
        out = [self.localize(expand(str(a), env), c) for a in argv]
        out[0] = self.machine.binaries.get(out[0], out[0])
        return out

    def start(self, name: str, sup: Supervisor) -> Child:
        c = self.container(name)
        argv = self.argv(c, [*c.get("command", []), *c.get("args", [])])
        return sup.start(f"{self.name}.{name}", argv, env=self.env(c), cwd=self.workdir)

    def run(self, name: str, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """An exec (probe or hook) in container ``name``."""
        c = self.container(name)
        return subprocess.run(self.argv(c, command), env={**os.environ, **self.env(c)}, cwd=self.workdir,
                              capture_output=True, text=True, timeout=timeout)

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[str]:
        """An exec that runs on while the test goes on (a preStop hook)."""
        c = self.container(name)
        return subprocess.Popen(self.argv(c, command), env={**os.environ, **self.env(c)}, cwd=self.workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def port(self, c: Obj, port: int | str) -> int:
        """The loopback port standing in for a container port (by number or name)."""
        number = port if isinstance(port, int) else next(
            int(p["containerPort"]) for p in c["ports"] if p.get("name") == port)
        return self.ports[number]

    # -- probes -------------------------------------------------------------------------

    def probe(self, name: str, kind: str) -> bool:
        """One run of the container's probe ``kind`` (startupProbe, readinessProbe, livenessProbe)."""
        c = self.container(name)
        p = c[kind]
        timeout = float(p.get("timeoutSeconds", 1))
        if "httpGet" in p:
            url = f"http://127.0.0.1:{self.port(c, p['httpGet']['port'])}{p['httpGet'].get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
                    return 200 <= int(resp.status) < 400
            except OSError:
                return False
        if "grpc" in p:
            target = f"127.0.0.1:{self.port(c, p['grpc']['port'])}"
            try:
                with grpc.insecure_channel(target) as ch:
                    resp = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=p["grpc"].get("service", "")), timeout=timeout)
            except grpc.RpcError:
                return False
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
        if "tcpSocket" in p:
            try:
                with socket.create_connection(("127.0.0.1", self.port(c, p["tcpSocket"]["port"])), timeout):
                    return True
            except OSError:
                return False
        if "exec" in p:
            try:
                return self.run(name, p["exec"]["command"], timeout).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        raise NotImplementedError(f"{name}.{kind}: {p}")

    def wait_for(self, name: str, kind: str, child: Child, sup: Supervisor) -> None:
        """Poll the probe until it passes, for as long as the kubelet would (period x threshold)."""
        p = self.container(name)[kind]
        budget = float(p.get("periodSeconds", 10)) * float(p.get("failureThreshold", 3))
        sup.wait_until(child, lambda: self.probe(name, kind), budget, f"passing its {kind}")


def local_binaries(envoy: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    tokengate = str(Path(sys.executable).with_name("tokengate"))
    return {"envoy": envoy, "tokengate": tokengate, "python": sys.executable, **(extra or {})}

