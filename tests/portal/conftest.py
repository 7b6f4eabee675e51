"""Fixtures for the portal tests.

Unit tests get a throwaway ``redis-server`` (``redis_url``). The browser tests use
the gateway stack of the end-to-end tests (``gateway``: real Envoy, translators,
settler, Redis and the fake provider), start ``python -m portal`` against its
Redis and config, and drive it with headless Chromium (Debian's ``chromium``)
through Playwright. Screenshots go to ``tests/portal/artifacts/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import _fresh_fake, gateway  # noqa: F401 - the stack, shared with tests/e2e
from tests.harness import GatewayUnderTest
from tokengate.procs import free_port, port_open

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
WEBHOOK_SECRET = "whsec_test_portal_secret"
ADMIN_EMAIL = "admin@portal.test"


def wait_port(proc: subprocess.Popen[bytes], port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for tests that need Redis but not the gateway."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL)
    try:
        wait_port(proc, port, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class PortalUnderTest:
    url: str  # http://localhost:<port>/portal
    proc: subprocess.Popen[bytes]
    gateway: GatewayUnderTest
    log: Path

    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/stripe"


def start_portal(gw: GatewayUnderTest, log: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TOKENGATE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "TOKENGATE_PORTAL_ADMINS": ADMIN_EMAIL}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "portal", "-c", str(gw.stack.config_path), "--port", str(port),
             "--redis-url", gw.stack.effective_redis_url, "--base-url", gw.http, "--demo-payments",
             "--log-level", "warning", *extra],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_port(proc, port, f"the portal (log: {log})")
    return proc


@pytest.fixture(scope="module")
def portal(gateway: GatewayUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalUnderTest]:  # noqa: F811
    """The portal on the gateway's Redis. When the gateway config routes /portal (server.portal_upstream),
    it is started there and reached through Envoy; otherwise directly on a free port."""
    log = tmp_path_factory.mktemp("portal") / "portal.log"
    upstream = gateway.cfg["server"].get("portal_upstream")
    port = int(upstream.rsplit(":", 1)[1]) if upstream else free_port()
    proc = start_portal(gateway, log, port)
    # "localhost" is a secure context: Secure cookies work over plain HTTP, as in `make run`.
    url = f"http://localhost:{gateway.cfg['server']['http_port'] if upstream else port}/portal"
    try:
        yield PortalUnderTest(url, proc, gateway, log)
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package, driven by Playwright (never its own download)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def shot(page: Any, name: str) -> None:
    """A full-page screenshot kept as a test artefact."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

