"""One local Redis Cluster (3 masters, 3 replicas) for the whole session: every cluster test shares it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.rediscluster import LocalCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="tg-cluster.")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
