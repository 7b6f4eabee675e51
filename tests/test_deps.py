"""The installed environment is the one the lock describes, where two wheels write the same files:
xds-protos ships older copies of ``opentelemetry/proto`` and ``google/api``/``google/rpc``, and which
copy is on disk depends on install order. The OTLP exporter needs the owners' own (an older
``common_pb2`` lacks ``InstrumentationScope``), so the Makefile and the Dockerfile lay them down last."""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

import pytest

OWNERS = ("opentelemetry-proto", "googleapis-common-protos")


@pytest.mark.parametrize("owner", OWNERS)
def test_the_owners_copy_of_each_shared_file_is_installed(owner: str) -> None:
    dist = metadata.distribution(owner)
    shared = {str(f) for f in metadata.distribution("xds-protos").files or ()}
    checked = 0
    for f in dist.files or ():
        if f.hash is None or str(f) not in shared or not str(f).endswith(".py"):
            continue
        digest = hashlib.sha256(Path(str(f.locate())).read_bytes()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == f.hash.value, f"{f} is xds-protos' copy"
        checked += 1
    assert checked > 0  # the two wheels do share files (else this test checks nothing)


def test_the_otlp_exporter_imports() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    assert OTLPSpanExporter is not None
