"""One real stack per test session: Redis, two translators, Envoy, the fake providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import FakeProvider
from tests.harness import GatewayUnderTest, gateway_config, write_config
from tokengate.devstack import Stack
from tokengate.procs import free_port


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    workdir = tmp_path_factory.mktemp("gw")
    with FakeProvider.running() as fake:
        cfg = gateway_config(fake.port, workdir)
        stack = Stack(write_config(cfg, workdir / "gateway.yaml"), workdir=workdir, workers=2,
                      redis_port=free_port(), log_level="warning", settler_metrics=f"127.0.0.1:{free_port()}")
        stack.start()
        try:
            gw = GatewayUnderTest(stack, fake, "", cfg)
            gw.key = gw.new_key("test", name="e2e")
            yield gw
        finally:
            stack.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(request: pytest.FixtureRequest) -> None:
    if "gateway" in request.fixturenames:
        request.getfixturevalue("gateway").fake.reset()


def logs(gw: GatewayUnderTest) -> dict[str, str]:
    """Every process log, for assertion messages."""
    return {p.name: p.read_text() for p in Path(gw.stack.workdir, "logs").glob("*.log")}
