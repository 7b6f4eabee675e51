"""``create_app``: the portal's routes under ``/portal``, its security headers and lifespan.

The app mounts everything under the prefix itself, so the same paths work when
Envoy forwards ``/portal/…`` unchanged and when the portal is reached directly.
Redirects are relative paths: they keep whatever host and scheme the browser used.

    GET       /portal/                        -> account or log-in
    GET|POST  /portal/signup  /portal/login    POST /portal/logout
    GET       /portal/account                  balance, ledger, top-up, redeem, time zone
    POST      /portal/account/topup  /portal/account/redeem  /portal/account/settings
    GET       /portal/account/orders/{id}      a top-up order (waits for the payment callback)
    GET|POST  /portal/keys                     POST /portal/keys/{id}/revoke
    GET       /portal/usage  /portal/usage.csv ?from=YYYY-MM-DD&to=…&model=…
    GET       /portal/models                   ?model=… for its snippets
    GET       /portal/admin                    accounts; /portal/admin/accounts/{a} (+ POST …/adjust)
    GET|POST  /portal/admin/codes              GET /portal/admin/health
    POST      /portal/webhooks/stripe          the payment callback (signed, no session)
    GET       /portal/healthz                  200 when Redis answers
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import jinja2
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import redisconn
from core.config import load
from core.store import text
from portal import formatting
from portal.settings import PaymentSettings, PortalSettings
from portal.views import account, admin, auth, keys, models, usage
from portal.web import Portal

HERE = Path(__file__).parent
SECRET_KEY = "tg:portal:secret"  # noqa: S105 - a Redis key name; the CSRF HMAC key shared by replicas, when none is configured
MAX_WEBHOOK_BYTES = 256 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class SecurityHeaders:
    """Headers on every response: no framing, no sniffing, a strict CSP; pages are never cached."""

    def __init__(self, app: ASGIApp, static_prefix: str) -> None:
        self.app, self.static_prefix = app, static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"),
                            (b"cache-control", b"public, max-age=3600" if static else b"no-store")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    @jinja2.pass_context
    def when(context: Any, ts: float) -> str:
        return formatting.local_time(ts, context["tz"]) if ts else "—"

    env.filters.update(usd=formatting.usd, tokens=formatting.tokens, when=when, iso=formatting.iso_utc)
    return env


async def webhook(request: Request) -> Response:
    stripe = request.app.state.portal.payments.stripe
    if stripe is None:
        return JSONResponse({"error": "card payments are not configured"}, status_code=404)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": "too large"}, status_code=413)
    result = await stripe.webhook(body, request.headers.get("stripe-signature", ""))
    return JSONResponse({"message": result.message}, status_code=result.status)


async def healthz(request: Request) -> Response:
    try:
        await request.app.state.portal.redis.ping()
    except redisconn.ERRORS:
        return PlainTextResponse("redis unreachable", status_code=503)
    return PlainTextResponse("ok")


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/", auth.home), Route("/signup", auth.signup, methods=both),
        Route("/login", auth.login, methods=both), Route("/logout", auth.logout, methods=["POST"]),
        Route("/account", account.account), Route("/account/topup", account.topup, methods=["POST"]),
        Route("/account/redeem", account.redeem, methods=["POST"]),
        Route("/account/settings", account.settings, methods=["POST"]),
        Route("/account/orders/{order_id}", account.order),
        Route("/keys", keys.keys_page), Route("/keys", keys.create, methods=["POST"]),
        Route("/keys/{key_id}/revoke", keys.revoke, methods=["POST"]),
        Route("/usage", usage.usage), Route("/usage.csv", usage.usage_csv),
        Route("/models", models.models),
        Route("/admin", admin.accounts), Route("/admin/accounts/{account}", admin.account_detail),
        Route("/admin/accounts/{account}/adjust", admin.adjust, methods=["POST"]),
        Route("/admin/codes", admin.codes, methods=both), Route("/admin/health", admin.health),
        Route("/webhooks/stripe", webhook, methods=["POST"]), Route("/healthz", healthz),
    ]


def create_app(
    redis: aioredis.Redis,
    *,
    gateway_config_path: str | Path,
    base_url: str = "http://localhost:8080",
    envoy_admin_url: str | None = None,
    payments: PaymentSettings | None = None,
    secure_cookies: bool = True,
    admins: Iterable[str] = (),
    secret: str = "",
) -> Starlette:
    """The portal app on ``redis`` (the gateway's); ``envoy_admin_url`` defaults to the config's admin port."""
    gateway = load(gateway_config_path)
    settings = PortalSettings(
        base_url=base_url.rstrip("/"),
        envoy_admin_url=envoy_admin_url or f"http://127.0.0.1:{gateway.server.admin_port}",
        payments=payments or PaymentSettings(), admins=frozenset(a.strip().lower() for a in admins if a.strip()),
        secure_cookies=secure_cookies, secret=secret)
    portal = Portal(redis, settings, gateway, templates())
    prefix = settings.prefix

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.secret:
            portal.secret = settings.secret.encode()
        else:
            await redis.set(SECRET_KEY, secrets.token_urlsafe(32), nx=True)
            portal.secret = text(await redis.get(SECRET_KEY)).encode()
        yield

    app = Starlette(
        routes=[Mount(prefix, routes=[*routes(), Mount("/static", StaticFiles(directory=HERE / "static"),
                                                       name="static")]),
                Route("/", lambda _: RedirectResponse(prefix + "/", status_code=307))],
        lifespan=lifespan)
    app.state.portal = portal
    app.add_middleware(SecurityHeaders, static_prefix=prefix + "/static/")
    return app
