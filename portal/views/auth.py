"""Sign-up, log-in (failed attempts limited per e-mail and per client address), log-out."""

from __future__ import annotations

from starlette.responses import Response

from portal import formatting
from portal.security.ratelimit import ident_key
from portal.security.sessions import COOKIE
from portal.users import SignupError, normalise_email
from portal.web import Ctx, page, safe_next


@page("any")
async def home(ctx: Ctx) -> Response:
    return ctx.redirect("/account" if ctx.user else "/login")


@page("anon")
async def signup(ctx: Ctx) -> Response:
    if ctx.request.method == "GET":
        return await ctx.render("signup.html", nav="signup", title="Sign up", email="")
    email, password = ctx.field("email"), str(ctx.form.get("password", ""))
    tz = ctx.field("tz")
    try:
        if password != str(ctx.form.get("password2", "")):
            raise SignupError("The two passwords differ.")
        user = await ctx.portal.users.sign_up(email, password, tz if tz in formatting.valid_zones() else "UTC")
    except SignupError as exc:
        return await ctx.render("signup.html", status=400, nav="signup", title="Sign up", email=email, error=str(exc))
    return await _start_session(ctx, user.account, user.email, "/account", "Welcome! Your account is ready.")


@page("anon")
async def login(ctx: Ctx) -> Response:
    next_path = ctx.request.query_params.get("next", "")
    if ctx.request.method == "GET":
        return await ctx.render("login.html", nav="login", title="Log in", email="", next=next_path)
    portal, email = ctx.portal, normalise_email(ctx.field("email"))
    by_email = ident_key("login", email)
    by_ip = ident_key("login-ip", ctx.request.client.host if ctx.request.client else "?")
    wait = max(await portal.login_limit.retry_after(by_email), await portal.ip_limit.retry_after(by_ip))
    if wait:
        minutes = max(1, -(-wait // 60))
        return await ctx.render("login.html", status=429, nav="login", title="Log in", email=email, next=next_path,
                                error=f"Too many failed log-ins. Try again in {minutes} minutes.")
    user = await portal.users.authenticate(email, str(ctx.form.get("password", "")))
    if user is None:
        await portal.login_limit.fail(by_email)
        await portal.ip_limit.fail(by_ip)
        return await ctx.render("login.html", status=400, nav="login", title="Log in", email=email, next=next_path,
                                error="Wrong e-mail or password.")
    await portal.login_limit.clear(by_email)
    return await _start_session(ctx, user.account, user.email, safe_next(portal.settings.prefix, next_path), "")


async def _start_session(ctx: Ctx, account: str, email: str, path: str, flash: str) -> Response:
    """A new session (never the one the browser had: no fixation) and its cookie."""
    if ctx.session is not None:
        await ctx.portal.sessions.destroy(ctx.session.cookie)
    ctx.session = await ctx.portal.sessions.create(account, email)
    if flash:
        await ctx.flash(flash)
    ctx.cookies.append((COOKIE, ctx.session.cookie))
    return ctx.redirect(path)


@page("user")
async def logout(ctx: Ctx) -> Response:
    assert ctx.session is not None
    await ctx.portal.sessions.destroy(ctx.session.cookie)
    ctx.cookies.append((COOKIE, None))
    return ctx.redirect("/login")
