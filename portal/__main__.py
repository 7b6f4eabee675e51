"""``python -m portal``: serve the portal (uvicorn) until SIGTERM or Ctrl-C.

    python -m portal -c gateway.yaml [--port 8091] [--redis-url URL] [--base-url URL]
                     [--admin EMAIL]… [--demo-payments] [--insecure-cookies]

Environment: ``REDIS_URL``; ``TOKENGATE_PORTAL_ADMINS`` (comma-separated e-mails,
added to ``--admin``); ``TOKENGATE_STRIPE_WEBHOOK_SECRET`` and
``TOKENGATE_STRIPE_CHECKOUT_URL`` (card payments); ``TOKENGATE_PORTAL_SECRET``
(the CSRF key; default: one made once and kept in Redis).

Shutdown order on SIGTERM: uvicorn stops accepting, finishes the requests in
hand (``--grace`` seconds at most), runs the app's shutdown, then Redis closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import uvicorn

from core import redisconn
from core.config import ConfigError, load
from portal.app import create_app
from portal.settings import PaymentSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m portal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="the gateway config (models, prices, Envoy admin port)")
    p.add_argument("--host", default="127.0.0.1", help="default: loopback (Envoy forwards /portal)")
    p.add_argument("--port", type=int, default=8091)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6390/0")
    p.add_argument("--base-url", help="the gateway as SDKs reach it (default: http://localhost:<http_port>)")
    p.add_argument("--envoy-admin-url", help="default: http://127.0.0.1:<server.admin_port>")
    p.add_argument("--admin", action="append", default=[], metavar="EMAIL",
                   help="an e-mail with the admin pages (repeatable; also TOKENGATE_PORTAL_ADMINS)")
    p.add_argument("--demo-payments", action="store_true", help="offer the demo provider (completes at once)")
    p.add_argument("--insecure-cookies", action="store_true",
                   help="cookies without Secure, for plain HTTP on a host other than localhost")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                   help="proxies whose X-Forwarded-For is believed (Envoy); the client address limits log-ins")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish requests on SIGTERM")
    p.add_argument("--log-level", default="warning")
    return p


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"portal: {exc}", file=sys.stderr)
        return 2
    admins = [*args.admin, *os.environ.get("TOKENGATE_PORTAL_ADMINS", "").split(",")]
    payments = PaymentSettings(demo=args.demo_payments,
                               stripe_webhook_secret=os.environ.get("TOKENGATE_STRIPE_WEBHOOK_SECRET", ""),
                               stripe_checkout_url=os.environ.get("TOKENGATE_STRIPE_CHECKOUT_URL", ""))
    redis = redisconn.connect(args.redis_url)
    try:
        app = create_app(redis, gateway_config_path=args.config,
                         base_url=args.base_url or f"http://localhost:{cfg.server.http_port}",
                         envoy_admin_url=args.envoy_admin_url, payments=payments,
                         secure_cookies=not args.insecure_cookies, admins=admins,
                         secret=os.environ.get("TOKENGATE_PORTAL_SECRET", ""))
        server = uvicorn.Server(uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, lifespan="on",
            proxy_headers=True, forwarded_allow_ips=args.forwarded_allow_ips,
            timeout_graceful_shutdown=int(args.grace)))
        # uvicorn re-raises the signal it caught once it has stopped; these handlers make that a no-op,
        # so Redis is closed below and the exit code is 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        await server.serve()
        return 0 if server.started else 1
    finally:
        await redis.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
