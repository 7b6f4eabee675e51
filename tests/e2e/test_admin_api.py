"""The admin HTTP JSON API, served by `tokengate admin-api` against the gateway's Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from fakes import Reply, Usage
from tests.harness import GatewayUnderTest
from tokengate.procs import free_port, port_open

TOKEN = "admin-test-token"


@pytest.fixture(scope="module")
def admin(gateway: GatewayUnderTest) -> Iterator[httpx.Client]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokengate.cli", "admin-api", "--port", str(port),
                             "--redis-url", gateway.stack.effective_redis_url],
                            env={"TOKENGATE_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}) as c:
            yield c
    finally:
        proc.terminate()
        proc.wait(10)


def test_admin_api_needs_the_token(admin: httpx.Client) -> None:
    """Without the admin token every call is 401."""
    assert 401 == httpx.get(str(admin.base_url.join("/admin/accounts"))).status_code
    assert 401 == httpx.get(str(admin.base_url.join("/admin/accounts")), headers={"authorization": "Bearer nope"}).status_code


def test_account_lifecycle_through_the_api(gateway: GatewayUnderTest, admin: httpx.Client) -> None:
    """Create, top up (once per ref), issue a key, spend, read ledger and usage (JSON and CSV), revoke."""
    assert 201 == admin.post("/admin/accounts", json={"account": "apiacct"}).status_code
    r = admin.post("/admin/accounts/apiacct/credits", json={"usd": "2.50", "ref": "order-1"})
    assert (201, 2_500_000_000) == (r.status_code, r.json()["balance"]["nano_usd"])
    again = admin.post("/admin/accounts/apiacct/credits", json={"usd": "2.50", "ref": "order-1"})
    assert (200, True) == (again.status_code, again.json()["duplicate"])
    assert 400 == admin.post("/admin/accounts/apiacct/credits", json={"usd": "-1"}).status_code
    created = admin.post("/admin/accounts/apiacct/keys", json={"name": "from-api"}).json()
    gateway.fake.push(Reply(text="hi", usage=Usage(input=1000, output=1000)))
    with openai.OpenAI(base_url=f"{gateway.http}/v1", api_key=created["key"], max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    cost = 1000 * 2500 + 1000 * 10000
    deadline = time.monotonic() + 5
    while admin.get("/admin/accounts/apiacct").json()["balance"]["nano_usd"] != 2_500_000_000 - cost:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shown = admin.get("/admin/accounts/apiacct").json()
    assert ("$2.487500", 0) == (shown["balance"]["usd"], shown["held"]["nano_usd"])
    types = [e["type"] for e in admin.get("/admin/accounts/apiacct/ledger").json()["entries"]]
    assert ["charge", "topup", "open"] == types
    [row] = admin.get("/admin/accounts/apiacct/usage").json()["rows"]
    assert ("gpt-test", 1, 1000, 1000, cost) == (row["model"], row["requests"], row["input"], row["output"], row["cost"])
    csv = admin.get("/admin/accounts/apiacct/usage", params={"format": "csv"}).text.splitlines()
    assert csv[0].startswith("date,model,requests") and ",gpt-test,1,1000," in csv[1]
    [listed] = admin.get("/admin/accounts/apiacct/keys").json()["keys"]
    assert (created["id"], "from-api", "0") == (listed["id"], listed["name"], listed["revoked"])
    assert 204 == admin.delete(f"/admin/accounts/apiacct/keys/{created['id']}").status_code
    r = httpx.post(f"{gateway.http}/v1/chat/completions", headers={"authorization": f"Bearer {created['key']}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
    assert 401 == r.status_code
