"""A Sentinel-managed primary and replica, reached by ``redis+sentinel://…/<service>``: a top-up made
with ``wait_replicas=1`` survives the primary's death, and the same client follows the promoted
replica. Also the URL forms ``core.redisconn.connect`` takes and refuses."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from redis._parsers.encoders import Encoder
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import DataError

from core import redisconn
from core.billing.ops import Billing
from tokengate import admin_api
from tokengate.devstack import redis_binary
from tokengate.procs import Child, Supervisor, free_port, port_open

SERVICE = "tokengate"


class SentinelSetup:
    def __init__(self, workdir: Path) -> None:
        self.workdir, self.sup = workdir, Supervisor(workdir / "logs")
        self.primary, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.children: dict[int, Child] = {}

    def start(self) -> None:
        for port, extra in ((self.primary, []), (self.replica, ["--replicaof", "127.0.0.1", str(self.primary)])):
            data = self.workdir / str(port)
            data.mkdir()
            self.children[port] = self.sup.start(f"redis-{port}", [
                redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                "--save", "", "--appendonly", "no", *extra])
        conf = self.workdir / "sentinel.conf"
        conf.write_text(f"port {self.sentinel}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 {self.primary} 1\n"
                        f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 5000\n")
        self.children[self.sentinel] = self.sup.start("sentinel", [redis_binary(), str(conf), "--sentinel"])
        for port, child in self.children.items():
            self.sup.wait_until(child, lambda p=port: port_open(p), 10, "accepting connections")
        deadline = time.monotonic() + 30  # Sentinel learns of the replica from the primary's INFO (every 10 s)
        while redis.Redis(port=self.replica).info("replication").get("master_link_status") != "up" \
                or not redis.Redis(port=self.sentinel).sentinel_slaves(SERVICE):
            assert time.monotonic() < deadline, "the replica never synced, or Sentinel never saw it"
            time.sleep(0.1)

    def kill_primary(self) -> None:
        child = self.children[self.primary]
        child.restart = False
        child.proc.kill()
        child.proc.wait(10)

    def restart_old_primary(self) -> None:
        old = self.children[self.primary]
        self.children[self.primary] = self.sup.start(old.name, old.argv)

    def stop(self) -> None:
        self.sup.stop_all(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def sentinel_setup() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(Path(tempfile.mkdtemp(prefix="tg-sentinel.")))
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def test_a_top_up_survives_the_primarys_death_and_the_client_follows(sentinel_setup: SentinelSetup) -> None:
    """With wait_replicas=1 a top-up counts once a replica has it: it survives the primary's SIGKILL.
    On the promoted replica, alone, a top-up is applied but not confirmed (NotReplicated: the caller
    is told, and the same ref again is safe); once the old primary is back as its replica it is."""
    s = sentinel_setup

    async def run() -> tuple[int | None, list[int | None], tuple[int, int]]:
        r = redisconn.connect(f"redis+sentinel://127.0.0.1:{s.sentinel}/{SERVICE}?wait_replicas=1&wait_ms=500",
                              socket_timeout=2)
        try:
            b = Billing(r)
            first = await b.credit("sent", 7_000, kind="topup", ref="one", reason="test")
            s.kill_primary()
            deadline = time.monotonic() + 30
            while redis.Redis(port=s.sentinel).sentinel_get_master_addr_by_name(SERVICE)[1] != s.replica:
                assert time.monotonic() < deadline, "no failover"
                await asyncio.sleep(0.2)
            while True:  # the same client finds the promoted replica; alone, it cannot confirm a write
                try:
                    await b.credit("sent", 5_000, kind="topup", ref="two", reason="test")
                except redisconn.NotReplicated:
                    break
                except redisconn.ERRORS:
                    assert time.monotonic() < deadline, "the client never reached the promoted replica"
                    await asyncio.sleep(0.2)
            s.restart_old_primary()  # Sentinel makes it the new primary's replica
            again: list[int | None] = []
            while not again:
                try:
                    again.append(await b.credit("sent", 5_000, kind="topup", ref="two", reason="test"))
                except redisconn.ERRORS:
                    assert time.monotonic() < deadline + 30, "the old primary never came back as a replica"
                    await asyncio.sleep(0.3)
            return first, again, await b.balance("sent")
        finally:
            await r.aclose()

    first, again, balance = asyncio.run(run())
    assert (first, again, balance) == (7_000, [None], (12_000, 0))  # "two" applied once, by the unconfirmed call


def test_the_urls_connect_reads() -> None:
    plain = redisconn.connect("redis://:pw@127.0.0.1:6399/3?wait_replicas=2&wait_ms=50")
    kw = plain.connection_pool.connection_kwargs
    assert (kw["port"], kw["db"], kw["password"]) == (6399, 3, "pw")
    assert redisconn.options(plain) == redisconn.Options(replicas=2, timeout_ms=50, shards=1)
    cluster = redisconn.connect("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2,[::1]:7002/?metering_shards=8")
    assert isinstance(cluster, RedisCluster)
    seeds = [(n.host, n.port) for n in cluster.startup_nodes]
    assert seeds == [("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)]
    assert redisconn.options(cluster).shards == 8
    assert redisconn.is_cluster(cluster) and not redisconn.is_cluster(plain)
    unix = redisconn.connect("unix:///run/redis/redis.sock?db=2")  # urlunsplit made it "unix:/…": refused
    assert (unix.connection_pool.connection_kwargs["path"], unix.connection_pool.connection_kwargs["db"]) == \
        ("/run/redis/redis.sock", 2)
    for bad, why in (("memcached://x", "unknown scheme"), ("redis+sentinel://127.0.0.1:26379", "service name"),
                     ("redis://x/?wait_replicas=lots", "integers"), ("redis://x/?metering_shards=0", "metering_shards"),
                     ("redis+cluster://:1", "no host")):
        with pytest.raises(ValueError, match=why):
            redisconn.connect(bad)


def test_script_calls_are_packed_whole_into_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind of client packs EVAL/EVALSHA with hiredis in one call, without redis-py's encoding of each argument
    in Python, into the same bytes, and refuses what redis-py refuses; other commands go redis-py's way."""
    own = aioredis.Connection()  # redis-py's packing, untouched
    encoded: list[object] = []
    plain_encode = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, v: encoded.append(v) or plain_encode(self, v))
    pools = [redisconn.connect(u).connection_pool for u in ("redis://h:1/0", "rediss://h:1/0", "unix:///r.sock")]
    made = [pool.make_connection() for pool in pools]
    node_class = cast(RedisCluster, redisconn.connect("redis+cluster://h:1")).nodes_manager.connection_kwargs[
        "connection_class"]
    made.append(node_class(host="h", port=1))
    sentinel = redisconn.connect("redis+sentinel://h:1/s").connection_pool.connection_class
    assert issubclass(sentinel, redisconn._PacksScripts) and issubclass(sentinel, SentinelManagedConnection)
    script = ("EVALSHA", "ab12", 2, "tg:{acct}:k", "tg:{acct}:é", b"\x00pb\r\n", 7, -3, 0.25, 10**20, "")
    others = [("EVAL", "return 1", 0), ("SET", "k", b"v", "EX", 30), ("CONFIG GET", "maxmemory")]
    for conn in made:
        encoded.clear()
        assert b"".join(own.pack_command(*script)) == b"".join(conn.pack_command(*script))
        assert [] == encoded  # (own's encoder was bound before the spy)
        for call in others:
            assert b"".join(own.pack_command(*call)) == b"".join(conn.pack_command(*call))
        encoded.clear()
        conn.pack_command("SET", "k", b"v")
        assert [b"SET", "k", b"v"] == encoded  # each argument encoded in Python, as ever
        with pytest.raises(DataError):
            conn.pack_command("EVALSHA", "ab12", 0, True)  # no bools, as before


def test_the_admin_api_says_a_credit_was_not_confirmed(tmp_path: Path) -> None:
    """A lone Redis asked to wait for a replica: the credit is applied but unconfirmed, and the admin
    API answers 503 saying so (repeating it with its ref applies it once)."""
    sup, port = Supervisor(tmp_path / "logs"), free_port()
    child = sup.start("redis", [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                                "--save", "", "--appendonly", "no"])
    try:
        sup.wait_until(child, lambda: port_open(port), 10, "accepting connections")

        async def run() -> list[tuple[int, str]]:
            r = redisconn.connect(f"redis://127.0.0.1:{port}/0?wait_replicas=1&wait_ms=50")
            app = admin_api.build(r, "t")
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
                    out = []
                    for _ in range(2):
                        res = await c.post("/admin/accounts/lone/credits", json={"usd": "5", "ref": "once"},
                                           headers={"authorization": "Bearer t"})
                        out.append((res.status_code, res.json()["error"]))
                    return out
            finally:
                await r.aclose()

        answers = asyncio.run(run())
        assert [s for s, _ in answers] == [503, 503]
        assert all("not confirmed" in e and "same ref" in e for _, e in answers)
        assert redis.Redis(port=port).hget("tg:{lone}:account", "balance") == b"5000000000"  # once
    finally:
        sup.stop_all()
