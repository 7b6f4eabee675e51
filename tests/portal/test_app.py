"""The portal over HTTP (no browser): cookies, CSRF on every form, log-in limits, redirects, shutdown.

``python -m portal`` runs as a subprocess against a private Redis and the demo
gateway config, with secure cookies on (as deployed). http.cookiejar would not
send Secure cookies over plain HTTP, so ``Browser`` keeps cookies itself.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from portal.app import routes
from tests.portal.conftest import wait_port
from tokengate.procs import free_port

CONFIG = Path(__file__).parents[2] / "examples" / "demo.yaml"
ADMIN = "root@example.test"
PASSWORD = "a long enough password"


def start(redis_url: str, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "portal", "-c", str(CONFIG), "--port", str(port),
                                 "--redis-url", redis_url, "--admin", ADMIN, "--demo-payments", *extra],
                                stdout=out, stderr=subprocess.STDOUT)
    wait_port(proc, port, f"the portal (log: {log})")
    return proc, f"http://127.0.0.1:{port}/portal"


@pytest.fixture(scope="module")
def base(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start(redis_url, tmp_path_factory.mktemp("portal-http") / "portal.log")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


class Browser:
    """Just enough of a browser: cookies (Secure ones too), forms with their CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def _remember(self, r: httpx.Response) -> httpx.Response:
        for header in r.headers.get_list("set-cookie"):
            morsel = next(iter(SimpleCookie(header).values()))
            if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                self.cookies.pop(morsel.key, None)
            else:
                self.cookies[morsel.key] = morsel.value
        return r

    def _cookie_header(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def get(self, path: str) -> httpx.Response:
        return self._remember(httpx.get(self.base + path, headers=self._cookie_header(), timeout=10))

    def csrf(self, path: str = "/login") -> str:
        """The CSRF token from a page's form."""
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, f"no form on {path}"
        return match.group(1)

    def post(self, path: str, data: dict[str, str], *, token: str | None = None,
             page: str | None = None) -> httpx.Response:
        """POST a form; its token is read from ``page`` (default: the path itself) unless given."""
        fields = {**data, "csrf": token if token is not None else self.csrf(page or path)}
        return self._remember(httpx.post(self.base + path, data=fields, headers=self._cookie_header(), timeout=10))

    def sign_up(self, email: str) -> httpx.Response:
        return self.post("/signup", {"email": email, "password": PASSWORD, "password2": PASSWORD, "tz": "UTC"})


def user(who: str = "u") -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}@example.test"


def test_session_cookie_is_secure_http_only_same_site(base: str) -> None:
    """The session cookie: Secure, HttpOnly, SameSite=Lax, scoped to /portal, no lifetime of its own."""
    b = Browser(base)
    r = b.sign_up(user())
    assert (303, "/portal/account") == (r.status_code, r.headers["location"])
    [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith("tg_session=")]
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attrs and "max-age" not in attrs
    assert "samesite=lax" in cookie.lower() and "path=/portal" in cookie.lower()


def test_security_headers_on_every_page(base: str) -> None:
    """A strict CSP (no inline script or style, no third party), no framing, pages never cached."""
    r = httpx.get(f"{base}/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert ("DENY", "nosniff", "no-store") == (r.headers["x-frame-options"], r.headers["x-content-type-options"],
                                               r.headers["cache-control"])
    assert "http" not in re.sub(r"https?://www\.w3\.org", "", r.text).replace("http-equiv", ""), "no external URLs"
    css = httpx.get(f"{base}/static/portal.css")
    assert 200 == css.status_code and "max-age" in css.headers["cache-control"]


POST_ROUTES = sorted({r.path for r in routes() if "POST" in (r.methods or set())} - {"/webhooks/stripe"})


def test_every_post_route_is_a_csrf_checked_form() -> None:
    """The route table's POSTs are exactly the forms this suite checks (a new one must be added here)."""
    assert ["/account/redeem", "/account/settings", "/account/topup", "/admin/accounts/{account}/adjust",
            "/admin/codes", "/keys", "/keys/{key_id}/revoke", "/login", "/logout", "/signup"] == POST_ROUTES


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("token", ["", "forged"], ids=["missing", "forged"])
def test_a_form_without_its_csrf_token_changes_nothing(base: str, path: str, token: str) -> None:
    """Every form posted with a missing or forged token is refused (403) and changes nothing:
    log-in and sign-up from a logged-out browser (with valid credentials), the rest as an admin."""
    b = Browser(base)
    if b.sign_up(ADMIN).status_code != 303:
        b.post("/login", {"email": ADMIN, "password": PASSWORD})
    if path in ("/login", "/signup"):
        b = Browser(base)
        b.get("/login")  # the anonymous cookie the token would be bound to
    r = b.post(path.replace("{account}", "nobody").replace("{key_id}", "0" * 16),
               {"email": ADMIN, "password": PASSWORD, "password2": PASSWORD, "name": "k", "usd": "5",
                "reason": "x", "amount": "10", "provider": "demo", "nonce": uuid.uuid4().hex, "tz": "UTC"},
               token=token)
    assert 403 == r.status_code, path
    assert "did not come from this site" in r.text and "tg_session" not in r.headers.get("set-cookie", "")


def test_failed_log_ins_are_limited_per_email(base: str) -> None:
    """Five wrong passwords lock that e-mail for the window, even for the right password; others are unaffected."""
    victim, bystander = user("victim"), user("bystander")
    for email in (victim, bystander):
        Browser(base).sign_up(email)
    b = Browser(base)
    statuses = [b.post("/login", {"email": victim, "password": "wrong password"}).status_code for _ in range(5)]
    assert [400] * 5 == statuses
    locked = b.post("/login", {"email": victim, "password": PASSWORD})
    assert 429 == locked.status_code and "Too many failed log-ins" in locked.text
    assert 303 == Browser(base).post("/login", {"email": bystander, "password": PASSWORD}).status_code


def test_unknown_email_and_wrong_password_look_the_same(base: str) -> None:
    """Same status and message, so log-in cannot be used to find accounts."""
    email = user()
    Browser(base).sign_up(email)
    wrong = Browser(base).post("/login", {"email": email, "password": "not the password"})
    unknown = Browser(base).post("/login", {"email": user("nobody"), "password": "not the password"})
    assert (400, 400) == (wrong.status_code, unknown.status_code)
    assert "Wrong e-mail or password." in wrong.text and "Wrong e-mail or password." in unknown.text


def test_log_in_starts_a_new_session_and_log_out_ends_it(base: str) -> None:
    """No session fixation; after log-out the old cookie is worthless on the server too."""
    email, b = user(), Browser(base)
    b.sign_up(email)
    signup_session = b.cookies["tg_session"]
    b.post("/logout", {}, page="/account")
    assert "tg_session" not in b.cookies
    assert 303 == b.post("/login", {"email": email, "password": PASSWORD}).status_code
    login_session = b.cookies["tg_session"]
    assert login_session != signup_session
    b.post("/logout", {}, page="/account")
    stale = Browser(base)
    stale.cookies["tg_session"] = login_session
    r = stale.get("/account")
    assert (303, "/portal/login?next=/portal/account") == (r.status_code, r.headers["location"])


@pytest.mark.parametrize(("target", "lands"), [
    ("/portal/usage", "/portal/usage"), ("https://evil.example/", "/portal/account"),
    ("//evil.example/portal/", "/portal/account"), ("/portal/../x", "/portal/account"),
    ("/portal/keys/../usage", "/portal/usage"),
], ids=["inside", "absolute-elsewhere", "scheme-relative", "dot-dot-out", "dot-dot-in"])
def test_after_log_in_the_redirect_stays_inside_the_portal(base: str, target: str, lands: str) -> None:
    """``?next=`` can only name a portal page."""
    email, b = user(), Browser(base)
    b.sign_up(email)
    b.post("/logout", {}, page="/account")
    r = b.post(f"/login?next={httpx.QueryParams({'x': target})['x']}", {"email": email, "password": PASSWORD},
               page="/login")
    assert lands == r.headers["location"]


@pytest.mark.parametrize(("form", "message"), [
    ({"email": "not-an-email", "password": PASSWORD, "password2": PASSWORD}, "valid e-mail"),
    ({"email": "x@example.test", "password": "short", "password2": "short"}, "at least 10"),
    ({"email": "x@example.test", "password": PASSWORD, "password2": PASSWORD + "!"}, "differ"),
], ids=["email", "short-password", "mismatch"])
def test_sign_up_refuses_bad_input(base: str, form: dict[str, str], message: str) -> None:
    r = Browser(base).post("/signup", form)
    assert 400 == r.status_code and message in r.text


def test_an_email_signs_up_once(base: str) -> None:
    """A second sign-up with the same address (any case) is refused."""
    email = user()
    assert 303 == Browser(base).sign_up(email).status_code
    again = Browser(base).sign_up(email.upper())
    assert 400 == again.status_code and "already has an account" in again.text


@pytest.mark.parametrize(("amount", "custom", "message"), [
    ("custom", "12.345", "whole cents"), ("custom", "0.50", "between $1 and $10,000"),
    ("custom", "twelve", "in dollars"), ("7", "", "Choose an amount"),
], ids=["fraction-of-cent", "too-small", "not-a-number", "not-a-preset"])
def test_top_up_amounts_are_checked(base: str, amount: str, custom: str, message: str) -> None:
    b = Browser(base)
    b.sign_up(user())
    r = b.post("/account/topup", {"amount": amount, "custom_usd": custom, "provider": "demo",
                                  "nonce": uuid.uuid4().hex}, page="/account")
    assert 400 == r.status_code and message in r.text


def test_a_top_up_form_posted_twice_credits_once(base: str) -> None:
    """The form's order nonce makes a double submit one order."""
    b = Browser(base)
    b.sign_up(user())
    form = {"amount": "custom", "custom_usd": "7.25", "provider": "demo", "nonce": uuid.uuid4().hex}
    b.post("/account/topup", form, page="/account")
    assert "Added $7.25 to your balance." in b.get("/account").text
    b.post("/account/topup", form, page="/account")
    page = b.get("/account").text
    assert "That top-up had already been credited." in page and 'id="balance">$7.25<' in page


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "k", "models": "no-such-model"}, "Unknown model"),
    ({"name": "k", "expires": "2001-01-01"}, "has passed"),
    ({"name": "k", "rpm": "ten"}, "whole number"),
    ({"name": "<b>", }, "Names are"),
], ids=["unknown-model", "past-expiry", "bad-rpm", "bad-name"])
def test_key_creation_checks_its_fields(base: str, form: dict[str, str], message: str) -> None:
    b = Browser(base)
    b.sign_up(user())
    r = b.post("/keys", form)
    assert 400 == r.status_code and message in r.text


def test_admin_pages_are_for_admins_only(base: str) -> None:
    """A user who is not listed as an admin gets 403 on every admin page."""
    b = Browser(base)
    b.sign_up(user())
    assert {403} == {b.get(p).status_code for p in ("/admin", "/admin/codes", "/admin/health",
                                                     "/admin/accounts/demo")}


def test_usage_range_is_validated(base: str) -> None:
    b = Browser(base)
    b.sign_up(user())
    assert 400 == b.get("/usage?from=2026-02-01&to=2026-01-01").status_code
    assert 400 == b.get("/usage?from=2020-01-01&to=2026-01-01").status_code
    assert 400 == b.get("/usage?from=yesterday").status_code
    csv = b.get("/usage.csv?from=2026-01-01&to=2026-01-31")
    assert "attachment" in csv.headers["content-disposition"] and csv.text.startswith("date_utc,model,requests,")


def test_sigterm_stops_the_portal_cleanly(redis_url: str, tmp_path: Path) -> None:
    """SIGTERM: the server stops accepting, finishes, closes Redis and exits 0."""
    proc, url = start(redis_url, tmp_path / "portal.log")
    try:
        assert 200 == httpx.get(f"{url}/healthz").status_code
        proc.send_signal(signal.SIGTERM)
        assert 0 == proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (tmp_path / "portal.log").read_text()


def test_the_bare_prefix_and_root_lead_to_the_portal(base: str) -> None:
    root = base.removesuffix("/portal")
    assert "/portal/" == httpx.get(root + "/").headers["location"]
    r = httpx.get(base + "/", follow_redirects=False)
    assert (303, "/portal/login") == (r.status_code, r.headers["location"])


def test_a_longer_password_is_not_accepted_for_its_prefix(base: str) -> None:
    """A password over the limit never logs in, even when it starts with the real one."""
    email, longest = user(), "p" * 1024
    assert 303 == Browser(base).post("/signup", {"email": email, "password": longest, "password2": longest}).status_code
    assert 400 == Browser(base).post("/login", {"email": email, "password": longest + "!"}).status_code
    assert 303 == Browser(base).post("/login", {"email": email, "password": longest}).status_code
