"""Golden stream transcripts: tests/fixtures/<case>/upstream.sse -> <client>.sse.

Each case is replayed whole, re-split at every byte offset (inside multi-byte UTF-8
too) and fed one byte at a time; output, usage and finish must not change. The
expected files are reviewed output; regenerate with
``python -m tests.protocols.test_stream_golden`` (or ``PYTHONPATH=tests python -m
protocols.test_stream_golden``) and read the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.protocols import Protocol
from translator.protocols import REGISTRY
from translator.protocols.convert import response_translator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "upstream.sse").exists())
CLIENTS = [Protocol(c.name) for c in REGISTRY.clients]  # an upstream-only protocol (Bedrock) has no client transcript
PAIRS = [(case, client) for case in CASES for client in CLIENTS]
IDS = [f"{case}->{client}" for case, client in PAIRS]


_MADE_UP_ID = re.compile(rb"(?<=[_\"-])[0-9a-f]{24}(?:[0-9a-f]{8})?(?=\")")  # msg_…, chatcmpl-…, resp_…, fc_…


def case_meta(case: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((FIXTURES / case / "case.json").read_text())
    return meta


def run(case: str, client: Protocol, pieces: list[bytes]) -> tuple[bytes, dict[str, int], Any]:
    t = response_translator(
        client,
        Protocol(case_meta(case)["upstream"]),
        stream=True,
        client_model="client-model",
        include_usage=True,
        created=1700000000,
    )
    out = b"".join(t.feed(p) for p in pieces) + t.flush()
    if case_meta(case).get("random_ids"):  # an upstream stream without an id (Bedrock's): the client's is made up
        out = _MADE_UP_ID.sub(b"0" * 24, out)
    return out, t.usage.as_dict(), t.finish


def upstream(case: str) -> bytes:
    return (FIXTURES / case / "upstream.sse").read_bytes()


def expected(case: str, client: Protocol) -> bytes:
    return (FIXTURES / case / f"{client.value}.sse").read_bytes()


@pytest.mark.parametrize(("case", "client"), PAIRS, ids=IDS)
def test_whole_stream_matches_golden(case: str, client: Protocol) -> None:
    """The whole upstream transcript translates to the reviewed client transcript."""
    out, usage, _ = run(case, client, [upstream(case)])
    assert expected(case, client) == out
    assert case_meta(case)["usage"] == usage


@pytest.mark.parametrize(("case", "client"), PAIRS, ids=IDS)
def test_every_split_gives_same_output(case: str, client: Protocol) -> None:
    """Splitting the upstream bytes at any offset changes nothing."""
    data = upstream(case)
    whole = run(case, client, [data])
    for i in range(1, len(data)):
        assert whole == run(case, client, [data[:i], data[i:]]), f"split at byte {i}"


@pytest.mark.parametrize(("case", "client"), PAIRS, ids=IDS)
def test_byte_by_byte_gives_same_output(case: str, client: Protocol) -> None:
    """Feeding one byte at a time (every UTF-8 character split) changes nothing."""
    data = upstream(case)
    assert run(case, client, [data]) == run(
        case, client, [data[i : i + 1] for i in range(len(data))]
    )


def regenerate() -> None:
    for case, client in PAIRS:
        out, _, _ = run(case, client, [upstream(case)])
        (FIXTURES / case / f"{client.value}.sse").write_bytes(out)


if __name__ == "__main__":
    regenerate()
