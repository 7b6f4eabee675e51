"""The ``tokengate`` command.

    tokengate run                     the whole stack in the foreground (``make run``)
    tokengate translators -c FILE     N translator processes (the container's entry point)
    tokengate render -c FILE          print the Envoy config for a gateway config
    tokengate check -c FILE           validate a gateway config
    tokengate providers               the provider presets and what each needs (docs/providers.md)
    tokengate settle                  the settlement worker (metering events -> balances)
    tokengate portal -c FILE …        the web portal (``python -m portal --help`` for its flags)
    tokengate keys create|list|revoke API keys
    tokengate accounts …              accounts, top-ups, balances, ledgers, usage
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
from pathlib import Path

from redis.exceptions import RedisClusterException, RedisError

from core import keys, presets, redisconn
from core.billing.ops import Billing
from core.config import ConfigError, load
from tokengate import accounts_cli
from tokengate.procs import StartError

DEMO_CONFIG = Path("examples/demo.yaml")
PROVIDERS_CONFIG = Path("examples/providers.yaml")
DEMO_PORT = 9100
SETTLER_METRICS = "127.0.0.1:9465"  # `make run`: the settler's /metrics (the translators' are on 9464)
DEMO_CREDIT = 5_000_000_000  # $5 in nano-USD, credited once


async def _settle(redis_url: str | None, consumer: str | None = None, metrics_listen: str | None = None) -> int:
    """The settlement worker in the foreground; SIGTERM finishes the batch in hand and stops."""
    import structlog

    from core import logs
    from settler import metrics
    from settler.service import Settler

    logs.configure(os.environ.get("TOKENGATE_LOG_LEVEL", "info"))
    if metrics_listen:
        try:
            metrics.serve(metrics_listen)
        except OSError as exc:  # a taken port must not stop settlement
            structlog.get_logger("tokengate.settler").error("metrics_listen_failed", address=metrics_listen,
                                                            error=str(exc))
    r = accounts_cli.redis_client(redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Settler(r, consumer=consumer).run(stop)
    finally:
        await r.aclose()
    return 0


def _admin_api(args: argparse.Namespace) -> int:
    import uvicorn

    from tokengate import admin_api

    token = os.environ.get("TOKENGATE_ADMIN_TOKEN", "")
    if not token:
        print("tokengate: set TOKENGATE_ADMIN_TOKEN to the admin API's token", file=sys.stderr)
        return 2
    app = admin_api.build(accounts_cli.redis_client(args.redis_url), token)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _translators(args: argparse.Namespace) -> int:
    """N translator processes in the foreground (the container entry point): a worker that dies is
    started again on its socket while the others go on serving; SIGTERM stops them all."""
    from core import logs
    from tokengate.devstack import fresh_metrics_dir, start_translators
    from tokengate.procs import Supervisor

    logs.configure(os.environ.get("TOKENGATE_LOG_LEVEL", "info"))  # the supervisor's lines, as JSON
    cfg = load(args.config)
    workers = args.workers or cfg.translator.workers or (os.cpu_count() or 1)
    metrics_dir = Path(args.metrics_dir)
    fresh_metrics_dir(metrics_dir)
    sup = Supervisor(metrics_dir=metrics_dir)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        start_translators(sup, cfg, args.config, workers, redis_url=args.redis_url, grace=args.grace,
                          health_listen=args.health_listen, metrics_dir=metrics_dir)
        sup.watch(until=lambda: stopping)
    finally:
        sup.stop_all(timeout=args.grace + 5)
    return 0


def _render(args: argparse.Namespace) -> int:
    from tokengate.render import TEMPLATE, render, translator_addresses

    cfg = load(args.config)
    workers = args.workers or cfg.translator.workers or (os.cpu_count() or 1)
    text = render(cfg, source=str(args.config), addresses=translator_addresses(cfg, workers),
                  template=Path(args.template) if args.template else TEMPLATE)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from tokengate.devstack import Stack, provider_config

    workdir = Path(args.workdir)
    demo = False
    config = Path(args.config) if args.config else None
    if config is None:
        generated = workdir / "gateway.yaml"
        if provider_config(PROVIDERS_CONFIG, generated):
            config = generated
        else:
            config, demo = DEMO_CONFIG, True
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(config, workdir=workdir, workers=args.workers,
                  redis_url=os.environ.get("REDIS_URL") or None, redis_port=args.redis_port,
                  demo_port=DEMO_PORT if demo else None,
                  admin_port=args.admin_port, admin_token=_admin_token(workdir / "admin-token"),
                  portal=args.portal_port != 0, portal_port=args.portal_port or None,
                  portal_args=("--demo-payments",) if demo else (),
                  settler_metrics=SETTLER_METRICS)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"starting tokengate with {config} ({stack.workers} translator processes)…", flush=True)
    stack.start()
    key = _demo_key(stack.effective_redis_url, workdir / "demo-key")
    _banner(stack, key, demo)
    try:
        stack.supervisor.watch(until=lambda: stopping)  # a process that dies is started again
    finally:
        print("\nstopping…", flush=True)
        stack.stop()
        print("stopped: nothing is left running.")
    return 0


def _admin_token(path: Path) -> str:
    """$TOKENGATE_ADMIN_TOKEN, else one made once and kept (0600) in var/."""
    if token := os.environ.get("TOKENGATE_ADMIN_TOKEN"):
        return token
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _demo_key(redis_url: str, path: Path) -> str:
    """The demo account's key: made once, kept in var/ so every `make run` shows the same one."""
    from core import store

    saved = path.read_text().strip() if path.exists() else ""

    async def check_or_create() -> str:
        r = redisconn.connect(redis_url)
        try:
            await Billing(r).credit("demo", DEMO_CREDIT, kind="topup", ref="demo-welcome",
                                    reason="make run demo credit")  # once: the ref makes it idempotent
            account = store.account_of(saved)
            if account and await r.exists(store.key_record(account, store.digest(saved))):
                return saved
            return await keys.create_key(r, "demo", name="make-run demo")
        finally:
            await r.aclose()

    key = asyncio.run(check_or_create())
    if key != saved:
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key


def _banner(stack: object, key: str, demo: bool) -> None:
    from tokengate.devstack import Stack

    assert isinstance(stack, Stack)
    s = stack.cfg.server
    model = "demo-echo" if demo else stack.cfg.models[0].name
    http = f"http://localhost:{s.http_port}"
    lines = [
        "",
        "tokengate is up.",
        f"  OpenAI base URL     {http}/v1",
        f"  Anthropic base URL  {http}",
        f"  Gemini base URL     {http}",
    ]
    if s.https_port:
        lines.append(f"  TLS                 https://localhost:{s.https_port} (self-signed: {s.tls_cert})")
    lines += [
        f"  Envoy admin         http://127.0.0.1:{s.admin_port} (loopback only)",
        *([f"  Metrics             http://{stack.cfg.translator.metrics_listen}/metrics (translators and Envoy), "
           f"http://{SETTLER_METRICS}/metrics (settler)"] if stack.cfg.translator.metrics_listen else []),
        f"  Admin API           http://127.0.0.1:{stack.admin_port}/admin/accounts "
        f"(token in {stack.workdir / 'admin-token'} unless TOKENGATE_ADMIN_TOKEN is set)",
    ]
    if stack.portal:
        admins = os.environ.get("TOKENGATE_PORTAL_ADMINS", "")
        lines.append(f"  Portal              {http}/portal   "
                     + (f"(admins: {admins})" if admins else
                        "(set TOKENGATE_PORTAL_ADMINS=you@example.com for the admin pages)"))
    lines += [
        f"  API key             {key}   (account 'demo')",
        f"  models              {', '.join(m.name for m in stack.cfg.models)}",
        "",
        "Try it:",
        f"  curl {http}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
        "    -H 'content-type: application/json' \\",
        f"    -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'",
        "",
        "See the balance drop:  .venv/bin/tokengate accounts show --account demo",
        f"Logs: {stack.workdir / 'logs'}   Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokengate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the whole stack in the foreground")
    run.add_argument("-c", "--config", help="gateway config (default: real providers if keys are set, else the demo)")
    run.add_argument("--workdir", default="var", help="data, sockets, logs (default: var)")
    run.add_argument("--workers", type=int, default=0, help="translator processes (default: one per CPU)")
    run.add_argument("--admin-port", type=int, default=8090, help="the admin API, on 127.0.0.1")
    run.add_argument("--portal-port", type=int, default=None,
                     help="the portal, on 127.0.0.1 behind Envoy's /portal (default: the port of "
                          "server.portal_upstream if it is loopback, else 8091; 0: no portal)")
    run.add_argument("--redis-port", type=int, default=6390, help="the local Redis's port when REDIS_URL is unset")
    ren = sub.add_parser("render", help="print the Envoy config")
    ren.add_argument("-c", "--config", required=True)
    ren.add_argument("-o", "--out")
    ren.add_argument("--workers", type=int, default=0)
    ren.add_argument("--template", help="a copy of tokengate/templates/envoy.yaml.j2 to use instead")
    tr = sub.add_parser("translators", help="run N translator processes (container entry point)")
    tr.add_argument("-c", "--config", required=True)
    tr.add_argument("--workers", type=int, default=0, help="default: translator.workers, else one per CPU")
    tr.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    tr.add_argument("--health-listen", help="gRPC health on a TCP address for the kubelet, e.g. 0.0.0.0:9090")
    tr.add_argument("--grace", type=float, default=30.0)
    tr.add_argument("--metrics-dir", default="/tmp/tokengate-metrics",  # noqa: S108 - a private emptyDir in the pod
                    help="where the workers share Prometheus samples (wiped at start)")
    chk = sub.add_parser("check", help="validate a gateway config")
    chk.add_argument("-c", "--config", required=True)
    sub.add_parser("providers", help="list the provider presets and what each needs (docs/providers.md)")
    accounts_cli.add_parsers(sub)
    st = sub.add_parser("settle", help="run the settlement worker (applies metering events to balances)")
    st.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    st.add_argument("--consumer", help="its name in the consumer group; keep it across restarts, so a restarted "
                    "settler settles at once what it had read (default: host name and process id)")
    st.add_argument("--metrics-listen", help="serve Prometheus /metrics on host:port (backlog, dead letters)")
    sub.add_parser("portal", add_help=False, help="serve the web portal (python -m portal --help)")
    ad = sub.add_parser("admin-api", help="serve the admin HTTP JSON API (token in TOKENGATE_ADMIN_TOKEN)")
    ad.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    ad.add_argument("--port", type=int, default=8090)
    ad.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["portal"]:  # its own flags: python -m portal --help
        from portal.__main__ import main as portal_main

        return asyncio.run(portal_main(argv[1:]))
    args = parser().parse_args(argv)
    try:
        if args.cmd in ("keys", "accounts"):
            return asyncio.run(accounts_cli.run(args))
        if args.cmd == "settle":
            return asyncio.run(_settle(args.redis_url, args.consumer, args.metrics_listen))
        if args.cmd == "admin-api":
            return _admin_api(args)
        if args.cmd == "render":
            return _render(args)
        if args.cmd == "translators":
            return _translators(args)
        if args.cmd == "providers":
            print(presets.listing())
            return 0
        if args.cmd == "check":
            cfg = load(args.config)
            print(f"{args.config}: OK ({len(cfg.providers)} providers, {len(cfg.deployments)} "
                  f"deployments, {len(cfg.models)} models)")
            return 0
        return _run(args)
    except ConfigError as exc:
        print(f"tokengate: {exc}", file=sys.stderr)
        return 2
    except redisconn.NotReplicated as exc:  # a top-up that a failover could still lose
        print(f"tokengate: not confirmed by a Redis replica in time ({exc}); it may have been applied: "
              "repeating it with the same ref (--ref) applies it once", file=sys.stderr)
        return 1
    except (RedisError, RedisClusterException) as exc:
        print(f"tokengate: cannot reach Redis ({exc})", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"tokengate: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"tokengate: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
