"""The translator process: ``python -m translator --config FILE --listen ADDR``.

Shutdown order on SIGTERM/SIGINT (fixed and tested): report NOT_SERVING on the
gRPC health service so Envoy stops sending new streams, give open streams up to
``--grace`` seconds (``server.stop``), give back the leases' unused balance, write
the buffered metering events (for at most 5 s: what Redis did not take stays in the
worker's metering spool, replayed by its next start), close Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from core import logs, redisconn
from core.config import ConfigError, load
from translator import metrics
from translator.admission import REDIS_TIMEOUT_S
from translator.extproc.servicer import Servicer
from translator.inflight import Inflight
from translator.metering import Meter
from translator.spool import Spool, default_root, worker_dir
from translator.state import Gateway
from translator.tracing import Tracing

# The longest a starting translator waits for its providers' flavours to fetch what they need (a first
# Google access token) before it reports itself healthy.
STARTUP_WAIT_S = 5.0

log = structlog.get_logger("tokengate.translator")
MAX_MESSAGE = 64 * 1024 * 1024  # request bodies up to the listener's limit, with room


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="translator", description=__doc__)
    p.add_argument("--config", required=True, help="gateway config (YAML)")
    p.add_argument("--listen", required=True, help="unix:/path.sock or host:port")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="overrides the config")
    p.add_argument("--metrics-listen", help="serve Prometheus /metrics (all workers) on host:port")
    p.add_argument("--health-listen", help="also serve gRPC health alone on this address (kubelet probe)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds open streams get at shutdown")
    p.add_argument("--log-level", default=os.environ.get("TOKENGATE_LOG_LEVEL", "info"))
    return p.parse_args(argv)


def ext_proc_server(servicer: pb_grpc.ExternalProcessorServicer,
                    listen: str) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A gRPC server for ``servicer`` and the health service on ``listen`` (not started yet).

    The benchmark's no-op floor (bench/noop.py) uses it too, so both answer Envoy alike.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 0),
    ])
    pb_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if listen.startswith("unix:"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(listen.removeprefix("unix:"))
    server.add_insecure_port(listen)
    return server, health_servicer


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"translator: {exc}", file=sys.stderr)
        return 2
    base = Path.cwd()  # relative paths in the config are relative to where we run
    redis = redisconn.connect(args.redis_url or cfg.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                              socket_connect_timeout=2.0, health_check_interval=30)
    spool_cfg = cfg.translator.spool
    spool = Spool(worker_dir(spool_cfg.dir or default_root(args.listen), args.listen),
                  max_bytes=spool_cfg.max_mb << 20)
    try:
        spool.open()  # adopts what an earlier process of this worker left: the writer replays it first
    except OSError as exc:
        print(f"translator: metering spool {spool.dir}: {exc}", file=sys.stderr)
        await redis.aclose()
        return 2
    meter = Meter(redis, spool=spool, fsync_s=spool_cfg.fsync_s)
    meter.start()
    inflight = Inflight(spool.dir / "inflight")
    record_unfinished(inflight, spool, meter)
    gw = Gateway(cfg, redis, meter, base, inflight)
    if cfg.tracing.enabled:
        gw.tracing = Tracing(cfg.tracing)
    server, health_servicer = ext_proc_server(Servicer(gw), args.listen)
    servers = [server]
    if args.health_listen:  # health only: the ext_proc service stays on the private socket
        probe = grpc.aio.server(options=[("grpc.so_reuseport", 1)])  # every worker answers on one port
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe)
        probe.add_insecure_port(args.health_listen)
        servers.append(probe)
    for srv in servers:
        await srv.start()
    if args.metrics_listen:
        try:
            # Envoy's admin is on loopback in the same pod: its stats join ours on the one endpoint
            metrics.serve(args.metrics_listen, f"http://127.0.0.1:{cfg.server.admin_port}/stats/prometheus")
        except OSError as exc:  # a taken port must not take the data path down with it
            log.error("metrics_listen_failed", address=args.metrics_listen, error=str(exc))
    await asyncio.to_thread(flavours_ready, gw, time.monotonic() + STARTUP_WAIT_S)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("translator_started", listen=args.listen, pid=os.getpid())

    leases = asyncio.create_task(_give_back_idle_leases(gw))
    tally = asyncio.create_task(metrics.flush_every())
    await stop.wait()
    log.info("translator_stopping", grace=args.grace)
    await health_servicer.enter_graceful_shutdown()  # NOT_SERVING: Envoy stops opening streams
    await asyncio.gather(*(srv.stop(args.grace) for srv in servers))
    gw.run_later()  # the last requests' leases, log lines and metrics
    leases.cancel()
    tally.cancel()
    metrics.TALLY.flush()  # the last requests' samples
    await gw.admitter.give_back(idle_only=False)
    await meter.close()
    if gw.tracing is not None:
        gw.tracing.shutdown()  # the spans still buffered
    inflight.close()
    await redis.aclose()
    log.info("translator_stopped")
    return 0


def flavours_ready(gw: Gateway, deadline: float) -> None:
    """Give each provider's flavour until ``deadline`` (monotonic) to fetch what it needs at start."""
    for f in {id(t.flavour): t.flavour for t in gw.targets.values()}.values():
        f.ready(max(0.0, deadline - time.monotonic()))


def record_unfinished(inflight: Inflight, spool: Spool, meter: Meter) -> int:
    """Record the requests an earlier process of this worker died serving (its in-flight file),
    unless it had spooled their own event before it died; how many. Before serving."""
    unfinished = inflight.recover()
    if not unfinished:
        return 0
    spooled = spool.backlog_event_ids()
    recorded = 0
    for ev in unfinished:
        if ev.event_id not in spooled:
            meter.record(ev)
            recorded += 1
    return recorded


async def _give_back_idle_leases(gw: Gateway, every_s: float = 1.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await gw.admitter.give_back()
        except Exception:  # keep giving back; a lease not returned is released at its TTL anyway
            log.exception("lease_give_back_failed")


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await serve(args, stop)


def run() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        sys.exit(asyncio.run(main(sys.argv[1:])))
    sys.exit(uvloop.run(main(sys.argv[1:])))


if __name__ == "__main__":
    run()
