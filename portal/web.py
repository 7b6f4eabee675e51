"""The per-request context every page handler gets, and the wrapper that builds it.

``page(access)`` turns ``async def handler(ctx: Ctx) -> Response`` into a Starlette
endpoint. It loads the session, enforces who may see the page (anyone, logged
out, logged in, admin), and — on every POST — reads the urlencoded form and
refuses it (403) unless its CSRF token matches. This is the only place forms
are parsed, so no form can skip the check.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

import jinja2
import redis.asyncio as aioredis
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from core.billing.ops import Billing
from core.config import GatewayConfig
from portal import formatting
from portal.payments import Payments
from portal.security.csrf import FIELD, csrf_ok, csrf_token
from portal.security.ratelimit import FailureLimit
from portal.security.sessions import ANON_COOKIE, COOKIE, Session, Sessions
from portal.settings import PortalSettings
from portal.users import User, Users

MAX_FORM_BYTES = 64 * 1024
Access = Literal["any", "anon", "user", "admin"]


class PageError(Exception):
    """Ends a request with an error page: the status and a message fit for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Portal:
    """Everything handlers share, built once by ``create_app``."""

    redis: aioredis.Redis
    settings: PortalSettings
    gateway: GatewayConfig
    templates: jinja2.Environment
    billing: Billing = field(init=False)
    users: Users = field(init=False)
    sessions: Sessions = field(init=False)
    payments: Payments = field(init=False)
    login_limit: FailureLimit = field(init=False)
    ip_limit: FailureLimit = field(init=False)
    secret: bytes = b""  # set in the lifespan (from settings or Redis)

    def __post_init__(self) -> None:
        s = self.settings
        self.billing = Billing(self.redis)
        self.users = Users(self.redis)
        self.sessions = Sessions(self.redis)
        self.payments = Payments(self.redis, self.billing, s.payments)
        self.login_limit = FailureLimit(self.redis, limit=s.login_failures_per_email, window_s=s.login_window_s)
        self.ip_limit = FailureLimit(self.redis, limit=s.login_failures_per_ip, window_s=s.login_window_s)

    def url(self, path: str) -> str:
        return self.settings.prefix + path


@dataclass
class Ctx:
    request: Request
    portal: Portal
    session: Session | None
    user: User | None
    binding: str  # what this browser's CSRF token is bound to
    form: FormData = field(default_factory=FormData)
    new_anon: str = ""
    cookies: list[tuple[str, str | None]] = field(default_factory=list)  # to set (None: delete)

    @property
    def account(self) -> str:
        assert self.user is not None
        return self.user.account

    @property
    def tz(self) -> Any:
        return formatting.zone(self.user.tz if self.user else "UTC")

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.email in self.portal.settings.admins

    @property
    def csrf(self) -> str:
        return csrf_token(self.portal.secret, self.binding)

    def field(self, name: str, default: str = "") -> str:
        return str(self.form.get(name, default)).strip()

    async def render(self, template: str, status: int = 200, **values: Any) -> Response:
        flash = await self.portal.sessions.pop_flash(self.session) if self.session else ""
        values.setdefault("error", "")
        values.setdefault("nav", "")
        html = self.portal.templates.get_template(template).render(
            p=self.portal.settings.prefix, user=self.user, is_admin=self.is_admin, csrf=self.csrf,
            flash=flash, tz=self.tz, tz_name=self.user.tz if self.user else "UTC", **values)
        return self.finish(HTMLResponse(html, status_code=status))

    def redirect(self, path: str) -> Response:
        """303 to a portal path (relative, so it works behind any host and scheme)."""
        return self.finish(RedirectResponse(self.portal.url(path), status_code=303))

    def external_redirect(self, url: str) -> Response:
        return self.finish(RedirectResponse(url, status_code=303))

    async def flash(self, message: str) -> None:
        if self.session is not None:
            await self.portal.sessions.flash(self.session, message)

    def finish(self, resp: Response) -> Response:
        """Set the cookies this request decided on."""
        s = self.portal.settings
        if self.new_anon:
            self.cookies.append((ANON_COOKIE, self.new_anon))
        for name, value in self.cookies:
            if value is None:
                resp.delete_cookie(name, path=s.prefix, secure=s.secure_cookies, httponly=True, samesite="lax")
            else:
                resp.set_cookie(name, value, path=s.prefix, secure=s.secure_cookies, httponly=True,
                                samesite="lax")
        return resp


async def read_form(request: Request) -> FormData:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise PageError(415, "Forms are sent as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "That form is too large.")
    try:
        pairs: list[tuple[str, str | UploadFile]] = [
            *parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=500)]
        return FormData(pairs)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "That form could not be read.") from None


Handler = Callable[[Ctx], Awaitable[Response]]


def page(access: Access) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            portal: Portal = request.app.state.portal
            session = user = None
            if cookie := request.cookies.get(COOKIE):
                session = await portal.sessions.load(cookie)
                user = await portal.users.get(session.email) if session else None
                if user is None or (session is not None and user.account != session.account):
                    session, user = None, None
            binding = session.cookie if session else request.cookies.get(ANON_COOKIE, "")
            ctx = Ctx(request, portal, session, user, binding)
            if not binding:
                ctx.new_anon = ctx.binding = secrets.token_urlsafe(32)
            try:
                if access in ("user", "admin") and user is None:
                    if request.method == "GET":
                        return ctx.redirect(f"/login?next={quote(request.url.path)}")
                    raise PageError(401, "Your session has ended. Log in again.")
                if access == "admin" and not ctx.is_admin:
                    raise PageError(403, "This page is for administrators.")
                if access == "anon" and user is not None:
                    return ctx.redirect("/account")
                if request.method == "POST":
                    ctx.form = await read_form(request)
                    if not csrf_ok(portal.secret, binding, str(ctx.form.get(FIELD, ""))):
                        raise PageError(403, "This form has expired or did not come from this site. "
                                             "Reload the page and try again.")
                return await fn(ctx)
            except PageError as exc:
                return await ctx.render("error.html", status=exc.status, message=exc.message,
                                        title=f"Error {exc.status}")
        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        return endpoint
    return wrap


def safe_next(prefix: str, target: str) -> str:
    """A post-log-in destination inside the portal, or the account page (no open redirects)."""
    path = posixpath.normpath(target) if target.startswith("/") else ""
    if path.startswith(prefix + "/") and not path.startswith("//") and "\\" not in path:
        return path[len(prefix):]
    return "/account"
