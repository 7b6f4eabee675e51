"""A real local Redis Cluster for the tests: 3 masters and a replica each on loopback.

``LocalCluster.start()`` runs six ``redis-server --cluster-enabled yes`` processes (their
own ports and cluster bus ports, a temp dir, no persistence: the tests kill nodes on purpose)
and joins them with ``redis-cli --cluster create … --cluster-replicas 1``. A small
``cluster-node-timeout`` makes a replica take over within a couple of seconds of its master's
death. Every process dies with the test process (``Supervisor``: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from tokengate.devstack import redis_binary
from tokengate.procs import Child, Supervisor, free_port, port_open

NODE_TIMEOUT_MS = 1000


@dataclass
class LocalCluster:
    workdir: Path
    nodes: int = 6
    ports: list[int] = field(default_factory=list)
    children: dict[int, Child] = field(default_factory=dict)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.workdir / "logs")

    def url(self, **params: int) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"redis+cluster://{','.join(f'127.0.0.1:{p}' for p in self.ports[:3])}" + (f"/?{query}" if query else "")

    def start(self) -> None:
        for i in range(self.nodes):
            port, bus = free_port(), free_port()
            data = self.workdir / f"node-{port}"
            data.mkdir(parents=True)
            self.ports.append(port)
            self.children[port] = self.supervisor.start(f"redis-{i}-{port}", [
                redis_binary(), "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
                "--dir", str(data), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", "",
                "--protected-mode", "yes",
            ])
        for port in self.ports:
            self.supervisor.wait_until(self.children[port], lambda p=port: port_open(p), 10, "accepting connections")
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_healthy()

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2)

    def alive(self) -> list[int]:
        return [p for p, c in self.children.items() if c.alive()]

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node sees the cluster ok with all slots served, and every live replica is in sync."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._healthy(p) for p in self.alive()):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not healthy after {timeout}s: " + "; ".join(
                    f"{p}: {self._state(p)}" for p in self.alive()))
            time.sleep(0.2)

    def _state(self, port: int) -> str:
        try:
            return str(self.node(port).cluster("info").get("cluster_state"))
        except redis.RedisError as exc:
            return str(exc)

    def _healthy(self, port: int) -> bool:
        r = self.node(port)
        info = r.cluster("info")
        if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
            return False
        repl = r.info("replication")
        return repl["role"] == "master" or repl.get("master_link_status") == "up"

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=5)

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        c = self.client()
        try:
            return int(c.get_node_from_key(key).port)
        finally:
            c.close()

    def replica_of(self, master: int) -> int:
        for port in self.alive():
            repl = self.node(port).info("replication")
            if repl["role"] == "slave" and int(repl["master_port"]) == master:
                return port
        raise LookupError(f"no live replica of {master}")

    def restart(self, port: int) -> None:
        """Start a killed node again on its own data dir: it rejoins (as a replica once its
        slots were failed over), as a Kubernetes pod restarted in place would."""
        old = self.children[port]
        self.children[port] = self.supervisor.start(old.name, old.argv)
        self.supervisor.wait_until(self.children[port], lambda: port_open(port), 10, "accepting connections")

    def kill(self, port: int) -> None:
        """SIGKILL one node (the supervisor does not restart it)."""
        child = self.children[port]
        child.restart = False
        child.proc.kill()
        child.proc.wait(10)

    def stop(self) -> None:
        self.supervisor.stop_all(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)
