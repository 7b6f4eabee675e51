"""The portal in a real browser (headless Chromium + Playwright) against the running gateway stack.

Each test signs up its own users, so they do not depend on each other; the
screenshots they keep (tests/portal/artifacts/) are the ones in docs/portal.md.
"""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as dt
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from playwright.sync_api import expect

from core import store
from fakes import Reply, Usage
from portal.payments.stripe import sign
from tests.harness import GatewayUnderTest
from tests.portal.conftest import ADMIN_EMAIL, WEBHOOK_SECRET, PortalUnderTest, shot

T = TypeVar("T")
PASSWORD = "correct horse battery"
# gpt-test: $2.50 input, $1.25 cache read, $10 output per million tokens (tests/harness.py PRICES)
USAGE = Usage(input=1000, cache_read=200, output=500)
COST_NANO = (1000 * 2_500_000 + 200 * 1_250_000 + 500 * 10_000_000) // 1000  # 7_750_000 = $0.00775


def email(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}@example.test"


@pytest.fixture
def new_page(browser: Any, portal: PortalUnderTest) -> Iterator[Any]:
    """A page factory; each page is its own browser context (its own cookies): one user each."""
    contexts = []

    def make(timezone: str = "UTC") -> Any:
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900},
                                  timezone_id=timezone)
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.url.rsplit("/portal", 1)[0])
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for c in contexts:
        c.close()


def sign_up(page: Any, portal: PortalUnderTest, address: str, screenshot: str = "") -> None:
    page.goto(f"{portal.url}/signup")
    page.fill("#email", address)
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.click("button:has-text('Create account')")
    page.wait_for_url("**/portal/account")
    expect(page.locator(".flash")).to_have_text("Welcome! Your account is ready.")


def log_in(page: Any, portal: PortalUnderTest, address: str, password: str = PASSWORD) -> None:
    page.goto(f"{portal.url}/login")
    page.fill("#email", address)
    page.fill("#password", password)
    page.click("main button:has-text('Log in')")


def create_key(page: Any, portal: PortalUnderTest, name: str, models: tuple[str, ...] = (), rpm: str = "") -> str:
    page.goto(f"{portal.url}/keys")
    page.fill("#name", name)
    for m in models:
        page.check(f"input[name=models][value='{m}']")
    if rpm:
        page.fill("#rpm", rpm)
    page.click("button:has-text('Create key')")
    expect(page.locator("h1")).to_have_text("Key created")
    key: str = page.input_value("#new-key")
    assert key.startswith("sk-tg-")
    return key


def call_gpt(gw: GatewayUnderTest, key: str) -> None:
    gw.fake.push(Reply(text="hello from the fake", usage=USAGE))
    with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert "hello from the fake" == reply.choices[0].message.content


def off_loop(fn: Callable[[], T]) -> T:
    """Run a harness helper (it uses asyncio.run) beside Playwright's event loop, in a thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def balance(gw: GatewayUnderTest, account: str) -> tuple[int, int]:
    return off_loop(lambda: gw.balance(account))


def wait_balance(gw: GatewayUnderTest, account: str, expected: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := balance(gw, account)) != (expected, 0):
        assert time.monotonic() < deadline, f"balance {now} != {expected}"
        time.sleep(0.05)


def cells(page: Any, selector: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        selector, "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))")
    return rows


def usd(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_journey_code_key_sdk_usage_csv(portal: PortalUnderTest, new_page: Any) -> None:
    """Sign up, log out and in, redeem an admin's code, create a key, call the SDK, read usage, chart and CSV."""
    gw = portal.gateway
    admin = new_page()
    sign_up(admin, portal, ADMIN_EMAIL)
    admin.goto(f"{portal.url}/admin/codes")
    admin.fill("#usd", "20")
    admin.fill("#note", "welcome credit")
    admin.click("button:has-text('Issue')")
    code = admin.inner_text("#issued-codes").strip()
    assert code.startswith("TG-") and len(code) == 22
    shot(admin, "admin-codes")

    page = new_page("Europe/Berlin")  # sign-up takes the browser's time zone
    alice = email("alice")
    sign_up(page, portal, alice, screenshot="signup")
    page.click("header button:has-text('Log out')")
    page.wait_for_url("**/portal/login")
    log_in(page, portal, alice, "wrong password!")
    shot(page, "login")
    expect(page.locator(".error")).to_have_text("Wrong e-mail or password.")
    log_in(page, portal, alice)
    page.wait_for_url("**/portal/account")
    expect(page.locator("#balance")).to_have_text("$0.00")

    page.fill("#code", code.lower().replace("-", " "))  # forgiving input
    page.click("button:has-text('Redeem')")
    expect(page.locator(".flash")).to_have_text("Added $20.00 to your balance.")
    expect(page.locator("#balance")).to_have_text("$20.00")
    expect(page.locator("#ledger tbody tr").first).to_contain_text("Top-up")
    page.fill("#code", code)
    page.click("button:has-text('Redeem')")  # a code is worth something once
    expect(page.locator(".flash")).to_have_text("You had already redeemed that code.")
    expect(page.locator("#balance")).to_have_text("$20.00")

    key = create_key(page, portal, "sdk", models=("gpt-test", "claude-test"), rpm="60")
    page.click("button[data-copy='new-key']")
    expect(page.locator("button[data-copy='new-key']")).to_have_text("Copied")
    assert key == page.evaluate("navigator.clipboard.readText()")
    shot(page, "key-created")
    account = key.split("-")[2]

    call_gpt(gw, key)
    wait_balance(gw, account, 20_000_000_000 - COST_NANO)

    page.goto(f"{portal.url}/keys")
    [row] = cells(page, "#keys tbody tr")
    assert ("sdk", "active") == (row[0], row[6]) and key[:18] in row[1]
    assert "never" != row[3], "last used is shown once the key was used"
    assert "gpt-test" in row[5] and "60 req/min" in row[5]
    shot(page, "keys")

    page.goto(f"{portal.url}/account")
    expect(page.locator("#balance")).to_have_text("$19.99225")
    ledger = cells(page, "#ledger tbody tr")
    assert ["Usage", "-$0.00775", "$19.99225", "gpt-test · key sdk"] == ledger[0][1:]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", ledger[0][0]), "times in the user's zone"
    expect(page.locator("footer")).to_contain_text("Times are shown in Europe/Berlin")
    shot(page, "account")

    page.goto(f"{portal.url}/usage")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    table = cells(page, "#usage-table tbody tr")
    assert [[today, "gpt-test", "1", "1,000", "200", "500", "$0.00775"]] == table
    assert page.locator("#chart-cost rect.bar").count() == 1
    assert "gpt-test: $0.00775" in page.inner_html("#chart-cost")
    assert page.locator("#chart-tokens rect.bar").count() == 1
    [recent] = cells(page, "#recent tbody tr")
    assert ["gpt-test", "oai", "sdk", "1,000", "200", "500", "$0.00775", "200"] == recent[1:9]
    assert recent[9].endswith(" ms")
    shot(page, "usage-first-request")

    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert "date_utc" == rows[0][0]
    assert len(table) == len(rows) - 1
    for shown, exported in zip(table, rows[1:], strict=True):
        assert [c.replace(",", "") for c in shown[:6]] == exported[:6]
        assert usd(shown[6]) == Decimal(exported[6]) and COST_NANO == int(exported[10])

    page.goto(f"{portal.url}/models?model=gpt-test")
    assert "$2.50" in page.inner_text("#models")
    assert f'base_url="{gw.http}/v1"' in page.inner_text("#snippet-openai")
    shot(page, "models")

    admin.goto(f"{portal.url}/admin")
    assert any(r[0] == account and r[1] == alice and r[3] == "$19.99225" for r in cells(admin, "#accounts tbody tr"))
    shot(admin, "admin-accounts")
    admin.goto(f"{portal.url}/admin/accounts/{account}")
    admin.fill("#usd", "-1.5")
    admin.fill("#reason", "refund reversal")
    admin.click("button:has-text('Apply')")
    expect(admin.locator(".flash")).to_have_text("Debited $1.50; balance $18.49225.")
    assert ["Adjustment", "-$1.50", "$18.49225", f"refund reversal (by {ADMIN_EMAIL})"] == \
        cells(admin, "#ledger tbody tr")[0][1:]
    shot(admin, "admin-account")
    assert (18_492_250_000, 0) == balance(gw, account)

    admin.goto(f"{portal.url}/admin/health")
    health = cells(admin, "#health tbody tr")
    [oai] = [r for r in health if r[0] == "gpt-test"]
    assert ("oai", "healthy") == (oai[1], oai[5]) and int(oai[6].replace(",", "")) >= 1
    shot(admin, "admin-health")


def test_top_up_by_card_webhook_once_and_by_demo(portal: PortalUnderTest, new_page: Any) -> None:
    """A card top-up waits for the signed callback and credits once when it comes twice; demo is instant."""
    gw, page = portal.gateway, new_page()
    sign_up(page, portal, email("carol"))
    page.check("input[name=amount][value='25']")
    page.check("input[name=provider][value='stripe']")
    page.click("button:has-text('Top up')")
    page.wait_for_url("**/portal/account/orders/*")
    expect(page.locator("#order-status")).to_have_text("pending")
    shot(page, "order-pending")
    order_id = page.url.rsplit("/", 1)[1]
    key = create_key(page, portal, "probe")
    account = key.split("-")[2]

    event = {"id": "evt_1", "type": "checkout.session.completed",
             "data": {"object": {"id": "cs_test_1", "client_reference_id": f"{account}.{order_id}",
                                 "payment_status": "paid", "amount_total": 2500, "currency": "usd"}}}
    body = json.dumps(event).encode()
    forged = httpx.post(portal.webhook_url(), content=body, headers={"stripe-signature": sign(body, "whsec_wrong")})
    assert 400 == forged.status_code
    replies = [httpx.post(portal.webhook_url(), content=body, headers={"stripe-signature": sign(body, WEBHOOK_SECRET)})
               for _ in range(2)]
    assert [(200, "credited"), (200, "already credited")] == [(r.status_code, r.json()["message"]) for r in replies]
    assert (25_000_000_000, 0) == balance(gw, account)
    page.goto(f"{portal.url}/account/orders/{order_id}")
    expect(page.locator("#order-status")).to_have_text("paid")

    page.goto(f"{portal.url}/account")
    page.check("input[name=amount][value='custom']")
    page.fill("#custom_usd", "12.34")
    page.check("input[name=provider][value='demo']")
    page.click("button:has-text('Top up')")
    expect(page.locator(".flash")).to_have_text("Added $12.34 to your balance.")
    expect(page.locator("#balance")).to_have_text("$37.34")
    assert (37_340_000_000, 0) == balance(gw, account)


def test_second_account_sees_none_of_the_first(portal: PortalUnderTest, new_page: Any) -> None:
    """Keys, usage, recent requests, orders and admin pages of one account are invisible to another."""
    gw = portal.gateway
    owner = new_page()
    sign_up(owner, portal, email("owner"))
    key = create_key(owner, portal, "owners-key")
    account = key.split("-")[2]
    off_loop(lambda: gw.credit(account, 1_000_000_000))
    call_gpt(gw, key)
    wait_balance(gw, account, 1_000_000_000 - COST_NANO)
    owner.goto(f"{portal.url}/keys")
    key_id = owner.get_attribute("#keys tbody tr", "data-key-id")

    other = new_page()
    sign_up(other, portal, email("mallory"))
    other.goto(f"{portal.url}/keys")
    assert key[:18] not in other.content() and str(key_id) not in other.content()
    other.goto(f"{portal.url}/usage")
    assert [["No usage in this range."]] == cells(other, "#usage-table tbody tr")
    assert [["No recent requests."]] == cells(other, "#recent tbody tr")
    assert "gpt-test" not in other.inner_text("#usage-table")
    csv_text = other.evaluate(f"fetch('{portal.url}/usage.csv').then(r => r.text())")
    assert 1 == len(csv_text.strip().splitlines())
    # Revoking the other account's key by id is refused, and the key keeps working.
    token = other.input_value("header input[name=csrf]")
    status = other.evaluate(
        """([url, token]) => fetch(url, {method: 'POST', body: new URLSearchParams({csrf: token}),
             headers: {'content-type': 'application/x-www-form-urlencoded'}}).then(r => r.status)""",
        [f"{portal.url}/keys/{key_id}/revoke", token])
    assert 404 == status
    call_gpt(gw, key)
    assert 403 == other.goto(f"{portal.url}/admin").status
    assert 403 == other.goto(f"{portal.url}/admin/accounts/{account}").status


def test_forged_csrf_token_is_refused(portal: PortalUnderTest, new_page: Any) -> None:
    """A form whose CSRF token was forged, or taken from another session, changes nothing."""
    page, other = new_page(), new_page()
    sign_up(page, portal, email("dave"))
    sign_up(other, portal, email("erin"))
    page.goto(f"{portal.url}/keys")
    page.fill("#name", "forged")
    page.eval_on_selector("form[action$='/keys'] input[name=csrf]", "e => e.value = 'forged-token'")
    with page.expect_navigation() as nav:
        page.click("button:has-text('Create key')")
    assert 403 == nav.value.status
    expect(page.locator(".error")).to_contain_text("did not come from this site")
    shot(page, "csrf-refused")
    other.goto(f"{portal.url}/keys")
    stolen = other.input_value("form[action$='/keys'] input[name=csrf]")
    page.goto(f"{portal.url}/keys")
    page.fill("#name", "cross-session")
    page.eval_on_selector("form[action$='/keys'] input[name=csrf]", f"e => e.value = '{stolen}'")
    with page.expect_navigation() as nav:
        page.click("button:has-text('Create key')")
    assert 403 == nav.value.status
    page.goto(f"{portal.url}/keys")
    assert [["No keys yet."]] == cells(page, "#keys tbody tr")


def test_usage_over_two_weeks_by_model_chart_table_csv_and_filter(portal: PortalUnderTest, new_page: Any) -> None:
    """Metering events over 14 days and 3 models, settled by the real settler: one bar segment per
    day and model, the table and CSV agree row by row, and the model filter narrows all three."""
    gw, page = portal.gateway, new_page()
    sign_up(page, portal, email("frank"))
    key = create_key(page, portal, "batch")
    account, key_id = key.split("-")[2], store.key_id(store.digest(key))
    off_loop(lambda: gw.credit(account, 100_000_000_000))
    prices = {"gpt-test": (2_500_000, 10_000_000), "claude-test": (3_000_000, 15_000_000),
              "gemini-test": (300_000, 2_500_000)}
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events, total = [], 0
    for day in range(14):
        for i, (model, (pin, pout)) in enumerate(prices.items()):
            if (day + i) % 4 == 3:
                continue  # some days without some models
            usage = {"input": 1000 * (day + 1) * (i + 1), "output": 300 * (14 - day) + 100 * i}
            cost = -(-(usage["input"] * pin + usage["output"] * pout) // 1000)
            total += cost
            events.append({"event_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "account": account,
                           "key_id": key_id, "model": model, "deployment": {"gpt-test": "oai", "claude-test": "ant",
                                                                            "gemini-test": "gem"}[model],
                           "status": 200, "complete": True, "usage": usage, "cost_nano": cost, "hold_nano": 0,
                           "duration_ms": 420.0 + day, "ts": (today - dt.timedelta(days=13 - day)).timestamp()})
    with gw.redis() as r:
        for ev in events:
            r.xadd("tg:metering", {"event": json.dumps(ev)})
    wait_balance(gw, account, 100_000_000_000 - total)

    start = (today - dt.timedelta(days=13)).date().isoformat()
    page.goto(f"{portal.url}/usage?from={start}&to={today.date().isoformat()}")
    table = cells(page, "#usage-table tbody tr")
    assert len(events) == len(table) == page.locator("#chart-cost rect.bar").count()
    assert usd(page.inner_text("#usage-table tfoot td:last-child")) == Decimal(total) / 10**9
    with page.expect_download() as download:
        page.click("#csv")
    exported = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))[1:]
    assert [[c.replace(",", "") for c in row[:6]] for row in table] == [row[:6] for row in exported]
    assert [usd(row[6]) for row in table] == [Decimal(row[6]) for row in exported]
    assert total == sum(int(row[10]) for row in exported)
    shot(page, "usage")

    page.select_option("#model", "claude-test")
    page.click("button:has-text('Show')")
    page.wait_for_url("**model=claude-test*")
    filtered = cells(page, "#usage-table tbody tr")
    assert {"claude-test"} == {row[1] for row in filtered}
    assert len([e for e in events if e["model"] == "claude-test"]) == len(filtered)
    assert {"claude-test"} == {row[1] for row in cells(page, "#recent tbody tr")}
