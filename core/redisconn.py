"""One way for every process to reach Redis: a single server, a Redis Cluster or Sentinel.

``connect(url)`` reads one URL (docs/deploy.md, "Scaling out"):

    redis://[user:pass@]host:port/db             one server (also ``rediss://`` for TLS, ``unix://``)
    redis+cluster://[user:pass@]h1:p1,h2:p2,...  a Redis Cluster, from any of its nodes (seed nodes;
                                                 ``rediss+cluster://`` for TLS); db is always 0
    redis+sentinel://[user:pass@]s1:p1,s2:p2/<service>[/db]
                                                 the primary Sentinel names ``<service>``, followed
                                                 across failovers (``rediss+sentinel://``: TLS to it);
                                                 user:pass are the primary's, not the Sentinels'
                                                 (Sentinels with a password: not supported yet)

and two query parameters of tokengate's own, on any of them:

    wait_replicas=N   after the writes that carry money (metering events into the stream, a
                      batch's settlement before it is acknowledged, a top-up) wait until N
                      replicas have them (Redis's WAIT), so a failover cannot lose them (default 0)
    wait_ms=T         how long to wait for them (default 200); fewer replicas in time is an error
                      the writer retries (the event stays spooled, the entry unacknowledged)
    metering_shards=N the metering events go to N streams by a hash of the account (default 1:
                      ``tg:metering`` alone); on a cluster, settlement then spreads over masters

The cluster client is ``redis.asyncio.RedisCluster``; it answers the same commands as
``redis.asyncio.Redis`` for what tokengate does (every multi-key call stays on one hash
slot, ``tests/cluster``), so it is typed as one here rather than spreading a union through
every signature.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import SplitResult, parse_qs, unquote, urlencode, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisClusterException, RedisError

# What a Redis call can raise when Redis is away, failing over or refusing: callers that
# answer 503 or retry catch these (a cluster client raises RedisClusterException, which is not
# a RedisError, when no node covers a slot during a failover).
ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True, slots=True)
class Options:
    """tokengate's own settings in the URL."""

    replicas: int = 0  # wait_replicas
    timeout_ms: int = 200  # wait_ms
    shards: int = 1  # metering_shards


class NotReplicated(RedisError):
    """Fewer replicas than ``wait_replicas`` acknowledged a write in time."""


_options: weakref.WeakKeyDictionary[Any, Options] = weakref.WeakKeyDictionary()


def connect(url: str, **kwargs: Any) -> aioredis.Redis:
    """A client for ``url`` (see the module docstring); ``kwargs`` are connection options
    (timeouts, health checks) passed to every connection it makes."""
    parts, netloc = _split(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        opts = Options(int(query.pop("wait_replicas", 0)), int(query.pop("wait_ms", 200)),
                       int(query.pop("metering_shards", 1)))
    except ValueError as exc:
        raise ValueError(f"redis URL: wait_replicas, wait_ms and metering_shards are integers ({exc})") from None
    if opts.replicas < 0 or opts.timeout_ms < 1 or not 1 <= opts.shards <= 1024:
        raise ValueError("redis URL: wait_replicas >= 0, wait_ms >= 1, 1 <= metering_shards <= 1024")
    scheme, _, flavour = parts.scheme.partition("+")
    if scheme not in ("redis", "rediss", "unix") or flavour not in ("", "cluster", "sentinel"):
        raise ValueError(f"redis URL: unknown scheme {parts.scheme!r} (redis, rediss, unix, "
                         "redis+cluster, rediss+cluster, redis+sentinel, rediss+sentinel)")
    user, _, password = netloc.rpartition("@")[0].partition(":")
    auth: dict[str, Any] = {"username": unquote(user) if user else None,
                            "password": unquote(password) if password else None}
    client: aioredis.Redis
    if flavour == "cluster":
        nodes = [ClusterNode(h, p) for h, p in _hosts(netloc, 6379)]
        client = cast(aioredis.Redis, RedisCluster(startup_nodes=nodes, ssl=scheme == "rediss",
                                                   **auth, **kwargs))
    elif flavour == "sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("redis URL: redis+sentinel://host:port,.../<service name>[/db]")
        tls: dict[str, Any] = {"ssl": True} if scheme == "rediss" else {}
        # the URL's credentials are the primary's and replicas'; Sentinels are asked without them
        sentinel = Sentinel(_hosts(netloc, 26379), sentinel_kwargs={**tls, **kwargs}, **auth, **tls, **kwargs)
        client = sentinel.master_for(path[0], redis_class=_SentinelPrimary, db=int(path[1]) if len(path) > 1 else 0)
    else:
        # put together again by hand: urlunsplit writes "unix:/path", which redis-py does not read
        plain = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{urlencode(query)}" if query else "")
        client = aioredis.Redis.from_url(plain, **kwargs)
    if flavour == "cluster":  # the nodes it finds are made with these (the seeds only look)
        made = cast(RedisCluster, client).nodes_manager.connection_kwargs
        made["connection_class"] = _packing(made["connection_class"])
    else:
        client.connection_pool.connection_class = _packing(client.connection_pool.connection_class)
    _options[client] = opts
    return client


_SCRIPT_CALLS = frozenset(("EVALSHA", "EVAL"))


class _PacksScripts:
    """A connection that has hiredis pack a script call whole. redis-py first encodes every argument in Python, which
    for the settler's one call a batch (eleven arguments an event) was about half its CPU: 19.5-27 µs an event,
    14-16.5 this way (docs/performance.md, "Settlement's arguments"). The bytes are the same: hiredis packs str,
    bytes, int and float as redis-py does, and refuses the rest (bool, None …), which then go the usual way and fail
    as before."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if args[0] in _SCRIPT_CALLS:
            with contextlib.suppress(TypeError):
                return [hiredis.pack_command(args)]
        return super().pack_command(*args)  # type: ignore[misc,no-any-return]


_PACKING: dict[type, type] = {}


def _packing(cls: type) -> type:
    """``cls`` (a redis-py connection class: TCP, TLS, Unix socket, a Sentinel's) packing script calls whole."""
    if issubclass(cls, _PacksScripts):
        return cls
    if cls not in _PACKING:
        _PACKING[cls] = type(cls.__name__, (_PacksScripts, cls), {})
    return _PACKING[cls]


class _SentinelPrimary(aioredis.Redis):
    """The primary a Sentinel names; closing it closes the connections to the Sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for s in getattr(self.connection_pool, "sentinel_manager", Sentinel([])).sentinels:
            await s.aclose()


def _split(url: str) -> tuple[SplitResult, str]:
    """``url`` split, with its netloc (user, password, hosts) taken apart first: a list of hosts with a bracketed
    IPv6 one after another is no netloc to a ``urlsplit`` with the fix for CVE-2024-11168 ("Invalid IPv6 URL": the
    image's Python 3.11.13 and Debian's 3.11.2 have it)."""
    scheme, sep, rest = url.partition("://")
    netloc = rest[:min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))] if sep else ""
    return urlsplit(scheme + sep + rest[len(netloc):]), netloc


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = netloc.rpartition("@")[2]
    out = []
    for h in hosts.split(","):
        host, _, port = h.strip().rpartition(":") if ":" in h else (h.strip(), "", "")
        if not host:
            raise ValueError(f"redis URL: no host in {h!r}")
        out.append((host.strip("[]"), int(port or default_port)))
    return out


def options(client: aioredis.Redis) -> Options:
    """The URL's settings for a client ``connect`` made (defaults for any other client)."""
    return _options.get(client, Options())


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def queue_waits(pipe: Any, client: aioredis.Redis, keys: list[str]) -> int:
    """Queue ``WAIT`` at the end of a non-transactional pipeline, once for each node the
    writes to ``keys`` went to (on a cluster, on that node's connection of the pipeline: WAIT
    counts the writes made on its own connection); how many were queued (0 when the URL asks
    for no replicas). ``check_waits`` reads their replies, the pipeline's last ones."""
    wait = options(client)
    if wait.replicas <= 0:
        return 0
    if not isinstance(client, RedisCluster):
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        return 1
    nodes = {n.name: n for n in map(client.get_node_from_key, keys)}
    for node in nodes.values():
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms, target_nodes=node)
    return len(nodes)


def check_waits(client: aioredis.Redis, replies: list[Any]) -> None:
    """Raise NotReplicated if any WAIT reply counted fewer replicas than asked (or failed)."""
    want = options(client).replicas
    for r in replies:
        if isinstance(r, Exception) or int(r) < want:
            raise NotReplicated(f"a write reached {r} replica(s) in time, {want} required")

